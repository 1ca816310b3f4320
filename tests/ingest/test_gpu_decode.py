"""JPEG decoding on the GPU: the decode stage's wiring runs here with nvJPEG replaced by a CPU stand-in (this
machine has no GPU); on a CUDA machine, nvJPEG's pixels and the boxes found on them are compared with the CPU's."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from detector.inference import gpu_decode
from detector.ingest.decode import FrameRejected, ImageLimits, RejectCode
from detector.ingest.decoder import FrameDecoder
from detector.ingest.frames import EncodedImage, FrameInput, RawPixels
from tests.conftest import jpeg

HAS_CUDA = torch.cuda.is_available()
LIMITS = ImageLimits(max_pixels=4000 * 3000, max_side_px=4000)
GPU = torch.device("cuda:0")  # only a name here: the stand-in below decodes on the CPU


def _scene(w: int = 320, h: int = 240) -> np.ndarray:
    image = np.full((h, w, 3), 90, dtype=np.uint8)
    cv2.rectangle(image, (40, 30), (140, 120), (20, 200, 240), -1)
    return image


def _cpu_nvjpeg(device: torch.device, data: bytes) -> torch.Tensor:
    """decode_jpeg_on's contract (HxWx3 BGR uint8, RuntimeError on bytes it cannot decode), on the CPU."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise RuntimeError("nvjpegDecode failed: NVJPEG_STATUS_BAD_JPEG")
    return torch.from_numpy(image)


def _decode(decoder: FrameDecoder, payload: object) -> object:
    item = FrameInput("cam", 1, 1.0, payload)  # type: ignore[arg-type]
    return asyncio.run(decoder.decode(item))[0]


@pytest.fixture
def gpu_decoder(monkeypatch):
    monkeypatch.setattr(gpu_decode, "decode_jpeg_on", _cpu_nvjpeg)
    with ThreadPoolExecutor(2) as pool:
        yield FrameDecoder(LIMITS, pool, gpu=GPU)


def test_a_jpeg_decoded_on_the_gpu_is_the_frames_device_image(gpu_decoder):
    data = jpeg(_scene())
    frame = _decode(gpu_decoder, EncodedImage(data))
    assert frame.image.shape == (0, 0, 3) and frame.scale == 1
    assert (frame.width, frame.height) == (320, 240) and frame.jpeg == data
    assert tuple(frame.device_image.shape) == (240, 320, 3) and frame.model_image is frame.device_image
    np.testing.assert_array_equal(frame.full_image(), frame.device_image.numpy())  # evidence: CPU decode of the JPEG


def test_png_and_raw_pixels_stay_on_the_cpu(gpu_decoder):
    _, png = cv2.imencode(".png", _scene())
    frame = _decode(gpu_decoder, EncodedImage(png.tobytes()))
    assert frame.device_image is None and frame.image.shape == (240, 320, 3)
    raw = _decode(gpu_decoder, RawPixels(320, 240, False, _scene().tobytes()))
    assert raw.device_image is None and raw.image.shape == (240, 320, 3)


def test_limits_are_checked_from_the_header_before_the_gpu_decodes(gpu_decoder, monkeypatch):
    def never(device: torch.device, data: bytes) -> torch.Tensor:
        raise AssertionError("an oversized JPEG must not be decoded")

    monkeypatch.setattr(gpu_decode, "decode_jpeg_on", never)
    with pytest.raises(FrameRejected) as err:
        _decode(gpu_decoder, EncodedImage(jpeg(_scene(4100, 100))))
    assert err.value.code is RejectCode.IMAGE_TOO_LARGE


def test_corrupt_jpeg_bytes_are_rejected_as_undecodable_not_a_crash(gpu_decoder):
    data = jpeg(_scene())
    corrupt = data[:200] + b"\x00" * 64  # the header survives, the entropy-coded data does not
    with pytest.raises(FrameRejected) as err:
        _decode(gpu_decoder, EncodedImage(corrupt))
    assert err.value.code is RejectCode.UNDECODABLE


def test_a_jpeg_nvjpeg_refuses_is_decoded_on_the_cpu(gpu_decoder, monkeypatch):
    def refuse(device: torch.device, data: bytes) -> torch.Tensor:
        raise RuntimeError("NVJPEG_STATUS_JPEG_NOT_SUPPORTED")  # e.g. a CMYK JPEG

    monkeypatch.setattr(gpu_decode, "decode_jpeg_on", refuse)
    frame = _decode(gpu_decoder, EncodedImage(jpeg(_scene())))
    assert frame.device_image is None and frame.image.shape == (240, 320, 3)


def test_decode_jpeg_on_refuses_a_cpu_device():
    with pytest.raises(ValueError, match="CUDA"):
        gpu_decode.decode_jpeg_on(torch.device("cpu"), jpeg(_scene()))


def test_the_service_decodes_on_the_gpu_only_when_the_model_runs_on_cuda(service_config):
    from detector.server import _decode_device

    auto, cpu = service_config(ingest__decode_device="auto"), service_config()
    assert cpu.ingest.decode_device == "cpu"  # the default until the GPU path has been measured on a GPU
    assert _decode_device(auto, SimpleNamespace(device="cpu")) is None  # type: ignore[arg-type]
    assert _decode_device(cpu, SimpleNamespace(device="cuda:0")) is None  # type: ignore[arg-type]
    assert _decode_device(auto, SimpleNamespace(device="cuda:1")) == torch.device("cuda:1")  # type: ignore[arg-type]


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (nvJPEG)")
def test_nvjpeg_gives_the_cpus_pixels_and_boxes_within_2_px(street_photos):
    """Would check: nvJPEG's BGR pixels are libjpeg's within a few levels (IDCT rounding differs), and the engine
    on CUDA finds the same boxes, within 2 px, from the GPU-decoded tensors as from the CPU-decoded arrays."""
    from detector.config import DEFAULT_WEIGHTS
    from detector.inference.engine import ModelSettings, build_engine

    device = torch.device("cuda:0")
    datas = [jpeg(im) for im in street_photos]
    cpu = [cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR) for d in datas]
    gpu = [gpu_decode.decode_jpeg_on(device, d) for d in datas]
    for c, g in zip(cpu, gpu, strict=True):
        assert g.device.type == "cuda" and g.dtype == torch.uint8 and tuple(g.shape) == c.shape
        diff = np.abs(g.cpu().numpy().astype(int) - c.astype(int))
        assert diff.mean() < 2.0
    engine = build_engine("torch", ModelSettings(weights=DEFAULT_WEIGHTS, device="cuda:0", imgsz=320, conf=0.05))
    want, _ = engine.infer(cpu)
    got, _ = engine.infer(gpu)  # type: ignore[arg-type]
    for a, b in zip(want, got, strict=True):
        for box, conf, cls in zip(a.xyxy, a.confidence, a.class_id, strict=True):
            if conf >= 0.25:
                assert np.any((np.abs(b.xyxy - box).max(axis=1) <= 2.0) & (b.class_id == cls)), (box, conf)
