"""Reduced decoding through the real service: large JPEGs of real street photos over gRPC, the committed model on
onnxruntime, the SQLite store. With ``ingest.reduced_decode`` on, the model is given the frame decoded at 1/4, yet
the boxes clients get are in full-frame pixels and agree with a service that decodes every frame whole, and an
incident's evidence is the full-resolution frame."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
import pytest

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.client import IngestClient, make_frame
from detector.config import DEFAULT_WEIGHTS, load_config
from detector.inference.engine import BatchTimings, Engine, InferenceThreads, ModelSettings, build_engine
from detector.types import DeliveryMode, Detections, ImageArray
from tests.api.serving import frames_of, serving
from tests.conftest import jpeg, run, shared_path

W, H = 1920, 1080  # the frames sent; the model's input is 416, so a reduced decode is 1/4: 480x270
T0 = 1.76e9
MIN_IOU = 0.8  # measured: 0.977-0.995 for every box of confidence >= 0.5 on these photos at 1/4
CONFIDENT = 0.5  # boxes near the 0.25 threshold come and go with any change of the input; these do not
PHOTOS = ("000001.jpg", "000005.jpg", "000006.jpg", "000008.jpg")  # garbage and overflowing bins, 0.63-0.92


class ShapeProbe(Engine):
    """The real engine, noting the size of every image it is given (to see what the service decoded)."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.name, self.version, self.class_names = inner.name, inner.version, inner.class_names
        self.device, self.backend, self.settings, self.imgsz = inner.device, inner.backend, inner.settings, inner.imgsz
        self.shapes: list[tuple[int, ...]] = []

    def infer(self, images: Sequence[ImageArray]) -> tuple[list[Detections], BatchTimings]:
        self.shapes += [tuple(im.shape) for im in images]
        return self.inner.infer(images)


@pytest.fixture(scope="module")
def onnx_engine() -> Engine:
    settings = ModelSettings(weights=DEFAULT_WEIGHTS, device="cpu")
    return build_engine("onnx", settings, InferenceThreads(intra_op=2))


@pytest.fixture(scope="module")
def frames() -> list[pb.Frame]:
    """cam-1 sees the first photo for 5 s at 1 fps (garbage confirmed: an incident); cam-2.. one photo each."""
    folder = shared_path("datasets", "city-garbage", "images", "train")
    encoded = []
    for name in PHOTOS:
        photo = cv2.imread(str(folder / name))
        assert photo is not None, name
        encoded.append(jpeg(cv2.resize(photo, (W, H), interpolation=cv2.INTER_CUBIC), quality=90))
    out = [make_frame("cam-1", i + 1, T0 + i, jpeg=encoded[0], mode=DeliveryMode.LOSSLESS) for i in range(5)]
    for k, data in enumerate(encoded[1:], start=2):
        out.append(make_frame(f"cam-{k}", 1, T0, jpeg=data, mode=DeliveryMode.LOSSLESS))
    return out


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _boxes(result: pb.FrameResult) -> list[tuple[str, float, tuple[float, float, float, float]]]:
    return [(d.label, d.confidence, (d.box.x1, d.box.y1, d.box.x2, d.box.y2)) for d in result.detections]


async def _first_opened(channel: grpc.aio.Channel, category: str) -> ipb.IncidentEvent:
    call = incidents_pb2_grpc.IncidentsStub(channel).Subscribe(ipb.SubscribeRequest(consumer="t", after_sequence=0))
    seen: list[str] = []

    async def find() -> ipb.IncidentEvent:
        async for event in call:
            seen.append(f"{ipb.EventType.Name(event.type)} {event.category}")
            if event.type == ipb.OPENED and event.category == category:
                return event
        raise AssertionError(f"the event stream ended; events: {seen}")

    try:
        return await asyncio.wait_for(find(), 60)
    except TimeoutError:
        raise AssertionError(f"no OPENED {category}; events: {seen}") from None
    finally:
        call.cancel()


def _run_service(
    tmp: Path, engine: Engine, frames: list[pb.Frame], reduced: bool
) -> tuple[dict[tuple[str, int], pb.FrameResult], list[tuple[int, ...]], dict[str, Any]]:
    overrides = [
        "server.port=0",
        f"store.data_dir={tmp}",
        "model.device=cpu",
        "model.warmup_batch_sizes=[1]",
        "ingest.stale_after_s=0",  # no SOURCE_DOWN events however slow the machine
        f"ingest.reduced_decode={str(reduced).lower()}",
    ]
    config = load_config(None, environ={}, overrides=overrides)
    probe = ShapeProbe(engine)

    async def go() -> tuple[dict[tuple[str, int], pb.FrameResult], dict[str, Any]]:
        async with serving(config, probe) as (_service, target):
            probe.shapes.clear()  # the warm-up's dummy batch
            async with IngestClient(target) as client:
                results = {(r.source_id, r.seq): r async for r in client.stream(frames_of(frames))}
            async with grpc.aio.insecure_channel(target) as channel:
                opened = await _first_opened(channel, "EXPOSED_GARBAGE")
                stub = incidents_pb2_grpc.IncidentsStub(channel)
                evidence = {}
                for ref in opened.evidence:
                    request = ipb.GetEvidenceRequest(sha256=ref.sha256)
                    evidence[ref.kind] = b"".join([c.data async for c in stub.GetEvidence(request)])
        return results, {"opened": opened, "evidence": evidence}

    results, incident = run(go())
    return results, probe.shapes, incident


