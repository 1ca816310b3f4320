"""JPEG decoding on the GPU (nvJPEG, through torchvision): the frame goes to the model's device as compressed bytes
and is decoded there, instead of as decoded pixels after a CPU decode.

Only imported for decoding on CUDA (``ingest.decode_device``); torch and torchvision are imported when it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from detector.ingest.decode import FrameRejected, ImageLimits, RejectCode, header_size

if TYPE_CHECKING:
    import torch

JPEG_MAGIC = b"\xff\xd8"


def decode_jpeg_on(device: torch.device, data: bytes) -> torch.Tensor:
    """Decode JPEG ``data`` with nvJPEG on CUDA ``device``: HxWx3 BGR uint8 there (what the CPU decode gives, so
    :func:`detector.inference.letterbox.letterbox_batch` takes either). Raises RuntimeError when nvJPEG cannot
    decode it."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    if device.type != "cuda":
        raise ValueError(f"decode_jpeg_on decodes on a CUDA device, not on {device}")
    # bytearray: torch.frombuffer wants a writable buffer (the copy is of compressed bytes, small).
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    chw = decode_jpeg(raw, mode=ImageReadMode.RGB, device=device)  # 3xHxW RGB (grey JPEGs expanded)
    image: torch.Tensor = chw.permute(1, 2, 0).flip(2).contiguous()
    return image


def decode_checked(device: torch.device, data: bytes, limits: ImageLimits) -> torch.Tensor | None:
    """A JPEG checked against ``limits`` from its header (nothing is decoded for an oversized one), then decoded
    on ``device``. None when nvJPEG cannot decode it (corrupt bytes, or a JPEG kind it lacks, e.g. CMYK): the
    caller then decodes it on the CPU, which serves it or rejects it as UNDECODABLE as it would without a GPU."""
    size = header_size(data)
    if size is None:
        raise FrameRejected(RejectCode.UNDECODABLE, "image bytes are neither a JPEG nor a PNG")
    limits.check(*size)
    try:
        image = decode_jpeg_on(device, data)
    except RuntimeError:  # nvJPEG's errors, as torchvision raises them
        return None
    if (int(image.shape[1]), int(image.shape[0])) != size:
        return None
    return image
