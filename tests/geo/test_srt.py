"""DJI .SRT parsing: the shared fixtures, every family trap inline, fuzzing, and the writer round trip."""

from __future__ import annotations

import contextlib
import math
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.geo.errors import SrtParseError
from detector.geo.srt import SrtCue, find_clock_jumps, format_srt, parse_srt, read_srt, write_srt

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "dji-srt"
needs_fixtures = pytest.mark.skipif(
    not FIXTURES.is_dir(), reason=f"shared DJI SRT fixtures not found at {FIXTURES} (check out ../shared)"
)

Values = tuple[float | None, float | None, float | None, float | None]  # lat, lon, rel_alt_m, abs_alt_m

# file, cue count, GPS(a,b,c) order, first cue values, last cue values (read from the files by hand)
FIXTURE_CASES: list[tuple[str, int, str | None, Values, Values]] = [
    ("MAVIC3.srt", 12318, None, (3.41531, -3.37440, -2.4, 0.401), (3.41368, -3.37721, 3.6, 6.401)),
    ("air2s.srt", 17, None, (41.424724, 2.234156, None, 117.0), (41.424730, 2.234102, None, 117.1)),
    ("mavic_pro.SRT", 468, "lonlat", (-20.2533, 149.0251, 1.9, None), (-20.2532, 149.0251, 0.0, None)),
    # GPS(lat,lon,0.0M): the 0.0M is a placeholder, so no absolute altitude; BAROMETER is the height.
    ("matrice_300.srt", 381, "latlon", (36.6146, -6.1120, 0.3, None), (36.6146, -6.1120, 0.0, None)),
    # Truncated: the 20th cue stops after its HOME line, so it has a time and a home but no position.
    ("broken_incomplete.SRT", 20, "lonlat", (-34.7383, -58.4563, 20.1, None), (None, None, None, None)),
    ("mini5pro.SRT", 5, None, (53.365108, 6.460719, 6.0, -122.769), (53.365109, 6.460718, 6.0, -122.769)),
    ("neo2.SRT", 5, None, (45.607181, 13.753860, 0.0, 113.9), (45.607181, 13.753859, 0.1, 114.0)),
]


def values(cue: SrtCue) -> Values:
    return cue.lat, cue.lon, cue.rel_alt_m, cue.abs_alt_m


def cue_text(index: int, body: str, start_s: float = 0.0, end_s: float = 1.0) -> str:
    def tc(s: float) -> str:
        return f"00:00:{int(s):02d},{round(s % 1 * 1000):03d}"

    return f"{index}\n{tc(start_s)} --> {tc(end_s)}\n{body}\n\n"


@needs_fixtures
@pytest.mark.parametrize(("name", "count", "order", "first", "last"), FIXTURE_CASES)
def test_fixture_counts_first_last_and_order(
    name: str, count: int, order: str | None, first: Values, last: Values
) -> None:
    parsed = read_srt(FIXTURES / name)
    print(f"{name}: {len(parsed.cues)} cues, GPS order {parsed.gps_order} ({parsed.gps_order_reason})")
    assert len(parsed.cues) == count
    assert parsed.gps_order == order
    assert values(parsed.cues[0]) == pytest.approx(first)
    assert values(parsed.cues[-1]) == pytest.approx(last)
    assert all(c.gimbal_pitch_deg is None for c in parsed.cues)  # none of these models writes gimbal angles


@needs_fixtures
def test_truncated_fixture_keeps_what_it_read_and_warns() -> None:
    parsed = read_srt(FIXTURES / "broken_incomplete.SRT")
    assert values(parsed.cues[-2]) == pytest.approx((-34.7383, -58.4563, 7.7, None))
    assert parsed.cues[-1].local_time == datetime(2017, 7, 3, 10, 15, 22)
    assert any("cue 20 lacks lat, lon" in w for w in parsed.warnings)


