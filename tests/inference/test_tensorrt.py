"""The tensorrt backend: what runs here without a GPU (its errors, its cache naming, the config check, the shared
export helper, the batch limits of an exported engine, the GPU run script), and, on a CUDA machine with TensorRT,
its boxes against torch's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from detector.config import DEFAULT_WEIGHTS, ConfigError, load_config
from detector.inference.engine import EngineError, ModelSettings, build_engine
from detector.inference.export_cache import export_once
from detector.inference.letterbox import PAD_VALUE, letterbox_batch
from detector.inference.tensorrt_export import engine_folder_name, tensorrt_device, tensorrt_version

REPO = Path(__file__).resolve().parents[2]
HAS_CUDA = torch.cuda.is_available()


def _trt_importable() -> bool:
    try:
        tensorrt_version()
    except EngineError:
        return False
    return True


def test_tensorrt_without_cuda_fails_with_an_error_naming_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for device in ("auto", "cuda:0"):
        with pytest.raises(EngineError, match="CUDA"):
            build_engine("tensorrt", ModelSettings(weights=DEFAULT_WEIGHTS, device=device))
    with pytest.raises(EngineError, match="CUDA GPU only"):
        build_engine("tensorrt", ModelSettings(weights=DEFAULT_WEIGHTS, device="cpu"))


def test_tensorrt_without_the_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    assert tensorrt_device("auto") == torch.device("cuda", 0)
    with pytest.raises(EngineError, match=r"pip install tensorrt-cu1"):
        build_engine("tensorrt", ModelSettings(weights=DEFAULT_WEIGHTS, device="cuda"))


def test_the_engine_cache_folder_changes_with_everything_that_needs_another_engine():
    base = dict(
        stem="best", weights_hash="0123456789ab", imgsz=416, max_batch=32, gpu_name="NVIDIA H200", trt="10.13.0"
    )
    name = engine_folder_name(**base)  # type: ignore[arg-type]
    assert name == "best-0123456789ab-416-b32-nvidia-h200-trt10.13.0"
    for key, other in [
        ("weights_hash", "ba9876543210"),
        ("imgsz", 640),
        ("max_batch", 64),
        ("gpu_name", "NVIDIA H100 80GB HBM3"),
        ("trt", "10.14.1"),
    ]:
        assert engine_folder_name(**{**base, key: other}) != name, key  # type: ignore[arg-type]
    assert "/" not in engine_folder_name(**{**base, "gpu_name": "Tesla T4/PCIe (rev a1)"})  # type: ignore[arg-type]


def test_batching_may_not_exceed_the_engines_largest_batch():
    with pytest.raises(ConfigError, match=r"batching.max_batch \(64\) exceeds model.max_batch \(32\)"):
        load_config(environ={}, overrides=["model.backend=tensorrt", "batching.max_batch=64"])
    config = load_config(
        environ={}, overrides=["model.backend=tensorrt", "batching.max_batch=64", "model.max_batch=64"]
    )
    assert config.batching.max_batch == config.model.max_batch == 64
    # Other backends take any batch: model.max_batch only sizes exported engines.
    assert load_config(environ={}, overrides=["model.backend=torch", "batching.max_batch=64"]).batching.max_batch == 64


class _FakeYolo:
    """Stands in for ultralytics' YOLO: "exports" by writing a file next to the checkpoint, as ultralytics does."""

    calls: ClassVar[list[dict[str, object]]] = []
    fail = False

    def __init__(self, path: str, task: str) -> None:
        self.path = Path(path)

    def export(self, **args: object) -> str:
        _FakeYolo.calls.append(args)
        if _FakeYolo.fail:
            raise AssertionError("export running on CPU but must be on GPU")
        out = self.path.with_suffix(".engine")
        out.write_bytes(b"engine")
        return str(out)


def test_an_export_is_made_once_into_its_folder_and_a_failed_one_leaves_nothing_cached(monkeypatch, tmp_path):
    import ultralytics.models.yolo.model as yolo_model

    monkeypatch.setattr(yolo_model, "YOLO", _FakeYolo)
    _FakeYolo.calls, _FakeYolo.fail = [], False
    weights = tmp_path / "w" / "best.pt"
    weights.parent.mkdir()
    weights.write_bytes(b"checkpoint")
    folder = tmp_path / "cache" / "tensorrt" / "best-x"
    out = export_once(weights, folder, ".engine", "TensorRT", format="engine", batch=8)
    assert out == folder / "best.engine" and out.read_bytes() == b"engine"
    assert sorted(p.name for p in folder.iterdir()) == ["best.engine"]  # the copied checkpoint is gone
    assert sorted(p.name for p in weights.parent.iterdir()) == ["best.pt"]  # nothing beside the weights
    assert export_once(weights, folder, ".engine", "TensorRT", format="engine", batch=8) == out
    assert len(_FakeYolo.calls) == 1 and _FakeYolo.calls[0]["batch"] == 8

    _FakeYolo.fail = True
    other = tmp_path / "cache" / "tensorrt" / "best-y"
    with pytest.raises(EngineError, match=r"TensorRT export of .*best\.pt failed: export running on CPU"):
        export_once(weights, other, ".engine", "TensorRT", format="engine")
    assert not (other / "best.engine").exists()  # a later call builds it again rather than load a broken one


