"""Geotagged incidents through the real service: a drone streaming frames with telemetry, and a calibrated fixed
camera, over gRPC on loopback; events read back with `detector subscribe --json` as a case system would.

The colour-blob engine stands in for the model (a red patch is a stall). The patches are drawn where the
production camera model puts the stall, so the service's location can be compared with the truth.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.client import IngestClient, make_frame
from detector.config import ServiceConfig, load_config
from detector.server import start_service
from detector.types import DeliveryMode, Telemetry
from tests.api.scripted import RED, T0, write_spec
from tests.api.serving import frames_of
from tests.geo.synthetic import (
    DRONE_PROFILE,
    LAT,
    LON,
    control_points,
    distance_m,
    drone_pixel,
    drone_telemetry,
    fixed_pixel,
    geo_square,
)

STALL_ENU = (0.0, 0.0)  # the drone's stall, at (LAT, LON)
FIXED_STALL_ENU = (1.0, 15.0)  # the fixed camera's stall, 15 m in front of it


def geo_config(tmp_path: Path) -> ServiceConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec = write_spec(tmp_path / "blobs.yaml")
    stall = {
        "classes": ["stall"],
        "case_code": "200501",
        "label": "无照经营游商",
        "severity": "medium",
        "rule": "dwell",
    }
    rules = {
        "categories": {"ROAD_OCCUPYING_STALL": stall},
        "default_source": {"confirm": {}},
        "sources": {
            "drone-1": {"camera": "moving", "geo": {"camera_profile": DRONE_PROFILE, "dedup_radius_m": 10}},
            "cam-geo": {
                "dwell_s": 5,
                "geo": {
                    "calibration": {"control_points": control_points()},
                    "position": {"lat": LAT, "lon": LON, "height_m": 8},
                    "zones": [
                        {
                            "id": "crossing",
                            "geometry": geo_square(*FIXED_STALL_ENU, 3.0),
                            "prohibited_classes": ["stall"],
                        }
                    ],
                },
            },
        },
    }
    overrides = [
        "server.port=0",
        "model.backend=colour-blobs",
        f"model.weights={spec}",
        f"store.data_dir={tmp_path / 'data'}",
        "model.warmup_batch_sizes=[1]",
        f"rules={json.dumps(rules, ensure_ascii=False)}",
    ]
    return load_config(None, environ={}, overrides=overrides)


def patch_at(bottom_centre: tuple[float, float], size_px: int = 8) -> np.ndarray:
    """A street-grey 320x240 frame with a red patch standing on the given pixel."""
    image = np.full((240, 320, 3), 90, np.uint8)
    u, v = round(bottom_centre[0]), round(bottom_centre[1])
    image[max(v - size_px, 0) : v, max(u - size_px // 2, 0) : u + size_px // 2] = RED
    return image


def drone_pass(start_s: float, seq0: int, fps: float = 5.0, seconds: float = 6.0) -> list[pb.Frame]:
    """The drone flies north at 5 m/s, 40 m up, camera 60 degrees down, over the stall."""
    frames = []
    for i in range(int(seconds * fps)):
        t = i / fps
        telemetry = drone_telemetry(
            0.3, -22.0 + 5.0 * t, gimbal_pitch_deg=-60.0, gimbal_yaw_deg=0.0, aircraft_yaw_deg=2.0
        )
        pixel = drone_pixel(telemetry, *STALL_ENU)
        image = patch_at(pixel) if pixel is not None and pixel[1] > 10 else np.full((240, 320, 3), 90, np.uint8)
        frames.append(
            make_frame(
                "drone-1", seq0 + i + 1, T0 + start_s + t, image=image, telemetry=telemetry, mode=DeliveryMode.LOSSLESS
            )
        )
    return frames


def fixed_frames(seconds: int = 8) -> list[pb.Frame]:
    image = patch_at(fixed_pixel(*FIXED_STALL_ENU))
    return [make_frame("cam-geo", i + 1, T0 + i, image=image, mode=DeliveryMode.LOSSLESS) for i in range(seconds)]


def subscribe_json(target: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "detector.cli",
            "subscribe",
            "--target",
            target,
            "--json",
            "--after",
            "0",
            "--idle-timeout",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_drone_and_calibrated_camera_incidents_carry_locations_and_poses(tmp_path: Path, loop_thread) -> None:
    service = loop_thread.run(start_service(geo_config(tmp_path)))
    target = f"127.0.0.1:{service.port}"
    try:

        async def send(frames: list[pb.Frame]) -> list[pb.FrameResult]:
            async with IngestClient(target) as client:
                return [r async for r in client.stream(frames_of(frames))]

        # Two passes a minute apart, and the fixed camera.
        results = loop_thread.run(send(drone_pass(0.0, 0) + drone_pass(60.0, 1000) + fixed_frames()))
        events = subscribe_json(target)
    finally:
        loop_thread.run(service.stop(1))

    assert all(not r.HasField("error") for r in results)
    assert sum(len(r.detections) for r in results if r.source_id == "drone-1") >= 30, "the stall is in view"
    drone = [e for e in events if e["source_id"] == "drone-1"]
    fixed = [e for e in events if e["source_id"] == "cam-geo"]

    assert len({e["incident_id"] for e in drone}) == 1, "two passes over one stall make one incident"
    assert [e["type"] for e in drone].count("OPENED") == 1 and "CLEARED" not in [e["type"] for e in drone]
    opened = drone[0]
    location = drone[-1]["location"]
    assert location["method"] == "DRONE_PROJECTION"
    assert distance_m(location["lat"], location["lon"], *STALL_ENU) < 1.5
    assert 1.0 < location["accuracy_m"] < 10.0
    pose = opened["source_pose"]
    first_pose = drone_telemetry(0.3, -22.0, gimbal_pitch_deg=-60.0, gimbal_yaw_deg=0.0, aircraft_yaw_deg=2.0)
    assert pose["altitude_agl_m"] == 40.0 and pose["gimbal_pitch_deg"] == -60.0
    assert abs(pose["lat"] - (first_pose.lat or 0)) < 2e-5, "the pose when the stall was first seen, early in pass 1"
    assert opened["location_note"] == ""

    assert [e["type"] for e in fixed] == ["OPENED"]
    event = fixed[0]
    assert event["zone_id"] == "crossing" and event["location"]["method"] == "HOMOGRAPHY"
    assert distance_m(event["location"]["lat"], event["location"]["lon"], *FIXED_STALL_ENU) < 0.5
    assert event["source_pose"] == {"lat": LAT, "lon": LON, "altitude_agl_m": 8.0}


def test_bad_telemetry_is_a_per_frame_error_and_the_stream_goes_on(tmp_path: Path, loop_thread) -> None:
    service = loop_thread.run(start_service(geo_config(tmp_path)))
    target = f"127.0.0.1:{service.port}"
    good = drone_telemetry(0.0, 0.0, gimbal_pitch_deg=-90.0)
    image = np.full((240, 320, 3), 90, np.uint8)
    frames = [make_frame("drone-1", 1, T0, image=image, telemetry=Telemetry(gimbal_pitch_deg=-400.0))]
    nan = make_frame("drone-1", 2, T0 + 1, image=image, telemetry=good)
    nan.telemetry.gimbal_yaw_deg = float("nan")
    frames += [nan, make_frame("drone-1", 3, T0 + 2, image=image, telemetry=good)]
    try:

        async def send() -> list[pb.FrameResult]:
            async with IngestClient(target) as client:
                return [r async for r in client.stream(frames_of(frames))]

        results = loop_thread.run(send())
    finally:
        loop_thread.run(service.stop(1))
    codes = [pb.FrameErrorCode.Name(r.error.code) if r.HasField("error") else "ok" for r in results]
    assert codes == ["INVALID_FRAME", "INVALID_FRAME", "ok"]
    assert "gimbal_pitch_deg -400.0 is outside [-180, 180]" in results[0].error.message
    assert "telemetry.gimbal_yaw_deg must be finite" in results[1].error.message