@needs_fixtures
@pytest.mark.parametrize(
    ("name", "fnum", "focal_len_mm", "shutter_s", "first_time"),
    [
        ("air2s.srt", 2.8, 24.0, 1 / 80, datetime(2022, 8, 7, 13, 40, 40, 774808)),  # fnum 280, focal_len 240
        ("MAVIC3.srt", 3.2, 24.0, 1 / 8000, datetime(2021, 12, 25, 12, 27, 52, 373000)),
        ("mavic_pro.SRT", 2.2, None, 1 / 60, datetime(2017, 8, 5, 14, 11, 51)),
        ("broken_incomplete.SRT", 2.8, None, 1 / 400, datetime(2017, 7, 3, 10, 15, 3)),  # Fnum:F2.8
        ("matrice_300.srt", None, None, None, datetime(2022, 6, 21, 16, 6, 17)),
    ],
)
def test_fixture_camera_fields_and_dates(
    name: str, fnum: float | None, focal_len_mm: float | None, shutter_s: float | None, first_time: datetime
) -> None:
    cue = read_srt(FIXTURES / name).cues[0]
    assert (cue.fnum, cue.focal_len_mm, cue.shutter_s) == pytest.approx((fnum, focal_len_mm, shutter_s))
    assert cue.local_time == first_time


P4_RTK = (
    "F/6.3, SS 60, ISO 100, EV 0, RTK (120.083799, 30.213635, 28), HOME (120.084146, 30.214243, 103.55m), "
    "D 75.36m, H 76.19m, H.S 0.30m/s, V.S 0.00m/s, F.PRY (-5.3°, 2.1°, 28.3°), G.PRY (-40.0°, 0.0°, 28.2°)"
)
MAVIC_MINI = "F/2.8, SS 206.14, ISO 150, EV 0, GPS (-82.6669, 27.7716, 10), D 2.80m, H 0.00m, H.S 0.00m/s, V.S 0.00m/s"
MAVIC_2 = (
    '<font size="36">FrameCnt : 1, DiffTime : 41ms\n2023-07-15 11:55:16,320,933\n'
    "[iso : 100] [shutter : 1/400.0] [fnum : 280] [ev : 0] [ct : 5818] [color_md : default] [focal_len : 240] "
    "[latitude : 47.6205] [longtitude : -122.3493] [altitude: 88.7] </font>"
)
ENTERPRISE = (
    '<font size="28">FrameCnt: 1, DiffTime: 33ms\n2023-02-14 11:05:22.338\n'
    "[iso: 100] [shutter: 1/1000.0] [fnum: 2.8] [ev: 0] [focal_len: 24.00] [dzoom_ratio: 10000, delta:0],"
    "[latitude: 59.302335] [longitude: 18.203059] [rel_alt: 50.000 abs_alt: 120.500] "
    "[drone_yaw: 32.6 drone_pitch: -2.0 drone_roll: 0.1] [gb_yaw: -42.9 gb_pitch: -10.4 gb_roll: 0.0] </font>"
)
MATRICE = "2022.06.21 16:06:17\nGPS(36.6146,-6.1120,95.5M) BAROMETER:80.3M"
PHANTOM_3 = (
    "HOME(-58.4563,-34.7386) 2017.07.03 10:15:03\nGPS(-58.4563,-34.7383,19) BAROMETER:20.1\n"
    "ISO:100 Shutter:400 EV:-1/3 Fnum:F2.8 "
)
# Early Phantom 3 / Inspire 1 firmware: barometric height Hb, ultrasonic Hs, shutter TV (1/60 s), aperture IR.
EARLY_PHANTOM = "HOME(149.0251,-20.2532) 2016.03.12 09:41:07\nGPS(149.0251,-20.2533,11) Hb:1.9 Hs:1.9\n" + (
    "ISO:100 TV:60 EV: 0 IR:F2.8"
)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            P4_RTK,
            {
                "lat": 30.213635,
                "lon": 120.083799,
                "rel_alt_m": 76.19,
                "home_lat": 30.214243,
                "home_lon": 120.084146,
                "home_distance_m": 75.36,
                "aircraft_pitch_deg": -5.3,
                "aircraft_roll_deg": 2.1,
                "aircraft_yaw_deg": 28.3,
                "gimbal_pitch_deg": -40.0,
                "gimbal_roll_deg": 0.0,
                "gimbal_yaw_deg": 28.2,
                "fnum": 6.3,
                "shutter_s": 1 / 60,
                "iso": 100,
            },
        ),
        (MAVIC_MINI, {"lat": 27.7716, "lon": -82.6669, "rel_alt_m": 0.0, "satellites": 10, "shutter_s": 1 / 206.14}),
        (
            MAVIC_2,
            {
                "lat": 47.6205,
                "lon": -122.3493,
                "abs_alt_m": 88.7,
                "fnum": 2.8,
                "focal_len_mm": 24.0,
                "local_time": datetime(2023, 7, 15, 11, 55, 16, 320933),
                "gimbal_pitch_deg": None,
            },
        ),
        (
            ENTERPRISE,
            {
                "lat": 59.302335,
                "lon": 18.203059,
                "rel_alt_m": 50.0,
                "abs_alt_m": 120.5,
                "gimbal_yaw_deg": -42.9,
                "gimbal_pitch_deg": -10.4,
                "gimbal_roll_deg": 0.0,
                "aircraft_yaw_deg": 32.6,
                "fnum": 2.8,
                "focal_len_mm": 24.0,
                "local_time": datetime(2023, 2, 14, 11, 5, 22, 338000),
            },
        ),
        (MATRICE, {"lat": 36.6146, "lon": -6.1120, "abs_alt_m": 95.5, "rel_alt_m": 80.3, "satellites": None}),
        (PHANTOM_3, {"lat": -34.7383, "lon": -58.4563, "rel_alt_m": 20.1, "ev": -1 / 3, "fnum": 2.8, "iso": 100}),
        (
            EARLY_PHANTOM,
            {
                "lat": -20.2533,
                "lon": 149.0251,
                "rel_alt_m": 1.9,
                "abs_alt_m": None,
                "satellites": 11,
                "shutter_s": 1 / 60,
                "fnum": 2.8,
                "ev": 0.0,
                "iso": 100,
                "local_time": datetime(2016, 3, 12, 9, 41, 7),
            },
        ),
    ],
    ids=[
        "p4rtk-F.PRY-G.PRY",
        "mavic-mini-GPS-space",
        "mavic2-longtitude-x100",
        "enterprise-gb",
        "matrice",
        "p3",
        "early-phantom-Hb-TV-IR",
    ],
)
def test_family_fields(body: str, expected: dict[str, object]) -> None:
    cue = parse_srt(cue_text(1, body)).cues[0]
    for name, value in expected.items():
        actual = getattr(cue, name)
        assert actual == (value if isinstance(value, datetime) else pytest.approx(value)), name


