"""The onnx backend from a .pt checkpoint (exported once into a cache) and `backend: auto`."""

from __future__ import annotations

import numpy as np

from detector.config import DEFAULT_WEIGHTS, load_config
from detector.inference.engine import ModelSettings, build_engine, resolved_backend


def test_auto_is_onnx_on_the_cpu_and_torch_on_cuda():
    assert resolved_backend("auto", "cpu") == "onnx"
    assert resolved_backend("auto", "cuda:0") == "torch"
    assert resolved_backend("torch", "cpu") == "torch"
    assert load_config(None, environ={}).model.backend == "auto"


def test_a_pt_checkpoint_is_exported_once_and_gives_torchs_boxes(engine, street_photos, tmp_path):
    settings = ModelSettings(weights=DEFAULT_WEIGHTS, device="cpu", imgsz=320, conf=0.05, export_dir=tmp_path)
    onnx = build_engine("onnx", settings)
    exported = list(tmp_path.rglob("*.onnx"))
    assert len(exported) == 1 and onnx.backend == "onnx" and onnx.name == DEFAULT_WEIGHTS.stem
    assert onnx.version == engine.version, "clients see the checkpoint's version, not the export's"
    stamp = exported[0].stat().st_mtime_ns
    build_engine("onnx", settings)  # the second start reuses the export
    assert exported[0].stat().st_mtime_ns == stamp

    torch_out, _ = engine.infer(street_photos)
    onnx_out, _ = onnx.infer(street_photos)
    assert sum(len(d) for d in torch_out) > 0
    for want, got in zip(torch_out, onnx_out, strict=True):
        assert len(got) == len(want)
        order_w, order_g = np.lexsort(want.xyxy.T), np.lexsort(got.xyxy.T)
        np.testing.assert_allclose(got.xyxy[order_g], want.xyxy[order_w], atol=1.0)
        np.testing.assert_array_equal(got.class_id[order_g], want.class_id[order_w])
        np.testing.assert_allclose(got.confidence[order_g], want.confidence[order_w], atol=0.01)
