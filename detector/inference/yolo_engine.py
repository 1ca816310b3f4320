"""YOLO engines on ultralytics' AutoBackend: "torch" for .pt weights, "onnx" for an exported .onnx file,
"tensorrt" for a TensorRT .engine (CUDA only).

AutoBackend is what ``YOLO.predict`` runs, so the forward pass and NMS are ultralytics' own; what we add is the
batched letterbox over frames of mixed sizes and mapping boxes back per frame.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detector import yolo_env
from detector.inference.engine import (
    BatchTimings,
    Engine,
    EngineError,
    InferenceThreads,
    ModelSettings,
    register_engine,
    resolve_imgsz,
    weights_version,
)
from detector.inference.letterbox import PAD_VALUE, letterbox_batch, plan, unplace_boxes
from detector.types import Detections, ImageArray


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError(f"device {device!r} was asked for but CUDA is not available; use 'cpu' or 'auto'")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise EngineError(f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc


class YoloEngine(Engine):
    def __init__(
        self,
        settings: ModelSettings,
        backend: str,
        runs: Path | None = None,
        imgsz: int | None = None,
        threads: InferenceThreads | None = None,
    ) -> None:
        """``runs``: the file actually loaded when it is not ``settings.weights`` (an export of it); ``imgsz``: the
        input size, resolved by the caller (default: :func:`resolve_imgsz` of ``settings``); ``threads``: the
        forward pass's CPU threads (torch's are process-wide: detector/threads.py sets them)."""
        runs = runs or settings.weights
        if not runs.is_file():
            raise EngineError(f"weights file not found: {runs}")
        yolo_env.prepare()
        from ultralytics.nn.autobackend import AutoBackend
        from ultralytics.utils import nms

        self._nms = nms.non_max_suppression
        self._device = resolve_device(settings.device)
        self._half = settings.half and self._device.type == "cuda"
        try:
            self._model = AutoBackend(runs, device=self._device, fp16=self._half, verbose=False)
        except Exception as exc:  # ultralytics raises many types for a bad file
            raise EngineError(f"cannot load weights {runs}: {exc}") from exc
        self._model.eval()
        if threads is not None and backend == "onnx":
            size_onnx_session(self._model, runs, threads)
        self.settings = settings
        # A TensorRT engine given as it is was built at the imgsz its metadata records.
        if imgsz is None and backend == "tensorrt" and (built := _metadata_imgsz(self._model)) is not None:
            imgsz = built
        self.imgsz = imgsz if imgsz is not None else resolve_imgsz(settings)
        # An exported model has a fixed input size; the .pt one takes what the letterbox gives it.
        self._stride = max(int(self._model.stride), 32) if backend == "torch" else 32
        self._max_forward: int | None = None  # most images one forward pass takes (a TensorRT profile); None: any
        self._fixed_canvas: tuple[int, int] | None = None  # (h, w) a static engine's input must have
        self._fixed_batch = False  # a static engine's input must also have exactly _max_forward images
        if backend == "tensorrt":
            # The engine's input dtype decides (fp16 for our exports); AutoBackend halves a float input for it.
            self._half = bool(getattr(self._model, "fp16", False))
            self._size_tensorrt_input()
        names = self._model.names
        self.class_names = [str(names[i]) for i in sorted(names)]
        # Clients see the configured checkpoint's identity, whichever file runs it.
        self.name = settings.weights.stem
        self.version = weights_version(settings.weights)
        self.device = str(self._device)
        self.backend = backend
        self._end2end = bool(getattr(self._model, "end2end", False))

    def _size_tensorrt_input(self) -> None:
        """Batch and canvas limits of a TensorRT engine's input: a dynamic dimension takes up to its optimisation
        profile's maximum (ultralytics' dynamic export: batch up to its ``batch``, height and width 32 px to twice
        its imgsz, so the stride-aligned letterbox runs as it is); a static one exactly its size (the letterbox
        pads to it, and a short batch is padded with grey images)."""
        declared, largest = _tensorrt_input_shape(self._model)
        self._max_forward = largest[0]
        self._fixed_batch = declared[0] != -1
        if declared[2] != -1 and declared[3] != -1:
            self._fixed_canvas = (largest[2], largest[3])
        if self.imgsz > min(largest[2], largest[3]):
            raise EngineError(
                f"model.imgsz {self.imgsz} does not fit the TensorRT engine's input (at most {largest[2]}x"
                f"{largest[3]}); use the imgsz it was built at, or build it again from the .pt"
            )

    def device_memory_bytes(self) -> float | None:
        if self._device.type != "cuda":
            return None
        return float(torch.cuda.memory_allocated(self._device))

    def infer(self, images: Sequence[ImageArray]) -> tuple[list[Detections], BatchTimings]:
        """Detections per image, in that image's own pixels.

        Frames whose letterboxed shapes differ go through separate forward passes, one per shape: padding a 16:9
        frame into a portrait frame's square canvas changes what the model sees and moved strong boxes by up to
        a quarter of their IoU, so a stream's results would depend on which other streams shared its batch.
        Cameras of one deployment mostly share a shape, so this rarely costs a second pass.
        """
        timings = BatchTimings()
        groups: dict[tuple[int, int], list[int]] = {}
        for i, im in enumerate(images):
            _, canvas = plan((im.shape[0], im.shape[1]), self.imgsz, self._stride)
            groups.setdefault(self._fixed_canvas or canvas, []).append(i)
        by_index: dict[int, Detections] = {}
        step = self._max_forward or len(images) or 1  # a TensorRT engine takes at most its profile's batch
        for indices in groups.values():
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                by_index.update(zip(chunk, self._infer_same_shape([images[i] for i in chunk], timings), strict=True))
        return [by_index[i] for i in range(len(images))], timings

    def _infer_same_shape(self, images: Sequence[ImageArray], timings: BatchTimings) -> list[Detections]:
        t0 = time.perf_counter()
        tensor, placements = letterbox_batch(
            images, self.imgsz, self._stride, self._device, self._half, self._fixed_canvas
        )
        if self._fixed_batch and self._max_forward is not None and len(images) < self._max_forward:
            grey = tensor.new_full((self._max_forward - len(images), *tensor.shape[1:]), PAD_VALUE / 255.0)
            tensor = torch.cat([tensor, grey])
        t1 = time.perf_counter()
        with torch.inference_mode():
            preds = self._model(tensor)
            if self._device.type == "cuda":
                torch.cuda.synchronize(self._device)
            t2 = time.perf_counter()
            kept = self._nms(
                preds,
                self.settings.conf,
                self.settings.iou,
                max_det=self.settings.max_det,
                end2end=self._end2end,
            )[: len(placements)]
            results = []
            for det, placement in zip(kept, placements, strict=True):
                boxes = unplace_boxes(det[:, :4].float(), placement).cpu().numpy()
                results.append(
                    Detections(
                        xyxy=boxes,
                        confidence=det[:, 4].float().cpu().numpy(),
                        class_id=det[:, 5].cpu().numpy().astype(np.int64),
                    )
                )
        t3 = time.perf_counter()
        timings.preprocess_ms += (t1 - t0) * 1e3
        timings.forward_ms += (t2 - t1) * 1e3
        timings.postprocess_ms += (t3 - t2) * 1e3
        return results


def _metadata_imgsz(model: object) -> int | None:
    """The input size (longest side) an exported model's metadata records, or None."""
    value = getattr(model, "imgsz", None)
    if isinstance(value, list | tuple) and value:
        return max(int(v) for v in value)
    return int(value) if isinstance(value, int) and value > 0 else None