@pytest.mark.parametrize(
    ("heights", "rel_alt_m"),
    [
        ("Hb:1.9 Hs:1.9", 1.9),  # near the ground the two agree
        ("Hb:35.2 Hs:0.0", 35.2),  # above the ultrasonic range Hs reads nothing; Hb is the height
        ("Hb:35.2 Hs:2.1", 35.2),  # over a roof Hs measures the roof, not the take-off point
        ("Hs:1.9", None),  # Hs alone is no height above take-off: nothing is invented
    ],
)
def test_early_phantom_height_is_hb_never_hs(heights: str, rel_alt_m: float | None) -> None:
    cue = parse_srt(cue_text(1, EARLY_PHANTOM.replace("Hb:1.9 Hs:1.9", heights))).cues[0]
    assert cue.rel_alt_m == (None if rel_alt_m is None else pytest.approx(rel_alt_m))
    assert cue.abs_alt_m is None


@pytest.mark.parametrize(
    ("camera", "fnum", "shutter_s"),
    [
        ("ISO:100 TV:60 EV: 0 IR:F2.8", 2.8, 1 / 60),
        ("ISO:100 TV:1/250 EV: 0 IR:F4.0", 4.0, 1 / 250),
        ("ISO:100 TV:60 EV: 0 IR:2", None, 1 / 60),  # an IR number without its F is not an aperture
        ("ISO:100 TV:0 EV: 0 IR:F", None, None),  # damaged: no value is made up
    ],
)
def test_early_phantom_tv_and_ir(camera: str, fnum: float | None, shutter_s: float | None) -> None:
    cue = parse_srt(cue_text(1, EARLY_PHANTOM.replace("ISO:100 TV:60 EV: 0 IR:F2.8", camera))).cues[0]
    assert (cue.fnum, cue.shutter_s) == (
        None if fnum is None else pytest.approx(fnum),
        None if shutter_s is None else pytest.approx(shutter_s),
    )


