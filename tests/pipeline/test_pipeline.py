"""The frame pipeline on its own, with no gRPC server: frames in, detections and incidents out.

The stages are the service's own (``build_pipeline``): the colour-blob engine behind the Engine interface (a red
patch is a stall, a green one garbage: tests/api/scripted.py), the real inference core, tracker, geo stage, rules,
evidence renderer and a real SQLite store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from detector.api.client import encode_jpeg
from detector.config import ServiceConfig, load_config
from detector.inference.engine import build_engine
from detector.ingest.decode import FrameRejected, RejectCode
from detector.ingest.frames import EncodedImage, FrameInput, RawPixels, Unreadable
from detector.metrics import ServiceMetrics
from detector.pipeline import FrameOutcome, FramePipeline
from detector.pipeline.order import SourceTurns
from detector.server import build_pipeline
from detector.store.base import IncidentStore, open_store
from detector.types import DeliveryMode, EventType, EvidenceKind
from tests.api.scripted import GREEN, T0, scene, scripted_overrides, write_spec


@pytest.fixture
def config(tmp_path: Path) -> ServiceConfig:
    spec = write_spec(tmp_path / "blobs.yaml")
    return load_config(None, environ={}, overrides=scripted_overrides(spec, tmp_path / "data"))


@pytest.fixture
def parts(config: ServiceConfig) -> Iterator[tuple[FramePipeline, IncidentStore]]:
    engine = build_engine("colour-blobs", config.model)
    store = open_store(config.store)
    decoder = ThreadPoolExecutor(2)
    pipeline = build_pipeline(config, engine, store, decoder, ServiceMetrics())
    try:
        yield pipeline, store
    finally:
        pipeline.core.stop()
        decoder.shutdown()
        store.close()


GARBAGE = [(GREEN, (60, 150, 110, 200))]


def garbage_frame(seq: int, t: float, source: str = "cam-1") -> FrameInput:
    image = EncodedImage(encode_jpeg(scene(GARBAGE)))
    return FrameInput(source, seq, T0 + t, image, mode=DeliveryMode.LOSSLESS)


async def items(frames: list[FrameInput | Unreadable]) -> AsyncIterator[FrameInput | Unreadable]:
    for frame in frames:
        yield frame


async def run_stream(pipeline: FramePipeline, frames: list[FrameInput | Unreadable]) -> list[FrameOutcome]:
    return [outcome async for outcome in pipeline.stream(items(frames), max_inflight=4)]


def test_frames_become_an_incident_with_evidence_through_the_pipeline_alone(
    parts: tuple[FramePipeline, IncidentStore],
) -> None:
    pipeline, store = parts
    # Garbage opens by confirmation: seen in 3 of 5 seconds. Frames at 2 fps; frame 3 is undecodable bytes, so
    # the sightings fall in seconds 0 (seq 1, 2), 1 (seq 4), 2 (seq 5): seq 5 opens it.
    frames: list[FrameInput | Unreadable] = [garbage_frame(seq, (seq - 1) / 2) for seq in range(1, 9)]
    frames[2] = FrameInput("cam-1", 3, T0 + 1.0, EncodedImage(b"\xff\xd8 not a jpeg"), mode=DeliveryMode.LOSSLESS)
    outcomes = asyncio.run(run_stream(pipeline, frames))

    assert [o.seq for o in outcomes] == list(range(1, 9)), "one outcome per frame, in order"
    bad = outcomes[2]
    assert bad.error is not None and bad.error.code is RejectCode.UNDECODABLE and bad.detections is None
    good = [o for o in outcomes if o.ok]
    assert len(good) == 7
    for outcome in good:
        assert outcome.detections is not None and len(outcome.detections) == 1
        assert outcome.detections.track_id is not None and outcome.image_size == (320, 240)
        assert outcome.timings is not None and outcome.timings.batch_size >= 1
        assert outcome.fixes is not None and len(outcome.fixes.locations) == 1  # the geo stage ran (unlocated)
    assert len({int(o.detections.track_id[0]) for o in good if o.detections is not None}) == 1, "one track"
    opened = [(o.seq, e) for o in outcomes for e in o.events if e.type is EventType.OPENED]
    assert [seq for seq, _ in opened] == [5], "the third second with a sighting opens it"
    event = opened[0][1]
    assert event.category == "EXPOSED_GARBAGE" and event.last_seen_ts == pytest.approx(T0 + 2.0)
    assert {e.kind for e in event.evidence} == {EvidenceKind.FRAME_JPEG, EvidenceKind.CROP_JPEG}
    stored = store.read_events(0, 10)
    assert [(e.incident_id, e.type) for e in stored] == [(event.incident_id, EventType.OPENED)]
    assert stored[0].evidence == event.evidence, "the writer stored the event the evidence stage built"


def test_per_frame_problems_are_outcomes_not_exceptions(
    parts: tuple[FramePipeline, IncidentStore], config: ServiceConfig
) -> None:
    pipeline, _ = parts
    unreadable = Unreadable("cam-1", 5, FrameRejected(RejectCode.INVALID_FRAME, "capture_time is required"))
    frames: list[FrameInput | Unreadable] = [
        garbage_frame(2, 0.0),
        garbage_frame(1, 0.5),  # seq not after 2 on this stream
        FrameInput("cam-1", 3, T0 + 1.0, RawPixels(4, 4, False, b"\0" * 47)),  # 48 bytes needed
        FrameInput("", 4, T0 + 1.5, EncodedImage(b"x")),
        unreadable,
        FrameInput("cam-1", 6, T0 + 2.0, RawPixels(9000, 2, False, b"")),  # wider than max_side_px
    ]
    outcomes = asyncio.run(run_stream(pipeline, frames))
    codes = [None if o.error is None else o.error.code for o in outcomes]
    assert codes == [
        None,
        RejectCode.OUT_OF_ORDER,
        RejectCode.INVALID_IMAGE,
        RejectCode.INVALID_FRAME,
        RejectCode.INVALID_FRAME,
        RejectCode.IMAGE_TOO_LARGE,
    ]
    errors = pipeline.metrics.frame_errors
    assert errors.labels("INVALID_FRAME")._value.get() == 2


def test_a_source_not_in_the_allow_list_is_refused_per_frame(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "blobs.yaml")
    overrides = [*scripted_overrides(spec, tmp_path / "data"), "ingest.sources=[cam-1]"]
    config = load_config(None, environ={}, overrides=overrides)
    engine = build_engine("colour-blobs", config.model)
    with open_store(config.store) as store, ThreadPoolExecutor(1) as decoder:
        pipeline = build_pipeline(config, engine, store, decoder, ServiceMetrics())
        try:
            outcomes = asyncio.run(run_stream(pipeline, [garbage_frame(1, 0.0, "cam-9"), garbage_frame(1, 0.0)]))
        finally:
            pipeline.core.stop()
    assert outcomes[0].error is not None and outcomes[0].error.code is RejectCode.UNKNOWN_SOURCE
    assert outcomes[1].ok


def test_later_stages_take_a_sources_frames_in_the_order_they_entered() -> None:
    async def go() -> list[int]:
        turns = SourceTurns()
        passed: list[int] = []
        assert [turns.ticket("cam") for _ in range(4)] == [0, 1, 2, 3]

        async def frame(ticket: int, leaves_early: bool) -> None:
            try:
                if leaves_early:
                    return  # an error or a drop: it leaves without passing, and must not hold the others
                await turns.wait("cam", ticket)
                passed.append(ticket)
            finally:
                turns.done("cam", ticket)

        # Started last first: each must still wait for every earlier ticket.
        await asyncio.gather(frame(3, False), frame(2, False), frame(1, True), frame(0, False))
        assert turns.in_flight("cam") == 0
        return passed

    assert asyncio.run(go()) == [0, 2, 3]
