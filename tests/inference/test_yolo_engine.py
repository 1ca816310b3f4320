"""The torch engine gives what ultralytics' own YOLO.predict gives, for batches and for mixed frame sizes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from detector import yolo_env
from detector.config import DEFAULT_WEIGHTS
from detector.inference.engine import EngineError, ModelSettings, build_engine


def _predict(images: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    yolo_env.prepare()
    from ultralytics import YOLO

    model = YOLO(str(DEFAULT_WEIGHTS))
    out = []
    for im in images:
        boxes = model.predict(im, imgsz=320, conf=0.05, iou=0.7, device="cpu", verbose=False)[0].boxes
        out.append((boxes.xyxy.numpy(), boxes.conf.numpy(), boxes.cls.numpy().astype(int)))
    return out


def test_a_batch_of_same_sized_frames_matches_yolo_predict_frame_by_frame(engine, street_photos):
    same = [im for im in street_photos if im.shape == street_photos[0].shape]
    assert len(same) >= 3
    got, timings = engine.infer(same)
    want = _predict(same)
    assert timings.forward_ms > 0
    assert sum(len(d) for d in got) > 0
    for dets, (xyxy, conf, cls) in zip(got, want, strict=True):
        assert len(dets) == len(xyxy)
        np.testing.assert_allclose(dets.xyxy, xyxy, atol=0.5)
        np.testing.assert_allclose(dets.confidence, conf, atol=1e-3)
        np.testing.assert_array_equal(dets.class_id, cls)


def test_frames_of_different_sizes_in_one_batch_get_boxes_in_their_own_pixels(engine, street_photos):
    base = street_photos[0]
    variants = [
        base,
        cv2.resize(base, (1280, 720)),  # 16:9 upscaled
        cv2.resize(base, (300, 500)),  # portrait
        np.ascontiguousarray(base[:, : base.shape[1] // 2]),  # narrow crop
    ]
    batched, _ = engine.infer(variants)
    for im, dets in zip(variants, batched, strict=True):
        alone = engine.infer([im])[0][0]
        h, w = im.shape[:2]
        assert len(alone) > 0, f"the model finds nothing in the {w}x{h} variant; the comparison would be empty"
        assert np.all(dets.xyxy[:, [0, 2]] <= w) and np.all(dets.xyxy[:, [1, 3]] <= h)
        # A frame's boxes must not depend on which other streams' frames shared its batch.
        assert len(dets) == len(alone), f"{w}x{h}: {len(dets)} boxes in a mixed batch, {len(alone)} alone"
        np.testing.assert_allclose(dets.xyxy, alone.xyxy, atol=0.5)
        np.testing.assert_allclose(dets.confidence, alone.confidence, atol=1e-3)
        np.testing.assert_array_equal(dets.class_id, alone.class_id)


def test_engine_reports_model_identity(engine):
    assert engine.name == DEFAULT_WEIGHTS.stem  # the checkpoint's file name, e.g. streetwatch-v5
    assert len(engine.version) == 12 and int(engine.version, 16) >= 0
    assert engine.class_names[:4] == ["garbage", "garbage_bin", "overflow", "pothole"]
    assert engine.device == "cpu"


@pytest.mark.parametrize(
    ("backend", "weights", "message"),
    [
        ("torch", "missing.pt", "weights file not found"),
        ("tensorrt-9", str(DEFAULT_WEIGHTS), "unknown engine backend 'tensorrt-9'"),
        ("onnx", str(DEFAULT_WEIGHTS.parent / "train.yaml"), "needs an .onnx file or a .pt checkpoint"),
        ("onnx", "missing.pt", "weights file not found"),
    ],
)
def test_bad_engine_settings_fail_with_a_clear_message(backend, weights, message, tmp_path):
    with pytest.raises(EngineError, match=message):
        path = tmp_path / weights if weights == "missing.pt" else Path(weights)
        build_engine(backend, ModelSettings(weights=path))


def test_a_corrupt_weights_file_is_an_engine_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(EngineError, match="cannot load weights"):
        build_engine("torch", ModelSettings(weights=bad, device="cpu"))


def test_a_device_name_torch_does_not_know_is_an_engine_error_not_a_traceback():
    with pytest.raises(EngineError, match="unknown device 'cpu-amd-epyc-2c'"):
        build_engine("torch", ModelSettings(weights=DEFAULT_WEIGHTS, device="cpu-amd-epyc-2c"))
