"""A tiny real run of the throughput suite: the real checkpoint, the real service over gRPC, the YOLO.predict
baseline, the engine bound and the ONNX backend, with every output written. Speed is never asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.bench.__main__ import main
from tests.conftest import shared_path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("results")
    argv = [
        "throughput",
        "--device", "cpu",
        "--streams", "1,2",
        "--resolutions", "320x180",
        "--backends", "torch,onnx",
        "--batch", "1,2",
        "--duration", "1",
        "--warmup", "0.5",
        "--frames-per-stream", "6",
        "--frame-pool", "4",
        "--bound-time", "0.2",
        "--variant", "batch2:batching.max_batch=2,batching.max_per_source=2",
        "--datasets", str(shared_path("datasets")),
        "--cache-dir", str(out / "cache"),
        "--out", str(out),
        "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    return out


def _folder(out: Path) -> Path:
    folders = [p for p in out.glob("cpu-*/*") if p.is_dir()]
    assert len(folders) == 1, f"one results folder <device>/<date>, got {folders}"
    return folders[0]


def test_a_tiny_run_writes_json_markdown_and_plots(tiny_run: Path):
    folder = _folder(tiny_run)
    names = {p.name for p in folder.iterdir()}
    assert {"throughput.json", "throughput.md"} <= names
    for png in ("throughput_vs_streams.png", "latency_percentiles.png", "batch_sizes.png"):
        data = (folder / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, png


def test_the_json_holds_machine_info_every_contender_and_the_ratios(tiny_run: Path):
    data = json.loads((_folder(tiny_run) / "throughput.json").read_text())
    machine = data["machine"]
    assert machine["cpu_cores"] >= 1 and machine["cpu_model"]
    assert {"torch", "ultralytics", "onnxruntime"} <= set(machine["versions"])
    assert data["settings"]["streams"] == [1, 2]
    runs = data["runs"]
    kinds = {(r["kind"], r["backend"], r["variant"], r["streams"]) for r in runs}
    for streams in (1, 2):
        assert ("baseline", "ultralytics-predict", "", streams) in kinds
        for backend in ("torch", "onnx"):
            assert ("service", backend, "", streams) in kinds
            assert ("service", backend, "batch2", streams) in kinds
    for run in runs:
        assert run["errors"] == 0, run["error_examples"]
        assert run["frames"] > 0 and run["frames_per_s"] > 0
        latency = run["latency"]
        assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"]
    for run in (r for r in runs if r["kind"] == "service"):
        stages = run["breakdown"]
        assert stages["forward_ms"] > 0 and stages["decode_ms"] > 0 and 0 < stages["worker_busy"] <= 1.0
        assert run["bottleneck"]["stage"] in {"decode", "preprocess", "forward", "postprocess", "grpc+other"}
        assert max(int(size) for size in run["batches"]) <= (2 if run["variant"] else run["streams"] * 4)
    assert {b["backend"] for b in data["bound"]} == {"torch", "onnx"}
    assert all(b["best_frames_per_s"] > 0 and b["engine_at_best"]["frames_per_s"] > 0 for b in data["bound"])
    ratios = data["ratios"]
    assert len(ratios) == 8
    assert all(r["service_over_baseline"] > 0 and r["service_over_bound"] > 0 for r in ratios)
    # 320x180 is under twice the model input: decoded whole, by the service and the pipeline bound alike.
    assert all(b["decode_scale"] == 1 and b["pipeline_at_best"]["frames_per_s"] > 0 for b in data["bound"])
    assert all(r["service_over_pipeline"] > 0 and r["pipeline_decode_scale"] == 1 for r in ratios)
    assert data["decode_shift"] == []
    assert data["issue2"] is None, "the plain-loop line needs a 4-stream run, which this tiny run has not"


def test_onnx_gives_torchs_boxes(tiny_run: Path):
    checks = json.loads((_folder(tiny_run) / "throughput.json").read_text())["backend_checks"]
    assert [c["backend"] for c in checks] == ["onnx"]
    assert checks[0]["ok"] and checks[0]["matched"] > 0


def test_the_markdown_has_the_ratio_breakdown_and_before_after_tables(tiny_run: Path):
    text = (_folder(tiny_run) / "throughput.md").read_text()
    for heading in ("## Ratios", "## Frame latency", "## Engine bound", "## Where the time goes", "## Before and after",
                    "## Backends against torch"):  # fmt: skip
        assert heading in text
    assert "Top bottleneck" in text
    assert "service/pipeline bound" in text and "pipeline (decode+letterbox+forward+NMS), decode whole" in text
    assert "nan" not in text.lower()
