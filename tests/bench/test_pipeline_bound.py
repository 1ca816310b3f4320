"""The pipeline bound (decode as the service does + letterbox + forward + NMS), its place in the report, and how far
boxes move when a JPEG is decoded reduced instead of whole. Speed is never asserted beyond "roughly below"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detector.bench import bound as bound_module
from detector.bench.bound import BatchSpeed, BoundResult, engine_bound
from detector.bench.decode_shift import DecodeShift, check_decode_shift
from detector.bench.frames import build_frames
from detector.bench.machine import MachineInfo
from detector.bench.report import as_json, markdown, ratios, summary
from detector.bench.stats import Latency
from detector.bench.throughput import RunResult, ThroughputReport, ThroughputSettings
from detector.config import DEFAULT_WEIGHTS
from detector.inference.engine import Engine, ModelSettings
from detector.ingest.config import IngestSettings
from detector.ingest.decode import ImageLimits
from detector.types import ImageArray
from tests.conftest import shared_path

LIMITS = IngestSettings().limits


@pytest.fixture
def decoded_scales(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every scale the bound's decoding used."""
    scales: list[int] = []
    real = bound_module.decode_scaled

    def recording(data: bytes, limits: ImageLimits, policy=None) -> tuple[ImageArray, int]:
        image, scale = real(data, limits, policy)
        scales.append(scale)
        return image, scale

    monkeypatch.setattr(bound_module, "decode_scaled", recording)
    return scales


def _settings() -> ModelSettings:
    return ModelSettings(weights=DEFAULT_WEIGHTS, device="cpu", imgsz=320, conf=0.25)


def test_the_pipeline_bound_decodes_reduced_and_whole_at_the_best_batch(decoded_scales: list[int]):
    # 640x360 is twice the 320 input: the service decodes it at 1/2.
    frames = build_frames("640x360", 4, None, quiet=True)
    result = engine_bound("torch", _settings(), frames, (1, 2), 0.1, progress=False)
    assert result.decode_scale == 2
    assert result.pipeline_reduced is not None and result.pipeline_full is not None
    assert result.pipeline_at_best is result.pipeline_reduced and result.pipeline_decode_scale == 2
    assert result.pipeline(reduced_decode=False) == (result.pipeline_full, 1)
    assert {result.pipeline_reduced.batch, result.pipeline_full.batch} <= {1, 2}
    assert set(decoded_scales) == {1, 2}
    for pipeline in (result.pipeline_reduced, result.pipeline_full):
        assert pipeline.frames_per_s > 0
        # It does all the forward bound does and more; 2x leaves room for a burst of other work on the machine.
        assert pipeline.frames_per_s < 2 * result.best.frames_per_s


def test_frames_under_twice_the_input_are_only_decoded_whole(decoded_scales: list[int]):
    frames = build_frames("320x180", 3, None, quiet=True)
    result = engine_bound("torch", _settings(), frames, (1,), 0.05, progress=False, reduced_decode=True)
    assert result.decode_scale == 1 and result.pipeline_reduced is None
    assert result.pipeline_at_best is result.pipeline_full is not None and result.pipeline_decode_scale == 1
    assert set(decoded_scales) == {1}


def test_a_full_decode_service_is_compared_to_the_full_decode_pipeline(decoded_scales: list[int]):
    frames = build_frames("640x360", 2, None, quiet=True)
    result = engine_bound("torch", _settings(), frames, (1,), 0.05, False, decode_modes=(False,), reduced_decode=False)
    assert result.pipeline_reduced is None and result.pipeline_at_best is result.pipeline_full is not None
    assert set(decoded_scales) == {1}


