"""Batched letterbox: many images of any sizes into one model input tensor, and boxes back again.

The geometry is ultralytics' ``LetterBox(auto=True)`` (scale to fit ``imgsz``, pad to a multiple of the stride,
padding centred), so a batch of same-sized frames is exactly what ``YOLO.predict`` would feed the model. Frames of
different sizes share one tensor padded to the largest of their shapes (the engine avoids that by batching frames
per letterboxed shape; the benchmark bound uses same-sized frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from detector.types import ImageArray

PAD_VALUE = 114


@dataclass(frozen=True)
class Placement:
    """Where one image sits in the batch tensor: its scale and the offset of its top-left corner."""

    gain: float
    new_w: int
    new_h: int
    left: int
    top: int
    orig_h: int
    orig_w: int


def plan(shape_hw: tuple[int, int], imgsz: int, stride: int) -> tuple[Placement, tuple[int, int]]:
    """Placement of one image, and the smallest stride-aligned canvas (h, w) that holds it."""
    h, w = shape_hw
    gain = min(imgsz / h, imgsz / w)
    new_w, new_h = max(round(w * gain), 1), max(round(h * gain), 1)
    canvas_h = new_h + (imgsz - new_h) % stride
    canvas_w = new_w + (imgsz - new_w) % stride
    return Placement(gain, new_w, new_h, 0, 0, h, w), (canvas_h, canvas_w)


def letterbox_batch(
    images: Sequence[ImageArray | torch.Tensor],
    imgsz: int,
    stride: int,
    device: torch.device,
    half: bool,
    canvas: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, list[Placement]]:
    """Return an Nx3xHxW RGB tensor in [0, 1] on ``device`` and the placement of each image.

    An image is HxWx3 BGR uint8: a numpy array, or a tensor already on the CUDA device (a frame decoded there,
    detector/inference/gpu_decode.py, or a slice of one). On a CUDA device the uint8 frames are uploaded through
    pinned host memory and resized there; on the CPU OpenCV resizes them (faster than torch there, and
    bit-identical to ultralytics). ``canvas``: a fixed (h, w) to pad every image into (an engine with a static
    input size), at least each image's own canvas; None: the smallest that holds them all.
    """
    plans = [plan((im.shape[0], im.shape[1]), imgsz, stride) for im in images]
    canvas_h = max(c[0] for _, c in plans)
    canvas_w = max(c[1] for _, c in plans)
    if canvas is not None:
        if canvas[0] < canvas_h or canvas[1] < canvas_w:
            raise ValueError(f"canvas {canvas} is smaller than the letterboxed images ({canvas_h}, {canvas_w})")
        canvas_h, canvas_w = canvas
    dtype = torch.float16 if half and device.type == "cuda" else torch.float32
    batch = torch.full((len(images), 3, canvas_h, canvas_w), PAD_VALUE / 255.0, dtype=dtype, device=device)
    placements = []
    for i, (im, (p, _)) in enumerate(zip(images, plans, strict=True)):
        left = round((canvas_w - p.new_w) / 2 - 0.1)
        top = round((canvas_h - p.new_h) / 2 - 0.1)
        placements.append(Placement(p.gain, p.new_w, p.new_h, left, top, p.orig_h, p.orig_w))
        if device.type == "cpu":
            if isinstance(im, torch.Tensor):
                im = im.cpu().numpy()
            resized = im if (p.new_w, p.new_h) == (p.orig_w, p.orig_h) else _cv2_resize(im, p.new_w, p.new_h)
            chw = torch.from_numpy(np.ascontiguousarray(resized[:, :, ::-1].transpose(2, 0, 1)))
            batch[i, :, top : top + p.new_h, left : left + p.new_w] = chw.to(dtype) / 255.0
        else:
            src = _to_device(im, device).permute(2, 0, 1).flip(0)
            src = src.unsqueeze(0).to(dtype)
            if (p.new_w, p.new_h) != (p.orig_w, p.orig_h):
                src = F.interpolate(src, size=(p.new_h, p.new_w), mode="bilinear", align_corners=False)
            batch[i, :, top : top + p.new_h, left : left + p.new_w] = src[0].round().clamp(0, 255) / 255.0
    return batch, placements


def _to_device(im: ImageArray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """HxWx3 uint8 on ``device``: a tensor there already as it is; a host array copied through pinned memory, so
    that the upload is a DMA that does not wait on a pageable staging copy (PyTorch's caching host allocator keeps
    the pinned block until the copy is done, and reuses it)."""
    if isinstance(im, torch.Tensor):
        return im if im.device == device else im.to(device, non_blocking=True)
    return torch.from_numpy(np.ascontiguousarray(im)).pin_memory().to(device, non_blocking=True)


def _cv2_resize(im: ImageArray, w: int, h: int) -> ImageArray:
    return np.asarray(cv2.resize(im, (w, h), interpolation=cv2.INTER_LINEAR), dtype=np.uint8)


def unplace_boxes(xyxy: torch.Tensor, p: Placement) -> torch.Tensor:
    """Map boxes from the batch tensor back to the original image's pixels, clipped to the image."""
    out = xyxy.clone()
    gain_x, gain_y = p.new_w / p.orig_w, p.new_h / p.orig_h
    out[:, [0, 2]] = (out[:, [0, 2]] - p.left) / gain_x
    out[:, [1, 3]] = (out[:, [1, 3]] - p.top) / gain_y
    out[:, [0, 2]] = out[:, [0, 2]].clamp(0, p.orig_w)
    out[:, [1, 3]] = out[:, [1, 3]].clamp(0, p.orig_h)
    return out