@needs_fixtures
def test_matrice_fixture_gps_zero_is_no_altitude_and_barometer_is_the_height() -> None:
    parsed = read_srt(FIXTURES / "matrice_300.srt")
    assert all(c.abs_alt_m is None for c in parsed.cues), "GPS(lat,lon,0.0M) in every cue is a placeholder"
    heights = [c.rel_alt_m for c in parsed.cues if c.rel_alt_m is not None]
    assert len(heights) == 381
    assert (min(heights), max(heights)) == pytest.approx((-0.1, 87.9))
    assert all(c.satellites is None for c in parsed.cues), "the third value is no satellite count either"
    assert parsed.warnings == []


@pytest.mark.parametrize(
    ("thirds", "abs_alt_m"),
    [
        (["0.0M", "0.0M", "0.0M"], [None, None, None]),
        (["0.0M", "0.0M", "95.5M"], [None, None, 95.5]),  # zeros only until the altitude comes: still none
        (["95.5M", "96.1M", "96.8M"], [95.5, 96.1, 96.8]),
        (["-3.2M", "0.00M", "2.4M"], [-3.2, None, 2.4]),  # below sea level is a reading; the exact 0 is not
    ],
)
def test_matrice_gps_third_zero_is_not_an_altitude(thirds: list[str], abs_alt_m: list[float | None]) -> None:
    text = "".join(
        cue_text(i + 1, f"2022.06.21 16:06:{17 + i}\nGPS(36.6146,-6.1120,{third}) BAROMETER:{80.3 + i}M", i, i + 1)
        for i, third in enumerate(thirds)
    )
    cues = parse_srt(text).cues
    assert [c.abs_alt_m for c in cues] == [None if a is None else pytest.approx(a) for a in abs_alt_m]
    assert [c.rel_alt_m for c in cues] == pytest.approx([80.3, 81.3, 82.3])


def one_hz_srt(clock_s: list[int], heights_m: list[float]) -> str:
    """Mavic Pro style 1 Hz cues; ``clock_s`` are drone clock seconds after 14:11:00 (may jump)."""
    return "".join(
        cue_text(
            i + 1,
            f"HOME(149.0251,-20.2532) 2017.08.05 14:{11 + s // 60:02d}:{s % 60:02d}\n"
            f"GPS(149.0251,-20.{2533 + i},16) BAROMETER:{h}\nISO:100 Shutter:60 EV: Fnum:2.2",
            i,
            i + 1,
        )
        for i, (s, h) in enumerate(zip(clock_s, heights_m, strict=True))
    )


@pytest.mark.parametrize(
    ("clock_s", "jumps"),
    [
        ([0, 1, 2, 3, 4, 5], []),
        ([0, 2, 2, 3, 5, 5], []),  # whole-second clock jitter (as in the Mavic Pro sample) is no jump
        ([0, 1, 2, 131, 132, 133], [(3, 4, 129.0)]),  # a new segment 2 min later
        ([40, 41, 42, 3, 4, 5], [(3, 4, -39.0)]),  # the clock going back is a jump too
        ([0, 1, 2, 6, 7, 8], [(3, 4, 4.0)]),  # 4 s while the video moves 1 s
        ([0, 1, 2, 20, 21, 40], [(3, 4, 18.0), (5, 6, 19.0)]),
    ],
)
def test_clock_jumps_are_found_and_warned(clock_s: list[int], jumps: list[tuple[int, int, float]]) -> None:
    parsed = parse_srt(one_hz_srt(clock_s, [20.0, 21.0, 22.0, 23.0, 24.0, 25.0]))
    assert [(j.cue_before, j.cue_after, j.clock_s) for j in parsed.clock_jumps] == jumps
    assert all(j.video_s == pytest.approx(1.0) for j in parsed.clock_jumps)
    jump_warnings = [w for w in parsed.warnings if "drone clock jumps" in w]
    assert len(jump_warnings) == len(jumps)
    for (before, after, _), warning in zip(jumps, jump_warnings, strict=True):
        assert f"between cue {before} and cue {after}" in warning
        assert "not interpolated across it" in warning