def test_a_batch_larger_than_an_engine_takes_runs_in_passes_with_the_same_boxes(engine, street_photos):
    same = [im for im in street_photos if im.shape == street_photos[0].shape][:5]
    want, _ = engine.infer(same)
    try:
        engine._max_forward = 2  # what a TensorRT engine built for batches up to 2 sets
        got, _ = engine.infer(same)
        engine._fixed_batch = True  # a static engine: each pass padded to exactly 2 images
        padded, _ = engine.infer(same)
    finally:
        engine._max_forward, engine._fixed_batch = None, False
    for a, b, c in zip(want, got, padded, strict=True):
        np.testing.assert_allclose(b.xyxy, a.xyxy, atol=1e-3)
        np.testing.assert_allclose(c.xyxy, a.xyxy, atol=1e-3)


def test_letterbox_pads_into_a_fixed_canvas_and_takes_tensors_as_well_as_arrays():
    rng = np.random.default_rng(0)
    im = rng.integers(0, 256, (180, 320, 3), dtype=np.uint8)
    auto, (p,) = letterbox_batch([im], 320, 32, torch.device("cpu"), False)
    assert tuple(auto.shape) == (1, 3, 192, 320)
    fixed, (q,) = letterbox_batch([im], 320, 32, torch.device("cpu"), False, canvas=(320, 320))
    assert tuple(fixed.shape) == (1, 3, 320, 320) and (q.left, q.top) == (0, 70)
    torch.testing.assert_close(fixed[:, :, q.top : q.top + q.new_h], auto[:, :, p.top : p.top + p.new_h])
    assert float(fixed[0, 0, 0, 0]) == pytest.approx(PAD_VALUE / 255.0)
    from_tensor, _ = letterbox_batch([torch.from_numpy(im)], 320, 32, torch.device("cpu"), False)
    assert torch.equal(from_tensor, auto)  # the CPU path is the same whatever holds the pixels
    with pytest.raises(ValueError, match="smaller"):
        letterbox_batch([im], 320, 32, torch.device("cpu"), False, canvas=(160, 320))


def test_the_gpu_run_script_parses():
    script = REPO / "benchmarks" / "gpu" / "run.sh"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    text = script.read_text()
    assert "set -euo pipefail" in text and "--device" in text and "model.max_batch=" in text


def test_the_bench_skips_tensorrt_off_cuda_and_says_why():
    from detector.bench.machine import machine_info
    from detector.bench.throughput import ThroughputReport, ThroughputSettings, _backend_weights

    settings = ThroughputSettings(weights=DEFAULT_WEIGHTS, device="cpu", backends=("tensorrt",))
    report = ThroughputReport(machine_info("cpu"), settings)
    assert _backend_weights("tensorrt", settings, report) is None
    assert report.skipped == ["tensorrt on cpu: TensorRT runs on CUDA GPUs only"]


@pytest.mark.skipif(not HAS_CUDA or not _trt_importable(), reason="needs a CUDA GPU and the tensorrt package")
def test_tensorrt_boxes_match_torch_on_the_gpu(street_photos, tmp_path):
    """Would check: a .pt built into an fp16 TensorRT engine (dynamic batch and size) finds every strong torch
    box, same class, within 2 px, on real photos of mixed sizes, in one batch and in batches above max_batch."""
    common = dict(weights=DEFAULT_WEIGHTS, device="cuda:0", imgsz=320, conf=0.05, export_dir=tmp_path)
    torch_engine = build_engine("torch", ModelSettings(**common))  # type: ignore[arg-type]
    trt_engine = build_engine("tensorrt", ModelSettings(**common, max_batch=4))  # type: ignore[arg-type]
    assert trt_engine.backend == "tensorrt" and trt_engine._max_forward == 4  # type: ignore[attr-defined]
    want, _ = torch_engine.infer(street_photos)
    got, _ = trt_engine.infer(street_photos)  # 8 photos: two passes
    for a, b in zip(want, got, strict=True):
        for box, conf, cls in zip(a.xyxy, a.confidence, a.class_id, strict=True):
            if conf < 0.25:
                continue
            near = np.abs(b.xyxy - box).max(axis=1) <= 2.0
            assert np.any(near & (b.class_id == cls)), (box, conf, cls)
