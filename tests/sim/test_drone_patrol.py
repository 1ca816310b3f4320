"""drone-patrol: the .SRT reads back through detector/geo, the flight is a plausible patrol, the truth agrees with
the camera model both ways, stalls are seen on two passes, and seeds decide the world."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from detector.geo.camera import Attitude, PinholeCamera
from detector.geo.enu import LocalTangentPlane, offset_m
from detector.geo.projection import DroneProjector
from detector.geo.srt import read_srt
from detector.geo.sync import TelemetryTrack
from detector.ingest.video import probe, read_frames
from detector.sim.runner import RenderSummary, render_scenario
from detector.sim.truth import Truth
from detector.sim.views import FlightSettings
from detector.types import Telemetry

Drone = tuple[RenderSummary, Truth]


def test_the_srt_reads_back_as_the_telemetry_that_was_written(drone: Drone) -> None:
    summary, truth = drone
    parsed = read_srt(summary.out_dir / "flight.srt")
    assert parsed.warnings == []
    assert len(parsed.cues) == len(truth.frames)
    for cue, frame in zip(parsed.cues, truth.frames, strict=True):
        written = frame.telemetry
        assert written is not None
        assert cue.start_s == pytest.approx(frame.t_s, abs=1e-3)
        assert (cue.lat, cue.lon) == pytest.approx((written["lat"], written["lon"]), abs=1e-7)
        assert cue.rel_alt_m == pytest.approx(written["rel_alt_m"], abs=1e-3)
        assert cue.gimbal_yaw_deg == pytest.approx(written["gimbal_yaw_deg"], abs=1e-3)
        assert cue.gimbal_pitch_deg == pytest.approx(written["gimbal_pitch_deg"], abs=1e-3)
    # Through the service's own sync: the telemetry at a frame's time is that frame's cue.
    track = TelemetryTrack.from_srt(parsed.cues)
    at = track.at(truth.frames[10].t_s)
    assert at is not None and at.lat == pytest.approx(parsed.cues[10].lat)


def test_the_written_telemetry_errs_from_the_flown_pose_by_the_configured_noise(drone: Drone) -> None:
    _, truth = drone
    noise = FlightSettings().noise
    errors = []
    for frame in truth.frames:
        assert frame.pose is not None and frame.telemetry is not None
        lat, lon = frame.telemetry["lat"], frame.telemetry["lon"]
        assert lat is not None and lon is not None
        east, north = offset_m(frame.pose["lat"], frame.pose["lon"], lat, lon)
        errors.append(math.hypot(east, north))
    assert 0.1 < float(np.median(errors)) < 3 * noise.gps_m
    assert max(errors) < 6 * noise.gps_m


def test_the_flight_is_a_patrol_of_about_a_kilometre(drone: Drone) -> None:
    _, truth = drone
    poses = [f.pose for f in truth.frames if f.pose is not None]
    steps = [math.hypot(b["east_m"] - a["east_m"], b["north_m"] - a["north_m"]) for a, b in itertools.pairwise(poses)]
    dt = 1.0 / truth.fps
    assert 900 < sum(steps) < 1100
    assert max(steps) / dt == pytest.approx(FlightSettings().speed_m_s, rel=0.02)
    assert all(30 <= p["altitude_m"] <= 120 and -90 <= p["gimbal_pitch_deg"] <= -45 for p in poses)


def _camera(truth: Truth, pose: dict[str, float]) -> PinholeCamera:
    intrinsics = FlightSettings().profile().intrinsics(truth.width, truth.height)
    position = (pose["east_m"], pose["north_m"], pose["altitude_m"])
    return PinholeCamera.from_angles(intrinsics, position, Attitude(pose["yaw_deg"], pose["gimbal_pitch_deg"], 0.0))


def test_each_object_s_lat_lon_projects_into_its_box(drone: Drone) -> None:
    _, truth = drone
    plane = LocalTangentPlane(truth.anchor_lat, truth.anchor_lon)
    objects = {o.id: o for o in truth.objects}
    checked = 0
    for frame in truth.frames:
        assert frame.pose is not None
        camera = _camera(truth, frame.pose)
        for box in frame.objects:
            if box.visibility < 0.9 or box.truncated:
                continue
            o = objects[box.id]
            east, north = plane.to_enu([o.lat], [o.lon])
            pixels, _ = camera.project([(float(east[0]), float(north[0]), 0.0)])
            u, v = pixels[0]
            x1, y1, x2, y2 = box.box
            assert x1 - 1 <= u <= x2 + 1 and y1 - 1 <= v <= y2 + 1, (o.id, o.cls, frame.t_s)
            checked += 1
    assert checked > 50


def test_the_service_s_projector_locates_potholes_from_the_flown_pose(drone: Drone) -> None:
    _, truth = drone
    projector = DroneProjector(FlightSettings().profile())
    objects = {o.id: o for o in truth.objects}
    errors = []
    for frame in truth.frames[::3]:
        assert frame.pose is not None
        p = frame.pose
        telemetry = Telemetry(lat=p["lat"], lon=p["lon"], altitude_agl_m=p["altitude_m"],
                              gimbal_yaw_deg=p["yaw_deg"], gimbal_pitch_deg=p["gimbal_pitch_deg"])  # fmt: skip
        for box in frame.objects:
            o = objects[box.id]
            if o.cls != "pothole" or box.visibility < 0.99 or box.truncated:
                continue
            x1, y1, x2, y2 = box.box
            (result,) = projector.locate([((x1 + x2) / 2, (y1 + y2) / 2)], telemetry, truth.width, truth.height)
            assert result.location is not None, result.reason
            errors.append(math.hypot(*offset_m(o.lat, o.lon, result.location.lat, result.location.lon)))
    assert len(errors) >= 5
    # A pixel at 320 px wide covers about 0.2-0.4 m here; the box centre of a ragged hole is off its centre a bit.
    assert max(errors) < 1.0


def test_stalls_on_the_return_stretch_are_seen_on_two_passes(drone: Drone) -> None:
    _, truth = drone
    twice = 0
    for o in (o for o in truth.objects if o.cls == "stall"):
        times = [f.t_s for f, _ in truth.sightings(o.id, 0.3)]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        twice += bool(gaps) and max(gaps) > 15.0
    assert twice >= 3


def test_the_video_has_one_frame_per_truth_frame_at_its_time(drone: Drone) -> None:
    summary, truth = drone
    info = probe(summary.out_dir / "video.mp4")
    assert (info.width, info.height) == (truth.width, truth.height)
    times = [t for t, _ in read_frames(summary.out_dir / "video.mp4")]
    assert len(times) == len(truth.frames)
    assert times[5] == pytest.approx(truth.frames[5].t_s, abs=1e-3)


def _render(out: Path, seed: int) -> tuple[dict[str, object], str]:
    render_scenario("drone-patrol", out, seed=seed, minutes=0.1, fps=1.0, width=160, height=96, video=False,
                    progress=False)  # fmt: skip
    return json.loads((out / "truth.json").read_text()), (out / "flight.srt").read_text()


def test_the_same_seed_gives_the_same_world_and_another_seed_another(tmp_path: Path) -> None:
    first, second, other = (_render(tmp_path / name, seed) for name, seed in (("a", 4), ("b", 4), ("c", 5)))
    assert first == second
    assert first[0]["objects"] != other[0]["objects"]
    assert first[1] != other[1]


@pytest.mark.parametrize(("field", "value"), [("altitude_m", 150.0), ("gimbal_pitch_deg", -30.0)])
def test_flight_settings_outside_a_patrol_s_envelope_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValidationError, match=field):
        FlightSettings.model_validate({field: value})