def _tensorrt_input_shape(model: Any) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(declared, largest) NCHW shapes of the "images" input of the TensorRT engine ``model`` (an AutoBackend)
    runs: ``declared`` has -1 for each dynamic dimension; ``largest`` is the shape ultralytics' backend set up at
    load, the optimisation profile's maximum for the dynamic dimensions."""
    backend = model.backend
    engine = backend.model
    if hasattr(engine, "get_tensor_shape"):  # TensorRT >= 8.5 (10 and 11 have only this)
        declared = tuple(int(d) for d in engine.get_tensor_shape("images"))
    else:
        declared = tuple(int(d) for d in engine.get_binding_shape(engine.get_binding_index("images")))
    largest = tuple(int(d) for d in backend.bindings["images"].shape)
    if len(declared) != 4 or len(largest) != 4:
        raise EngineError(f"the TensorRT engine's input is {declared}, not NCHW images")
    return declared, largest


def size_onnx_session(model: object, runs: Path, threads: InferenceThreads) -> None:
    """Replace the onnxruntime session AutoBackend made (library defaults: a spinning thread per core) with one
    sized by the thread budget. Same file, same provider, so inputs and outputs are the same."""
    import onnxruntime

    backend = getattr(model, "backend", None)
    session = getattr(backend, "session", None)
    if session is None or session.get_providers() != ["CPUExecutionProvider"]:
        return  # another provider: its threads are not the CPU's to size
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads.intra_op
    options.inter_op_num_threads = threads.inter_op
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if threads.spin else "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "1" if threads.spin else "0")
    backend.session = onnxruntime.InferenceSession(str(runs), options, providers=["CPUExecutionProvider"])  # type: ignore[union-attr]


@register_engine("torch")
def _torch_engine(settings: ModelSettings, threads: InferenceThreads | None) -> Engine:
    return YoloEngine(settings, "torch", threads=threads)


@register_engine("onnx")
def _onnx_engine(settings: ModelSettings, threads: InferenceThreads | None) -> Engine:
    """An .onnx file as given, or a .pt checkpoint exported once into ``settings.export_dir``."""
    weights = settings.weights
    if not weights.is_file():
        raise EngineError(f"weights file not found: {weights}")
    imgsz = resolve_imgsz(settings)
    if weights.suffix == ".pt":
        from detector.inference.onnx_export import onnx_weights

        weights = onnx_weights(weights, imgsz, settings.export_dir)
    elif weights.suffix != ".onnx":
        raise EngineError(f"the onnx backend needs an .onnx file or a .pt checkpoint to export, got {weights}")
    return YoloEngine(settings, "onnx", runs=weights, imgsz=imgsz, threads=threads)


@register_engine("tensorrt")
def _tensorrt_engine(settings: ModelSettings, threads: InferenceThreads | None) -> Engine:
    """A TensorRT .engine as given, or one built once from a .pt checkpoint into ``settings.export_dir`` (for this
    GPU, TensorRT version, imgsz and ``settings.max_batch``). CUDA and the ``tensorrt`` package are checked first,
    so that a machine without them gets an :class:`EngineError` that says what is missing."""
    from detector.inference.tensorrt_export import tensorrt_device, tensorrt_version, tensorrt_weights

    device = tensorrt_device(settings.device)
    tensorrt_version()
    weights = settings.weights
    if not weights.is_file():
        raise EngineError(f"weights file not found: {weights}")
    imgsz = settings.imgsz  # a given .engine: None means the size it was built at (its metadata)
    if weights.suffix == ".pt":
        imgsz = resolve_imgsz(settings)
        weights = tensorrt_weights(weights, imgsz, settings.max_batch, settings.export_dir, device)
    elif weights.suffix != ".engine":
        raise EngineError(f"the tensorrt backend needs an .engine file or a .pt checkpoint to build, got {weights}")
    return YoloEngine(settings, "tensorrt", runs=weights, imgsz=imgsz, threads=threads)