def test_clock_jump_one_frame_apart_at_30fps() -> None:
    """A modern 30 fps file: the subtitle moves one frame (33 ms) while the clock moves 41 s."""

    def cue(n: int, start_ms: int, clock: str) -> str:
        return (
            f"{n}\n00:00:{start_ms // 1000:02d},{start_ms % 1000:03d} --> "
            f"00:00:{(start_ms + 33) // 1000:02d},{(start_ms + 33) % 1000:03d}\n"
            f'<font size="28">FrameCnt: {n}, DiffTime: 33ms\n2023-02-14 {clock}\n'
            f"[iso: 100] [shutter: 1/1000.0] [fnum: 2.8] [ev: 0] [focal_len: 24.00] [latitude: 59.30233{n}] "
            f"[longitude: 18.203059] [rel_alt: 5{n}.000 abs_alt: 120.500] </font>\n\n"
        )

    text = cue(1, 0, "11:05:22.338") + cue(2, 33, "11:05:22.371") + cue(3, 67, "11:06:03.404")
    parsed = parse_srt(text + cue(4, 100, "11:06:03.437"))
    assert [(j.cue_before, j.cue_after) for j in parsed.clock_jumps] == [(2, 3)]
    assert parsed.clock_jumps[0].clock_s == pytest.approx(41.033)
    assert parsed.clock_jumps[0].video_s == pytest.approx(0.034)


def test_clock_jump_across_a_cue_without_a_clock() -> None:
    """The damaged middle cue has no date, so both of its sides count as new segments."""
    text = one_hz_srt([0, 1, 2, 131, 132], [20.0, 21.0, 22.0, 23.0, 24.0]).replace("14:13:11", "14:13:71")
    parsed = parse_srt(text)
    assert parsed.cues[3].local_time is None  # 14:13:71 is impossible
    (jump,) = parsed.clock_jumps
    assert (jump.cue_before, jump.cue_after, jump.clock_s, jump.video_s) == (3, 5, 130.0, 2.0)
    assert list(jump.new_segment_positions) == [3, 4]


@needs_fixtures
@pytest.mark.parametrize("name", ["mavic_pro.SRT", "MAVIC3.srt", "matrice_300.srt", "air2s.srt"])
def test_fixtures_have_no_clock_jumps(name: str) -> None:
    """Real continuous recordings, Mavic Pro with whole-second clock jitter, MAVIC3 at 50 fps over 4 min."""
    parsed = read_srt(FIXTURES / name)
    assert parsed.clock_jumps == ()
    assert find_clock_jumps(parsed.cues) == []
    assert not any("clock" in w for w in parsed.warnings)


@pytest.mark.parametrize(
    ("data", "lat"),
    [
        (b"\xef\xbb\xbf" + cue_text(1, ENTERPRISE).replace("\n", "\r\n").encode(), 59.302335),  # BOM + CRLF
        (cue_text(1, ENTERPRISE).replace("\n", "\r").encode(), 59.302335),  # old Mac line ends
        (cue_text(1, ENTERPRISE).encode("utf-16"), 59.302335),
        ("\ufeff" + cue_text(1, MAVIC_2), 47.6205),
        (cue_text(1, MAVIC_2).replace("<font", "<FONT color='x'").replace("</font>", ""), 47.6205),
    ],
    ids=["bom-crlf", "cr", "utf16", "str-bom", "odd-tags"],
)
def test_encodings_line_ends_and_tags(data: str | bytes, lat: float) -> None:
    parsed = parse_srt(data)
    assert parsed.cues[0].lat == pytest.approx(lat)


@pytest.mark.parametrize(
    ("date_line", "expected"),
    [
        ("2022-08-07 13:40:40,774,808", datetime(2022, 8, 7, 13, 40, 40, 774808)),
        ("2021-12-25 12:27:52.373", datetime(2021, 12, 25, 12, 27, 52, 373000)),
        ("2022-03-09 11:41:50.565,356", datetime(2022, 3, 9, 11, 41, 50, 565356)),
        ("2022.06.21 16:06:17", datetime(2022, 6, 21, 16, 6, 17)),
        ("2022-02-30 10:00:00", None),  # impossible date: warned, not invented
    ],
)
def test_date_formats(date_line: str, expected: datetime | None) -> None:
    parsed = parse_srt(cue_text(1, f"{date_line}\n[latitude: 1.5] [longitude: 2.5]"))
    assert parsed.cues[0].local_time == expected
    assert (expected is None) == any("impossible date" in w for w in parsed.warnings)


