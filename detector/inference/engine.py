"""Inference engines behind one interface, chosen by name from a small registry.

An engine turns a batch of BGR images of any sizes into one :class:`Detections` per image, with boxes in each
image's own pixels. The batcher owns batching and fairness; an engine only runs what it is given.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from detector.paths import DEFAULT_WEIGHTS, REPO_ROOT
from detector.types import Detections, ImageArray

MODEL_STRIDE = 32
"""The largest stride of the YOLO models served: input sizes are multiples of it."""
FALLBACK_IMGSZ = 640
"""ultralytics' own default, for a checkpoint that does not say what it was trained at."""


class EngineError(Exception):
    """The engine could not be built or could not run a batch."""


class ModelSettings(BaseModel):
    """The ``model`` section: which weights, on which engine and device, at which input size. Every engine takes
    it as it is; engine-specific settings stay in the engine's own constructor."""

    model_config = ConfigDict(extra="forbid")

    weights: Path = Field(
        DEFAULT_WEIGHTS, description="Model weights (.pt for torch, .onnx for onnx, .engine or .pt for tensorrt)."
    )
    backend: Literal["auto", "torch", "onnx", "tensorrt", "colour-blobs"] = Field(
        "auto",
        description="Inference engine: auto (onnx on the CPU, torch on CUDA), torch (.pt), onnx (.onnx, or a .pt "
        "exported once into export_dir), tensorrt (CUDA only, needs the tensorrt package: an fp16 .engine built "
        "once from the .pt into export_dir per GPU model, TensorRT version, imgsz and max_batch, which takes "
        "minutes; or a given .engine), colour-blobs (scripted runs).",
    )
    export_dir: Path = Field(
        REPO_ROOT / ".cache" / "engines",
        description="Where exported engines (ONNX, TensorRT) are cached, per weights hash.",
    )
    max_batch: int = Field(
        32,
        ge=1,
        le=1024,
        description="Largest batch an exported engine accepts (tensorrt: the engine is built for 1..max_batch); "
        "batching.max_batch may not exceed it. Larger batches are run in several passes.",
    )
    device: str = Field("auto", description="'auto' (first CUDA GPU, else CPU), 'cpu', 'cuda' or 'cuda:N'.")
    imgsz: int | None = Field(
        None,
        ge=32,
        le=4096,
        description="Model input size (longest side), pixels, a multiple of 32 (the model's stride). None: the "
        "size the checkpoint was trained at (its train_args, or an ONNX export's metadata); 416 for the default "
        "model.",
    )
    conf: float = Field(0.25, ge=0.0, le=1.0, description="Minimum detection confidence.")
    iou: float = Field(0.7, ge=0.0, le=1.0, description="NMS IoU threshold.")
    max_det: int = Field(300, ge=1, description="Most detections per frame.")
    half: bool = Field(True, description="fp16 on CUDA (ignored on the CPU).")
    warmup_batch_sizes: list[int] = Field([1], description="Batch sizes run once at start-up before SERVING.")

    @field_validator("imgsz")
    @classmethod
    def _stride_multiple(cls, value: int | None) -> int | None:
        if value is not None and value % MODEL_STRIDE:
            down, up = value - value % MODEL_STRIDE, value - value % MODEL_STRIDE + MODEL_STRIDE
            raise ValueError(
                f"imgsz {value} is not a multiple of {MODEL_STRIDE}, the model's stride: the letterbox pads the "
                f"input up to a multiple of it, so {value} would not be the size that runs; use {down} or {up}"
            )
        return value


@dataclass
class BatchTimings:
    """Milliseconds spent in each step of one batch."""

    preprocess_ms: float = 0.0
    forward_ms: float = 0.0
    postprocess_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.forward_ms + self.postprocess_ms

    def __add__(self, other: BatchTimings) -> BatchTimings:
        return BatchTimings(
            self.preprocess_ms + other.preprocess_ms,
            self.forward_ms + other.forward_ms,
            self.postprocess_ms + other.postprocess_ms,
        )


