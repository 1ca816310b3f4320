"""ONNX exports of a .pt checkpoint, made once per weights file and input size into a cache folder.

On the CPU the onnxruntime backend runs the same network about 1.5-1.7 times as fast as torch inside the service
(benchmarks/results/cpu-*/: the forward pass is the service's bottleneck), with the same boxes.
"""

from __future__ import annotations

from pathlib import Path

from detector.inference.engine import weights_version
from detector.inference.export_cache import export_once


def onnx_weights(weights: Path, imgsz: int, cache_dir: Path) -> Path:
    """An ONNX export of ``weights`` (dynamic batch and size), made once per weights file and input size.

    Ultralytics writes the export next to its input, so the checkpoint is copied into the cache first: nothing is
    written beside the committed weights.
    """
    folder = cache_dir / "onnx" / f"{weights.stem}-{weights_version(weights)}-{imgsz}"
    return export_once(
        weights, folder, ".onnx", "ONNX", format="onnx", imgsz=imgsz, dynamic=True, simplify=True, device="cpu"
    )
