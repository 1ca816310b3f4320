"""Telemetry synced to video time: interpolation, angles on the circle, gaps and the ends of the track."""

from __future__ import annotations

from datetime import datetime

import pytest

from detector.geo.srt import SrtCue, parse_srt, read_srt
from detector.geo.sync import TelemetryTrack
from detector.types import Telemetry

from .test_srt import FIXTURES, needs_fixtures, one_hz_srt


def make_cue(index: int, start_s: float, duration_s: float = 1.0, **fields: float | datetime | None) -> SrtCue:
    return SrtCue(index=index, start_s=start_s, end_s=start_s + duration_s, **fields)  # type: ignore[arg-type]


ONE_HZ = [
    make_cue(1, 0.0, lat=41.0, lon=2.0, rel_alt_m=50.0, gimbal_yaw_deg=170.0, gimbal_pitch_deg=-90.0),
    make_cue(2, 1.0, lat=41.001, lon=2.002, rel_alt_m=60.0, gimbal_yaw_deg=-170.0, gimbal_pitch_deg=-80.0),
    make_cue(3, 2.0, lat=41.002, lon=2.004, rel_alt_m=70.0, gimbal_yaw_deg=-150.0),
]


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (0.0, Telemetry(lat=41.0, lon=2.0, altitude_agl_m=50.0, gimbal_yaw_deg=170.0, gimbal_pitch_deg=-90.0)),
        (0.5, Telemetry(lat=41.0005, lon=2.001, altitude_agl_m=55.0, gimbal_yaw_deg=-180.0, gimbal_pitch_deg=-85.0)),
        (
            10 / 30,
            Telemetry(
                lat=41 + 1 / 3000,
                lon=2 + 2 / 3000,
                altitude_agl_m=50 + 10 / 3,
                gimbal_yaw_deg=170 + 20 / 3,
                gimbal_pitch_deg=-90 + 10 / 3,
            ),
        ),
        (1.5, Telemetry(lat=41.0015, lon=2.003, altitude_agl_m=65.0, gimbal_yaw_deg=-160.0)),  # pitch missing after
        (2.0, Telemetry(lat=41.002, lon=2.004, altitude_agl_m=70.0, gimbal_yaw_deg=-150.0)),
        (2.9, Telemetry(lat=41.002, lon=2.004, altitude_agl_m=70.0, gimbal_yaw_deg=-150.0)),  # inside the last cue
        (3.3, Telemetry(lat=41.002, lon=2.004, altitude_agl_m=70.0, gimbal_yaw_deg=-150.0)),  # within tolerance
        (-0.4, Telemetry(lat=41.0, lon=2.0, altitude_agl_m=50.0, gimbal_yaw_deg=170.0, gimbal_pitch_deg=-90.0)),
        (3.6, None),
        (-0.6, None),
        (float("nan"), None),
    ],
)
def test_interpolation_at_video_time(t: float, expected: Telemetry | None) -> None:
    got = TelemetryTrack.from_srt(ONE_HZ, tolerance_s=0.5).at(t)
    if expected is None:
        assert got is None
        return
    assert got is not None
    for name in Telemetry.__dataclass_fields__:
        want = getattr(expected, name)
        assert getattr(got, name) == (None if want is None else pytest.approx(want, abs=1e-9)), name


def test_every_frame_of_30fps_video_gets_telemetry() -> None:
    track = TelemetryTrack.from_srt(ONE_HZ)
    frames = [track.at(i / 30.0) for i in range(90)]
    assert all(f is not None and f.lat is not None for f in frames)
    lats = [f.lat for f in frames if f is not None and f.lat is not None]
    assert lats == sorted(lats)


def test_gap_is_not_bridged() -> None:
    cues = [make_cue(1, 0.0, lat=41.0, lon=2.0), make_cue(2, 10.0, lat=41.1, lon=2.1)]
    track = TelemetryTrack.from_srt(cues, tolerance_s=0.5, max_gap_s=2.5)
    assert track.at(5.0) is None
    near = track.at(9.7)
    assert near is not None and near.lat == pytest.approx(41.1)


def test_time_offset_and_ground_altitude() -> None:
    cues = [make_cue(1, 0.0, lat=41.0, lon=2.0, abs_alt_m=117.0), make_cue(2, 1.0, lat=41.0, lon=2.0, abs_alt_m=119.0)]
    assert TelemetryTrack.from_srt(cues).at(0.5).altitude_agl_m is None  # type: ignore[union-attr]
    track = TelemetryTrack.from_srt(cues, ground_abs_alt_m=17.0, time_offset_s=10.0)
    assert track.span_s == (10.0, 12.0)
    assert track.at(10.5).altitude_agl_m == pytest.approx(101.0)  # type: ignore[union-attr]