class Engine(ABC):
    """A loaded model that detects objects in batches of images."""

    name: str  # model name shown to clients, e.g. "streetwatch-v0"
    version: str  # short sha256 of the weights file
    class_names: list[str]
    device: str  # the device it actually runs on, e.g. "cpu" or "cuda:0"
    backend: str
    settings: ModelSettings  # the ``model`` section it was built with
    imgsz: int = FALLBACK_IMGSZ  # the input size it runs at: settings.imgsz, or the checkpoint's (resolve_imgsz)

    @abstractmethod
    def infer(self, images: Sequence[ImageArray]) -> tuple[list[Detections], BatchTimings]:
        """Detect in every image; one result per image, in order."""

    def device_memory_bytes(self) -> float | None:
        """Memory allocated on the accelerator, or None on the CPU."""
        return None

    def warmup(self, batch_sizes: Sequence[int] = (1,)) -> None:
        """Run dummy batches so that the first real frames do not pay for lazy initialisation."""
        import numpy as np

        dummy = np.full((480, 640, 3), 114, dtype=np.uint8)
        for size in batch_sizes:
            self.infer([dummy] * size)


@dataclass(frozen=True)
class InferenceThreads:
    """CPU threads of the model's forward pass (the ``threads`` section's budget, detector/threads.py)."""

    intra_op: int
    inter_op: int = 1
    spin: bool = False  # onnxruntime's idle intra-op threads spin-wait instead of sleeping


EngineFactory = Callable[[ModelSettings, "InferenceThreads | None"], Engine]
_REGISTRY: dict[str, EngineFactory] = {}


def register_engine(name: str) -> Callable[[EngineFactory], EngineFactory]:
    def decorate(factory: EngineFactory) -> EngineFactory:
        _REGISTRY[name] = factory
        return factory

    return decorate


def engine_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def build_engine(backend: str, settings: ModelSettings, threads: InferenceThreads | None = None) -> Engine:
    """The engine registered as ``backend``; ``threads``: its forward pass's CPU threads (None: the library's
    default)."""
    _load_builtin()
    try:
        factory = _REGISTRY[backend]
    except KeyError:
        raise EngineError(f"unknown engine backend {backend!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    return factory(settings, threads)


def resolved_backend(backend: str, device: str) -> str:
    """``auto``: onnxruntime on the CPU (the forward pass is the service's bottleneck there, and onnxruntime runs
    it 1.5-1.7x faster with the same boxes: benchmarks/results/cpu-*), torch on CUDA."""
    if backend != "auto":
        return backend
    if device == "cpu":
        return "onnx"
    if device.startswith("cuda"):
        return "torch"
    import torch

    return "torch" if torch.cuda.is_available() else "onnx"


def engine_for(settings: ModelSettings, threads: InferenceThreads | None = None) -> Engine:
    """The engine the ``model`` section names (``backend: auto`` resolved for its device), loaded."""
    return build_engine(resolved_backend(settings.backend, settings.device), settings, threads)


def _load_builtin() -> None:
    from detector.inference import colour_engine, yolo_engine  # noqa: F401  (they register themselves)


def weights_version(path: Path) -> str:
    """First 12 hex digits of the weights file's sha256: enough to tell two models apart in logs and events."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def checkpoint_imgsz(weights: Path) -> int | None:
    """The input size a checkpoint was trained at: ``train_args["imgsz"]`` of an ultralytics .pt, the ``imgsz``
    metadata of an ultralytics ONNX export; None when the file does not say (or cannot be read: loading it as a
    model then says why)."""
    try:
        value = _stored_imgsz(weights)
    except Exception:  # torch, pickle and onnxruntime raise many types for a damaged file
        return None
    if isinstance(value, list | tuple) and value:
        value = max(int(v) for v in value)  # [h, w]: the longest side, as model.imgsz means it
    return int(value) if isinstance(value, int | float) and value > 0 else None


def _stored_imgsz(weights: Path) -> object:
    value: object = None
    if weights.suffix == ".pt":
        import torch

        from detector import yolo_env

        yolo_env.prepare()  # the checkpoint pickles ultralytics' classes
        checkpoint = torch.load(weights, map_location="cpu", weights_only=False)
        args = checkpoint.get("train_args") if isinstance(checkpoint, dict) else None
        value = args.get("imgsz") if isinstance(args, dict) else None
    elif weights.suffix == ".onnx":
        import ast

        import onnxruntime

        session = onnxruntime.InferenceSession(str(weights), providers=["CPUExecutionProvider"])
        text = session.get_modelmeta().custom_metadata_map.get("imgsz")
        value = ast.literal_eval(text) if text else None
    return value


def resolve_imgsz(settings: ModelSettings) -> int:
    """``model.imgsz`` when set, else the size the checkpoint was trained at (rounded up to the stride), else
    ultralytics' default."""
    if settings.imgsz is not None:
        return settings.imgsz
    trained = checkpoint_imgsz(settings.weights) if settings.weights.is_file() else None
    if trained is None:
        return FALLBACK_IMGSZ
    return -(-trained // MODEL_STRIDE) * MODEL_STRIDE
