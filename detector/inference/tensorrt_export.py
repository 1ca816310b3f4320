"""TensorRT engines built from a .pt checkpoint, once per weights file, input size, largest batch, GPU and TensorRT
version, into a cache folder.

A serialized TensorRT engine only runs on the GPU model and TensorRT version that built it, and only for the batch
sizes and input sizes of its optimisation profile, so all of these name its cache folder. The engine is fp16 with
a dynamic batch (1 to ``max_batch``) and dynamic height and width (32 px to twice ``imgsz``), so the letterbox's
stride-aligned canvases run without padding to a square.

Nothing here runs without CUDA and the ``tensorrt`` package: :func:`tensorrt_device` and :func:`tensorrt_version`
say what is missing as an :class:`EngineError`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from detector.inference.engine import EngineError, weights_version
from detector.inference.export_cache import export_once

if TYPE_CHECKING:
    import torch

INSTALL_HINT = (
    "install TensorRT's Python package for this machine's CUDA, e.g. `pip install tensorrt-cu12` (CUDA 12) or "
    "`pip install tensorrt-cu13` (CUDA 13), or use model.backend: torch"
)


def tensorrt_device(device: str) -> torch.device:
    """The CUDA device ``model.device`` names ("auto": the first GPU); :class:`EngineError` without CUDA."""
    import torch

    if device != "auto" and not device.startswith("cuda"):
        raise EngineError(f"model.backend tensorrt runs on a CUDA GPU only, but model.device is {device!r}")
    if not torch.cuda.is_available():
        raise EngineError(
            "model.backend tensorrt needs a CUDA GPU, and CUDA is not available on this machine "
            f"(torch {torch.__version__}, built for CUDA {torch.version.cuda}); use model.backend: torch or onnx"
        )
    try:
        resolved = torch.device("cuda:0" if device in ("auto", "cuda") else device)
    except RuntimeError as exc:
        raise EngineError(f"unknown device {device!r}: use 'auto', 'cuda' or 'cuda:N'") from exc
    index = resolved.index or 0
    if index >= torch.cuda.device_count():
        raise EngineError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return torch.device("cuda", index)


def tensorrt_version() -> str:
    """The importable ``tensorrt`` package's version; :class:`EngineError` saying what to install without it."""
    import importlib

    try:
        tensorrt = importlib.import_module("tensorrt")
    except ImportError as exc:  # also a broken install: the package loads its CUDA libraries on import
        raise EngineError(
            f"model.backend tensorrt needs the `tensorrt` Python package ({exc}); {INSTALL_HINT}"
        ) from exc
    return str(tensorrt.__version__)


def engine_folder_name(stem: str, weights_hash: str, imgsz: int, max_batch: int, gpu_name: str, trt: str) -> str:
    """The cache folder of one engine: everything that makes another engine necessary is in its name."""
    gpu = re.sub(r"[^a-z0-9]+", "-", gpu_name.lower()).strip("-") or "gpu"
    version = re.sub(r"[^A-Za-z0-9.]+", "-", trt)
    return f"{stem}-{weights_hash}-{imgsz}-b{max_batch}-{gpu}-trt{version}"


def tensorrt_weights(weights: Path, imgsz: int, max_batch: int, cache_dir: Path, device: torch.device) -> Path:
    """A TensorRT engine of ``weights`` (fp16, dynamic batch up to ``max_batch`` and dynamic size, ``imgsz`` the
    size it is tuned for), built on ``device`` once per weights hash, ``imgsz``, ``max_batch``, GPU name and
    TensorRT version into ``cache_dir / "tensorrt"``. Building takes minutes; a cached engine loads in seconds."""
    import torch

    if device.type != "cuda":
        raise EngineError(f"a TensorRT engine is built on a CUDA GPU, not on {device}")
    version = tensorrt_version()
    index = device.index if device.index is not None else torch.cuda.current_device()
    name = engine_folder_name(
        weights.stem, weights_version(weights), imgsz, max_batch, torch.cuda.get_device_name(index), version
    )
    # quantize=16 is ultralytics 8.4's spelling of half=True (which it still maps onto it, with a warning).
    return export_once(
        weights,
        cache_dir / "tensorrt" / name,
        ".engine",
        "TensorRT",
        format="engine",
        quantize=16,
        dynamic=True,
        batch=max_batch,
        imgsz=imgsz,
        device=index,
        simplify=True,
    )