def test_bad_tracks_are_rejected() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        TelemetryTrack([], [])
    with pytest.raises(ValueError, match="must not decrease"):
        TelemetryTrack([1.0, 0.0], [Telemetry(), Telemetry()])


@needs_fixtures
def test_matrice_1hz_fixture_at_30fps() -> None:
    track = TelemetryTrack.from_srt(read_srt(FIXTURES / "matrice_300.srt").cues)
    frames = [track.at(i / 30.0) for i in range(0, 381 * 30, 7)]
    assert all(f is not None and f.altitude_agl_m is not None for f in frames)
    mid = track.at(100.5)  # between GPS(36.6166,-6.1151) BAROMETER:84.1M and GPS(36.6167,-6.1151) BAROMETER:84.3M
    assert mid is not None
    assert (mid.lat, mid.lon, mid.altitude_agl_m) == pytest.approx((36.61665, -6.1151, 84.2))


# A 1 Hz Mavic Pro style file whose drone clock jumps 129 s between cue 3 (video 2 s) and cue 4 (video 3 s).
JUMP_CLOCK_S = [0, 1, 2, 131, 132, 133]
JUMP_HEIGHTS_M = [20.0, 21.0, 22.0, 80.0, 81.0, 82.0]


@pytest.mark.parametrize(
    ("t", "height_m", "lat"),
    [
        (1.5, 21.5, -20.25345),  # within a segment: interpolated as before
        (2.0, 22.0, -20.2535),
        (2.1, 22.0, -20.2535),  # between the two sides of the jump: the cue shown then, not a blend
        (2.5, 22.0, -20.2535),
        (2.97, 22.0, -20.2535),
        (3.0, 80.0, -20.2536),  # the first cue of the new segment
        (3.5, 80.5, -20.25365),
    ],
)
def test_no_blend_across_a_clock_jump(t: float, height_m: float, lat: float) -> None:
    track = TelemetryTrack.from_srt(parse_srt(one_hz_srt(JUMP_CLOCK_S, JUMP_HEIGHTS_M)).cues)
    got = track.at(t)
    assert got is not None
    assert (got.altitude_agl_m, got.lat) == pytest.approx((height_m, lat), abs=1e-9)


def test_same_cues_without_the_jump_are_blended() -> None:
    """The control: identical cues with a continuous clock interpolate across video 2-3 s."""
    track = TelemetryTrack.from_srt(parse_srt(one_hz_srt([0, 1, 2, 3, 4, 5], JUMP_HEIGHTS_M)).cues)
    assert track.at(2.5).altitude_agl_m == pytest.approx(51.0)  # type: ignore[union-attr]


def test_a_cue_without_a_clock_beside_a_jump_is_not_blended_either() -> None:
    text = one_hz_srt(JUMP_CLOCK_S, JUMP_HEIGHTS_M).replace("14:13:11", "14:13:71")  # cue 4's date is damaged
    track = TelemetryTrack.from_srt(parse_srt(text).cues)
    heights = [track.at(t).altitude_agl_m for t in (2.5, 3.0, 3.5, 4.0, 4.5)]  # type: ignore[union-attr]
    assert heights == pytest.approx([22.0, 80.0, 80.0, 81.0, 81.5])


def test_a_jump_over_a_long_gap_holds_only_within_the_tolerance() -> None:
    cues = [
        make_cue(1, 0.0, rel_alt_m=20.0, local_time=datetime(2017, 8, 5, 14, 11, 0)),
        make_cue(2, 10.0, rel_alt_m=80.0, local_time=datetime(2017, 8, 5, 14, 30, 0)),
    ]
    track = TelemetryTrack.from_srt(cues, tolerance_s=0.5, max_gap_s=2.5)
    assert track.at(0.4).altitude_agl_m == pytest.approx(20.0)  # type: ignore[union-attr]
    assert track.at(5.0) is None
    assert track.at(9.7) is None, "before the new segment's first cue: the old side is too far, no blend"
    assert track.at(10.0).altitude_agl_m == pytest.approx(80.0)  # type: ignore[union-attr]


def test_segment_starts_must_be_sample_positions() -> None:
    with pytest.raises(ValueError, match="segment start 2 is not a sample position"):
        TelemetryTrack([0.0, 1.0], [Telemetry(), Telemetry()], segment_starts=[2])