def test_reduced_decoding_gives_full_frame_boxes_that_agree_with_full_decoding_and_full_size_evidence(
    tmp_path: Path, onnx_engine: Engine, frames: list[pb.Frame]
) -> None:
    reduced, reduced_shapes, incident = _run_service(tmp_path / "reduced", onnx_engine, frames, reduced=True)
    full, full_shapes, _ = _run_service(tmp_path / "full", onnx_engine, frames, reduced=False)

    # What the model was given: the frame at 1/4 (480x270) with reduced decoding, the whole frame without.
    assert set(reduced_shapes) == {(H // 4, W // 4, 3)} and len(reduced_shapes) == len(frames)
    assert set(full_shapes) == {(H, W, 3)} and len(full_shapes) == len(frames)

    assert reduced.keys() == full.keys() == {(f.source_id, f.seq) for f in frames}
    matched = 0
    for key, got in reduced.items():
        want = full[key]
        assert not got.HasField("error"), got.error.message
        assert (got.image_width, got.image_height) == (want.image_width, want.image_height) == (W, H)
        for label, _conf, box in _boxes(got):
            assert 0 <= box[0] < box[2] <= W and 0 <= box[1] < box[3] <= H, f"{key}: {label} {box} off the frame"
        # Every confident box of either run has a box of its class in the other that overlaps it by MIN_IOU.
        for ours, theirs in ((_boxes(got), _boxes(want)), (_boxes(want), _boxes(got))):
            for label, conf, box in ours:
                if conf < CONFIDENT:
                    continue
                best = max((_iou(box, b) for lab, _c, b in theirs if lab == label), default=0.0)
                assert best >= MIN_IOU, f"{key}: {label} {conf:.2f} at {box}: best IoU {best:.3f} in {theirs}"
                matched += 1
    assert matched >= 2 * 2 * len(PHOTOS), f"only {matched} confident boxes matched: the scene shows too little"
    # Boxes in full-frame pixels, not the model's 480x270: the photos' objects reach well beyond it.
    assert max(box[2] for r in reduced.values() for _l, _c, box in _boxes(r)) > W / 2

    # The incident's evidence: the whole frame at full resolution, and a crop around the box in full pixels.
    opened, evidence = incident["opened"], incident["evidence"]
    assert set(evidence) == {"frame_jpeg", "crop_jpeg"}
    photo = cv2.imdecode(np.frombuffer(evidence["frame_jpeg"], np.uint8), cv2.IMREAD_COLOR)
    assert photo is not None
    assert photo.shape == (H, W, 3), "the evidence photo is the frame decoded whole, not the model's 1/4"
    box = (opened.box.x1, opened.box.y1, opened.box.x2, opened.box.y2)
    sent = frames[0].encoded
    whole = cv2.imdecode(np.frombuffer(sent, np.uint8), cv2.IMREAD_COLOR)
    small = cv2.imdecode(np.frombuffer(sent, np.uint8), cv2.IMREAD_REDUCED_COLOR_4)
    blurred = cv2.resize(small, (W, H), interpolation=cv2.INTER_LINEAR)
    keep = np.ones((H, W), dtype=bool)
    keep[max(0, int(box[1]) - 80) : int(box[3]) + 10] = False  # the drawn box and its caption
    assert keep.mean() > 0.2, f"box {box} leaves too little of the photo to compare"
    sharp_diff = np.abs(photo.astype(np.float32) - whole.astype(np.float32))[keep].mean()
    blurred_diff = np.abs(photo.astype(np.float32) - blurred.astype(np.float32))[keep].mean()
    # Measured: 0.31 grey levels from the sent frame decoded whole (the evidence is re-encoded), 1.88 from the 1/4
    # decode enlarged back: the evidence is cut from the full-resolution pixels, not the model's.
    assert sharp_diff < 1.0 and sharp_diff < blurred_diff / 2, (sharp_diff, blurred_diff)
    garbage = [b for lab, c, b in _boxes(full[("cam-1", 1)]) if lab == "garbage" and c >= CONFIDENT]
    assert max(_iou(box, b) for b in garbage) >= MIN_IOU, f"incident box {box} vs full decoding's {garbage}"
    crop = cv2.imdecode(np.frombuffer(evidence["crop_jpeg"], np.uint8), cv2.IMREAD_COLOR)
    assert crop is not None
    assert crop.shape[1] >= min(W, box[2] - box[0]) - 1 and crop.shape[0] >= min(H, box[3] - box[1]) - 1
