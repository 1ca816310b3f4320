"""One input size: by default the model runs at the size its checkpoint was trained at, read from the checkpoint
(a .pt's train_args, an ONNX export's metadata); an explicit size must be a multiple of the model's stride."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.config import DEFAULT_WEIGHTS, ConfigError, load_config
from detector.inference.engine import (
    FALLBACK_IMGSZ,
    ModelSettings,
    build_engine,
    checkpoint_imgsz,
    engine_for,
    resolve_imgsz,
)
from detector.inference.onnx_export import onnx_weights


def test_the_committed_checkpoint_says_it_was_trained_at_416() -> None:
    assert checkpoint_imgsz(DEFAULT_WEIGHTS) == 416
    assert resolve_imgsz(ModelSettings()) == 416
    assert resolve_imgsz(ModelSettings(imgsz=640)) == 640, "an explicit size wins"


def test_an_onnx_export_carries_its_size_in_its_metadata(tmp_path: Path) -> None:
    exported = onnx_weights(DEFAULT_WEIGHTS, 416, tmp_path)
    assert checkpoint_imgsz(exported) == 416


def test_a_file_that_does_not_say_falls_back_to_ultralytics_default(tmp_path: Path) -> None:
    spec = tmp_path / "blobs.yaml"
    spec.write_text("name: blobs\nclasses: [{name: stall, bgr: [0, 0, 255]}]\n")
    assert checkpoint_imgsz(spec) is None
    assert resolve_imgsz(ModelSettings(weights=spec)) == FALLBACK_IMGSZ
    assert build_engine("colour-blobs", ModelSettings(weights=spec)).imgsz == FALLBACK_IMGSZ
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(b"not a checkpoint")
    assert checkpoint_imgsz(damaged) is None, "loading it as a model says what is wrong with it"


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_the_service_engine_runs_at_the_checkpoint_size_by_default(backend: str) -> None:
    config = load_config(None, environ={}, overrides=[f"model.backend={backend}", "model.device=cpu"])
    assert config.model.imgsz is None
    engine = engine_for(config.model)
    assert engine.imgsz == 416
    assert engine.settings.imgsz is None, "the settings run as printed; the resolved size is the engine's"


@pytest.mark.parametrize("size", [641, 400, 100])
def test_a_size_off_the_stride_is_refused_saying_why(size: int) -> None:
    with pytest.raises(ConfigError, match=rf"imgsz {size} is not a multiple of 32, the model's stride") as caught:
        load_config(None, environ={}, overrides=[f"model.imgsz={size}"])
    low = size - size % 32
    assert f"use {low} or {low + 32}" in str(caught.value)
    assert "model.imgsz" in str(caught.value)