@pytest.mark.parametrize(
    ("fields", "fnum", "focal_len_mm"),
    [
        ("[fnum : 280] [focal_len : 240]", 2.8, 24.0),
        ("[fnum : 170] [focal_len : 480]", 1.7, 48.0),
        ("[fnum: 2.8] [focal_len: 24.00]", 2.8, 24.0),
        ("[fnum: 4.5] [focal_len: 162.00]", 4.5, 162.0),
    ],
)
def test_scaled_fnum_and_focal_length(fields: str, fnum: float, focal_len_mm: float) -> None:
    cue = parse_srt(cue_text(1, f"{fields} [latitude: 1.5] [longitude: 2.5]")).cues[0]
    assert (cue.fnum, cue.focal_len_mm) == pytest.approx((fnum, focal_len_mm))


@pytest.mark.parametrize(
    ("gps_lines", "order", "first_lat"),
    [
        (["GPS(36.6146,-6.1120,0.0M)", "GPS(36.6147,-6.1121,0.0M)"], "latlon", 36.6146),  # Matrice, unit M
        (["GPS(-58.4563,-34.7383,19)", "GPS(-58.4564,-34.7384,18)"], "lonlat", -34.7383),  # satellites
        (["GPS(12.0,45.0,0.0M)", "GPS(12.0,145.0,0.0M)"], "latlon", 12.0),  # a value beyond 90 decides
        (["GPS(12.0,45.0,19)", "GPS(112.0,45.0,19)"], "lonlat", 45.0),
        (["GPS(10.0,20.0)", "GPS(10.0,20.0)"], "lonlat", 20.0),  # nothing tells: assumed, and said so
    ],
)
def test_gps_order_decided_once_per_file(gps_lines: list[str], order: str, first_lat: float) -> None:
    parsed = parse_srt("".join(cue_text(i + 1, line, i, i + 1) for i, line in enumerate(gps_lines)))
    assert parsed.gps_order == order
    assert parsed.cues[0].lat == pytest.approx(first_lat)
    assert len({(c.lat is not None) for c in parsed.cues}) == 1


def test_gps_order_override() -> None:
    parsed = parse_srt(cue_text(1, "GPS(10.0,20.0,5)"), gps_order="latlon")
    assert (parsed.cues[0].lat, parsed.cues[0].lon) == (10.0, 20.0)
    assert parsed.gps_order_reason == "given by the caller"


def test_missing_gimbal_stays_none_and_zero_fix_is_dropped() -> None:
    text = cue_text(1, "[latitude: 0.000000] [longitude: 0.000000] [rel_alt: 5.0 abs_alt: 10.0]")
    parsed = parse_srt(text)
    cue = parsed.cues[0]
    assert (cue.lat, cue.lon, cue.rel_alt_m, cue.gimbal_yaw_deg, cue.gimbal_pitch_deg) == (None, None, 5.0, None, None)
    assert any("0,0 (no GPS fix)" in w for w in parsed.warnings)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("", "no subtitle cues"),
        ("hello\nworld\n", "no subtitle cues"),
        (b"\x00\x01\x02\xff\xfe", "no subtitle cues"),
        (cue_text(1, "nothing to see") + cue_text(2, "[color_md : default]"), "none carries telemetry"),
    ],
)
def test_nothing_usable_raises(data: str | bytes, message: str) -> None:
    with pytest.raises(SrtParseError, match=message):
        parse_srt(data)


def test_unreadable_file_raises(tmp_path: Path) -> None:
    with pytest.raises(SrtParseError, match="cannot read SRT file"):
        read_srt(tmp_path / "missing.SRT")


def test_damaged_cues_warn_and_keep_the_rest() -> None:
    good = [cue_text(i, f"GPS(149.0,-20.{i},16) BAROMETER:{i}.0", i, i + 1) for i in range(1, 10)]
    text = "".join(good) + "10\n00:00:12,000 --> 00:00:11,000\nGPS(149.0,-20.9,16) BAROMETER:oops\n"
    parsed = parse_srt(text)
    assert len(parsed.cues) == 10
    assert parsed.cues[-1].rel_alt_m is None and parsed.cues[-1].lat == pytest.approx(-20.9)
    assert any("ends before it starts" in w for w in parsed.warnings)
    assert any("cue 10 lacks rel_alt_m" in w for w in parsed.warnings)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_crashes_on_text(text: str) -> None:
    with contextlib.suppress(SrtParseError):
        parse_srt(text)