def _report() -> ThroughputReport:
    machine = MachineInfo("cpu", 2, 8.0, None, None, "linux", "3.12", {"torch": "2"}, (0.1, 0.1, 0.1))
    settings = ThroughputSettings(
        weights=Path("m.pt"), device="cpu", streams=(4,), resolutions=("720p",), command="detector bench throughput"
    )
    report = ThroughputReport(machine, settings)
    report.bounds.append(
        BoundResult(
            "onnx",
            "720p",
            (192, 320),
            forward=[BatchSpeed(1, 10.0, 100.0), BatchSpeed(4, 32.0, 125.0)],
            engine_at_best=BatchSpeed(4, 40.0, 100.0),
            decode_scale=4,
            pipeline_full=BatchSpeed(4, 80.0, 50.0),
            pipeline_reduced=BatchSpeed(4, 50.0, 80.0),
            pipeline_at_best=BatchSpeed(4, 50.0, 80.0),
            pipeline_decode_scale=4,
        )
    )
    latency = Latency(10.0, 20.0, 30.0, 12.0)
    for variant, reduced, fps in (("", True, 40.0), ("full", False, 30.0)):
        report.runs.append(
            RunResult(
                "service",
                "onnx",
                "720p",
                4,
                fps,
                latency,
                100,
                0,
                2.0,
                {4: 25},
                variant=variant,
                reduced_decode=reduced,
            )
        )
    report.runs.append(RunResult("baseline", "ultralytics-predict", "720p", 4, 20.0, latency, 50, 0, 2.0, {1: 50}))
    report.decode_shifts.append(DecodeShift("onnx", "720p", 4, 8, 28, 26, 2, 1, 2.75, 47.7, 0.985, 0.05))
    return report


def test_each_service_run_is_divided_by_the_pipeline_bound_with_its_own_decode():
    rows = {r.service: r for r in ratios(_report())}
    assert rows["onnx"].pipeline_fps == 80.0 and rows["onnx"].pipeline_decode_scale == 4
    assert rows["onnx"].over_pipeline == pytest.approx(0.5)
    assert rows["onnx [full]"].pipeline_fps == 50.0 and rows["onnx [full]"].pipeline_decode_scale == 1
    assert rows["onnx [full]"].over_pipeline == pytest.approx(0.6)
    assert rows["onnx"].over_baseline == pytest.approx(2.0)


def test_the_report_has_the_pipeline_columns_rows_and_the_decode_shift_table():
    report = _report()
    text = markdown(report)
    assert "- Command: `detector bench throughput`" in text  # every results file names the command that made it
    assert "| pipeline bound frames/s |" in text and "| service/pipeline bound |" in text
    assert "| 80.0 (1/4) |" in text and "| 0.50x |" in text and "| 50.0 (whole) |" in text
    assert "| onnx pipeline (decode+letterbox+forward+NMS), decode 1/4 | 720p | | 4 | 50.0 | 80.0 |" in text
    assert "| onnx pipeline (decode+letterbox+forward+NMS), decode whole | 720p | | 4 | 80.0 | 50.0 |" in text
    assert "## Reduced decode against full decode" in text
    assert "| onnx | 720p | 1/4 | 8 | 28 | 26 | 2 | 1 | 2.8 | 47.7 | 0.985 |" in text
    data = json.loads(json.dumps(as_json(report)))
    assert [r["service_over_pipeline"] for r in data["ratios"]] == pytest.approx([0.5, 0.6])
    assert data["bound"][0]["pipeline_at_best"]["frames_per_s"] == 80.0
    assert data["decode_shift"][0]["matched_share"] == pytest.approx(26 / 28)
    printed = summary(report, [])
    assert "4 streams 720p onnx: service/baseline 2.00x, service/pipeline bound 0.50x" in printed
    assert "reduced decode 1/4 720p: 26/28 boxes" in printed


@pytest.fixture(scope="module")
def photo_frames_720p():
    return build_frames("720p", 8, shared_path("datasets"), quiet=True)


def test_reduced_decode_finds_most_of_the_full_decodes_boxes_in_nearly_the_same_place(
    engine: Engine, photo_frames_720p
):
    # Measured on these 8 photos at 720p, decoded at 1/4 for imgsz 320 (torch, conf 0.05): 26 of 28 boxes matched,
    # 1 extra, median shift 2.7 px (max 48 px: a box whose extent changed), median IoU 0.985.
    shift = check_decode_shift(engine, photo_frames_720p.jpegs, LIMITS, "720p", conf=0.05)
    assert shift is not None
    assert (shift.scale, shift.frames, shift.resolution) == (4, 8, "720p")
    assert shift.full_boxes >= 10
    assert shift.matched + shift.missing == shift.full_boxes
    assert shift.matched_share >= 0.8
    assert shift.median_iou >= 0.9
    assert shift.median_shift_px <= 8.0  # two pixels of the 1/4 decode
    assert shift.extra <= shift.full_boxes // 5
    assert np.isfinite(shift.max_shift_px)


def test_frames_too_small_to_decode_reduced_have_no_shift(engine: Engine):
    frames = build_frames("320x180", 2, None, quiet=True)
    assert check_decode_shift(engine, frames.jpegs, LIMITS) is None
