"""A recorded flight: every video frame gets the telemetry of its video time, interpolated between 1 Hz cues."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from detector.geo.camera import CameraProfile
from detector.geo.errors import SrtParseError
from detector.geo.flight import NO_SRT, FlightTelemetry, flight_frames
from detector.geo.projection import DroneProjector
from detector.geo.srt import SrtCue, format_srt
from detector.ingest.video import VideoError
from tests.geo.synthetic import write_video
from tests.geo.test_srt import EARLY_PHANTOM, cue_text, one_hz_srt

ONE_HZ_SRT = format_srt(
    SrtCue(i + 1, float(i), float(i + 1), lat=41.0 + i * 1e-4, lon=2.0, rel_alt_m=50.0 + 10 * i, gimbal_pitch_deg=-90.0)
    for i in range(3)
)


def video_of(tmp_path: Path, seconds: int = 3, fps: int = 30) -> Path:
    images = [np.full((48, 64, 3), i % 250, np.uint8) for i in range(seconds * fps)]
    return write_video(tmp_path / "flight.mp4", images, fps)


def test_30fps_frames_get_interpolated_1hz_telemetry(tmp_path: Path) -> None:
    telemetry = FlightTelemetry.from_srt(ONE_HZ_SRT)
    assert (telemetry.cues, telemetry.warnings, telemetry.span_s) == (3, (), (0.0, 3.0))
    frames = list(flight_frames(video_of(tmp_path), telemetry.track))
    assert len(frames) == 90
    assert [round(f.video_s * 30) for f in frames] == list(range(90)), "video time from the stream, not a count"
    heights = [f.telemetry.altitude_agl_m for f in frames if f.telemetry]
    assert len(heights) == 90
    assert heights[15] == pytest.approx(55.0) and heights[45] == pytest.approx(65.0)
    assert heights[89] == pytest.approx(70.0), "the last cue holds to its end"
    assert all(b >= a for a, b in itertools.pairwise(heights))


def test_sampling_and_an_offset(tmp_path: Path) -> None:
    telemetry = FlightTelemetry.from_srt(ONE_HZ_SRT, time_offset_s=0.5)
    frames = list(flight_frames(video_of(tmp_path), telemetry.track, every_s=0.5))
    assert [f.video_s for f in frames] == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    assert [f.telemetry.altitude_agl_m if f.telemetry else None for f in frames] == pytest.approx(
        [50.0, 50.0, 55.0, 60.0, 65.0, 70.0]
    ), "video 0.0 s is within the tolerance before the first (shifted) cue"


def test_a_flight_without_srt_has_no_telemetry_and_says_so(tmp_path: Path) -> None:
    telemetry = FlightTelemetry.from_srt(None)
    assert telemetry.warnings == (NO_SRT,) and telemetry.cues == 0
    assert all(f.telemetry is None for f in flight_frames(video_of(tmp_path, seconds=1), telemetry.track))


def test_bad_files_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SrtParseError, match="no subtitle cues found"):
        FlightTelemetry.from_srt(b"not a subtitle file")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 500)
    with pytest.raises(VideoError, match="cannot open video"):
        list(flight_frames(broken, None))


def test_early_phantom_hb_height_gives_a_drone_ground_fix() -> None:
    """``Hb`` is the height above take-off: with it a frame of an early Phantom 3 / Inspire 1 flight is located."""
    climb = [("Hb:1.9 Hs:1.9", "09:41:07"), ("Hb:24.6 Hs:0.0", "09:41:08"), ("Hb:47.3 Hs:0.0", "09:41:09")]
    srt = "".join(
        cue_text(i + 1, EARLY_PHANTOM.replace("Hb:1.9 Hs:1.9", hb_hs).replace("09:41:07", clock), i, i + 1)
        for i, (hb_hs, clock) in enumerate(climb)
    )
    telemetry = FlightTelemetry.from_srt(srt)
    assert telemetry.warnings == ()
    assert telemetry.track is not None
    pose = telemetry.track.at(1.5)
    assert pose is not None and pose.altitude_agl_m == pytest.approx(35.95)
    profile = CameraProfile(name="phantom3", focal_35mm_mm=20.0, image_width_px=1920, image_height_px=1080)
    (fix,) = DroneProjector(profile).locate([(960.0, 540.0)], pose)
    assert fix.reason == "" and fix.location is not None, fix.reason
    assert (fix.location.lat, fix.location.lon) == pytest.approx((-20.2533, 149.0251), abs=1e-6), "nadir: below"


def test_a_clock_jump_is_a_flight_warning_and_is_not_blended() -> None:
    telemetry = FlightTelemetry.from_srt(one_hz_srt([0, 1, 2, 131, 132, 133], [20.0, 21.0, 22.0, 80.0, 81.0, 82.0]))
    assert [w for w in telemetry.warnings if "drone clock jumps +129.0 s between cue 3 and cue 4" in w]
    assert telemetry.track is not None
    heights = [telemetry.track.at(i / 30.0) for i in range(60, 91)]  # the frames of video 2-3 s
    assert [h.altitude_agl_m for h in heights if h] == pytest.approx([22.0] * 30 + [80.0])