@settings(max_examples=300, deadline=None)
@given(st.binary())
def test_never_crashes_on_bytes(data: bytes) -> None:
    with contextlib.suppress(SrtParseError):
        parse_srt(data)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=2000), st.text(max_size=40))
def test_never_crashes_on_damaged_srt(cut: int, junk: str) -> None:
    text = "".join(cue_text(i + 1, body, i, i + 1) for i, body in enumerate([P4_RTK, MAVIC_2, ENTERPRISE, MATRICE]))
    try:
        parsed = parse_srt(text[:cut] + junk + text[cut:])
    except SrtParseError:
        return
    for cue in parsed.cues:
        for value in (cue.lat, cue.lon, cue.rel_alt_m, cue.gimbal_pitch_deg):
            assert value is None or math.isfinite(value)


def _cue(index: int, **overrides: object) -> SrtCue:
    base: dict[str, object] = {
        "index": index,
        "start_s": index / 30.0,
        "end_s": (index + 1) / 30.0,
        "local_time": datetime(2024, 5, 1, 10, 0, 0, index * 33000),
        "lat": 41.3851 + index * 1e-5,
        "lon": 2.1734 - index * 1e-5,
        "rel_alt_m": 60.0 + index,
        "abs_alt_m": 120.25,
        "aircraft_yaw_deg": 179.5,
        "aircraft_pitch_deg": -3.25,
        "aircraft_roll_deg": 1.5,
        "gimbal_yaw_deg": -179.75,
        "gimbal_pitch_deg": -45.5,
        "gimbal_roll_deg": 0.0,
        "focal_len_mm": 24.0,
        "fnum": 2.8,
        "iso": 100,
        "shutter_s": 1 / 1000,
        "ev": -0.7,
    }
    base.update(overrides)
    return SrtCue(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "cues",
    [
        [_cue(i) for i in range(5)],
        [_cue(0, gimbal_yaw_deg=None, gimbal_pitch_deg=None, gimbal_roll_deg=None, local_time=None), _cue(1)],
        [_cue(0, rel_alt_m=None, iso=None, shutter_s=None), _cue(1, abs_alt_m=None, lat=None, lon=None)],
    ],
    ids=["full", "no-gimbal-no-date", "partial"],
)
def test_writer_round_trip(tmp_path: Path, cues: list[SrtCue]) -> None:
    path = tmp_path / "sim.SRT"
    write_srt(cues, path)
    parsed = read_srt(path)
    assert parsed.warnings == [] or all("lacks" in w for w in parsed.warnings)
    assert len(parsed.cues) == len(cues)
    for written, read in zip(cues, parsed.cues, strict=True):
        assert read.start_s == pytest.approx(written.start_s, abs=1e-3)
        assert read.end_s == pytest.approx(written.end_s, abs=1e-3)
        assert read.local_time == (
            None
            if written.local_time is None
            else written.local_time.replace(microsecond=written.local_time.microsecond // 1000 * 1000)
        )
        for name in ("lat", "lon"):
            assert getattr(read, name) == pytest.approx(getattr(written, name), abs=1e-7)
        for name in ("rel_alt_m", "abs_alt_m", "aircraft_yaw_deg", "gimbal_pitch_deg", "gimbal_yaw_deg", "ev"):
            assert getattr(read, name) == pytest.approx(getattr(written, name), abs=1e-3)
        assert (read.iso, read.fnum, read.focal_len_mm) == (written.iso, written.fnum, written.focal_len_mm)
        expected_shutter = None if written.shutter_s is None else pytest.approx(written.shutter_s, rel=1e-3)
        assert read.shutter_s == expected_shutter


def test_format_looks_like_dji() -> None:
    text = format_srt([_cue(1)])
    assert '<font size="28">FrameCnt: 1, DiffTime: 33ms' in text
    assert "[latitude: 41.3851100] [longitude: 2.1733900]" in text
    assert "[gb_yaw: -179.750 gb_pitch: -45.500 gb_roll: 0.000]" in text
