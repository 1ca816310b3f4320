"""ONNX exports of a .pt checkpoint, made once per weights file and input size into a cache folder.

On the CPU the onnxruntime backend runs the same network about 1.5-1.7 times as fast as torch inside the service
(benchmarks/results/cpu-*/: the forward pass is the service's bottleneck), with the same boxes.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from pathlib import Path

from detector import yolo_env
from detector.inference.engine import EngineError, weights_version


def onnx_weights(weights: Path, imgsz: int, cache_dir: Path) -> Path:
    """An ONNX export of ``weights`` (dynamic batch and size), made once per weights file and input size.

    Ultralytics writes the export next to its input, so the checkpoint is copied into the cache first: nothing is
    written beside the committed weights.
    """
    folder = cache_dir / "onnx" / f"{weights.stem}-{weights_version(weights)}-{imgsz}"
    exported = folder / f"{weights.stem}.onnx"
    if exported.is_file():
        return exported
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / weights.name
    shutil.copyfile(weights, copy)
    yolo_env.prepare()
    from ultralytics.models.yolo.model import YOLO
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)  # the export narrates every step on stdout
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            out = YOLO(str(copy), task="detect").export(
                format="onnx", imgsz=imgsz, dynamic=True, simplify=True, device="cpu", verbose=False
            )
    finally:
        LOGGER.setLevel(level)
    copy.unlink()
    if not out or not Path(out).is_file():
        raise EngineError(f"ONNX export of {weights} produced no file")
    return Path(out)
