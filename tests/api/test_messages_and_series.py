"""Metrics series of a running service (incidents, detections by class, the model), and the message a client
prints when a frame is over the service's ``server.max_message_bytes`` (issue 20)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from detector.api.client import IngestClient
from detector.cli import main
from detector.config import load_config
from detector.server import start_service
from tests.api.scripted import scripted_overrides, stall_frames, write_spec
from tests.api.serving import frames_of
from tests.conftest import LoopThread, run


def test_incident_detection_and_model_series_after_a_stall_comes_and_goes(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "blobs.yaml")
    config = load_config(None, environ={}, overrides=["server.port=0", *scripted_overrides(spec, tmp_path / "data")])
    frames = stall_frames("cam-1", seconds=240, fps=2, present=[(10, 150)])

    async def go() -> dict[str, float | None]:
        service = await start_service(config)
        try:
            async with IngestClient(f"127.0.0.1:{service.port}") as client:
                results = [r async for r in client.stream(frames_of(frames))]
            assert len(results) == len(frames)
            await service.writer.flush()
            registry = service.metrics.registry
            labels = {"category": "ROAD_OCCUPYING_STALL", "source": "cam-1"}
            info = {
                "name": "colour-blobs",
                "version": service.pipeline.core.engine.version,
                "backend": "colour-blobs",
                "device": "cpu",
                "imgsz": str(service.pipeline.core.engine.imgsz),
            }
            return {
                "opened": registry.get_sample_value("streetwatch_incidents_opened_total", labels),
                "cleared": registry.get_sample_value("streetwatch_incidents_cleared_total", labels),
                "stalls": registry.get_sample_value("streetwatch_detections_total", {"class_name": "stall"}),
                "model": registry.get_sample_value("streetwatch_model_info", info),
                "events": float(service.store.last_sequence()),
            }
        finally:
            await service.stop(1)

    series = run(go())
    assert series["events"] == 2, "one stall: OPENED then CLEARED"
    assert (series["opened"], series["cleared"]) == (1.0, 1.0)
    assert series["stalls"] == 280.0, "140 s of a stall at 2 frames per second, one box each"
    assert series["model"] == 1.0, series


def test_a_frame_over_max_message_bytes_names_the_setting(
    tmp_path: Path, loop_thread: LoopThread, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path / "blobs.yaml")
    overrides = ["server.port=0", "server.max_message_bytes=4096", *scripted_overrides(spec, tmp_path / "data")]
    service = loop_thread.run(start_service(load_config(None, environ={}, overrides=overrides)))
    folder = tmp_path / "frames"
    folder.mkdir()
    noise = np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)  # does not compress
    assert cv2.imwrite(str(folder / "000001.png"), noise)
    try:
        code = main(["replay", str(folder), "--target", f"127.0.0.1:{service.port}", "--source-id", "cam-1"])
    finally:
        loop_thread.run(service.stop(1))
    err = capsys.readouterr().err
    assert code == 1, err
    assert "RESOURCE_EXHAUSTED" in err and "server.max_message_bytes" in err, err
