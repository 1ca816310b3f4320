"""Stream health through the service's own pipeline (``build_pipeline``: colour-blob engine, real rules, real
SQLite store), no gRPC: frames in, then the monitor's check driven by hand on an injected wall clock.

A green patch is garbage (tests/api/scripted.py): seen 3 s in 5 it opens an EXPOSED_GARBAGE incident, so a source
can have an open incident of its own when it goes down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from detector.api.client import encode_jpeg
from detector.config import ServiceConfig, load_config
from detector.inference.engine import build_engine
from detector.ingest.config import IngestSettings
from detector.ingest.frames import EncodedImage, FrameInput
from detector.ingest.health import StreamHealth
from detector.metrics import ServiceMetrics
from detector.pipeline import FrameOutcome, FramePipeline
from detector.server import build_pipeline
from detector.store.base import IncidentStore, open_store
from detector.store.model import IncidentState
from detector.types import STREAM_HEALTH, DeliveryMode, EventType, Frame, IncidentEvent, Severity
from tests.api.scripted import GREEN, T0, scene, scripted_overrides, write_spec

DOWN, UP, DEGRADED, UPDATED = EventType.SOURCE_DOWN, EventType.SOURCE_UP, EventType.SOURCE_DEGRADED, EventType.UPDATED
GARBAGE_JPEG = encode_jpeg(scene([(GREEN, (60, 150, 110, 200))]))
EMPTY_JPEG = encode_jpeg(scene([]))


class Clock:
    """The monitor's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def make_config(tmp_path: Path, *overrides: str) -> ServiceConfig:
    spec = write_spec(tmp_path / "blobs.yaml")
    # scripted_overrides turns stream health off for the other service tests; these turn it on (30 s) again
    on = "ingest.stale_after_s=30"
    return load_config(None, environ={}, overrides=[*scripted_overrides(spec, tmp_path / "data"), on, *overrides])


@contextmanager
def pipeline_of(config: ServiceConfig, clock: Clock) -> Iterator[tuple[FramePipeline, IncidentStore]]:
    engine = build_engine("colour-blobs", config.model)
    store = open_store(config.store)
    decoder = ThreadPoolExecutor(1)
    pipeline = build_pipeline(config, engine, store, decoder, ServiceMetrics(), clock=clock)
    try:
        yield pipeline, store
    finally:
        pipeline.core.stop()
        decoder.shutdown()
        store.close()


def frames(times: list[float], *, seq0: int = 1, garbage: bool = True, recorded: bool = False) -> list[FrameInput]:
    image = EncodedImage(GARBAGE_JPEG if garbage else EMPTY_JPEG)
    return [
        FrameInput("cam-1", seq0 + i, T0 + t, image, mode=DeliveryMode.LOSSLESS, recorded=recorded)
        for i, t in enumerate(times)
    ]


async def send(pipeline: FramePipeline, items: list[FrameInput]) -> list[IncidentEvent]:
    async def each() -> AsyncIterator[FrameInput]:
        for item in items:
            yield item

    outcomes = [outcome async for outcome in pipeline.stream(each(), max_inflight=2)]
    assert all(outcome.ok for outcome in outcomes), [outcome.error for outcome in outcomes]
    return [event for outcome in outcomes for event in outcome.events]


def every(fps: float, start_s: float, end_s: float) -> list[float]:
    """Capture times (seconds after T0) at ``fps`` in [start_s, end_s]."""
    n = round((end_s - start_s) * fps)
    return [start_s + i / fps for i in range(n + 1)]


def test_a_silent_source_goes_down_once_marks_its_incidents_and_comes_back_on_the_same_incident(
    tmp_path: Path,
) -> None:
    clock = Clock()

    async def scenario(pipeline: FramePipeline, store: IncidentStore) -> None:
        opened = [e for e in await send(pipeline, frames(every(2, 0.0, 3.5))) if e.type is EventType.OPENED]
        assert len(opened) == 1, "the garbage incident is open before the source goes quiet"
        garbage_id = opened[0].incident_id

        clock.now_s += 29.9
        assert await pipeline.check_streams() == [], "29.9 s of silence is not 30"
        clock.now_s += 0.1
        down, *marked = await pipeline.check_streams()
        assert (down.type, down.category, down.source_id) == (DOWN, STREAM_HEALTH, "cam-1")
        assert down.last_seen_ts == down.first_seen_ts == T0 + 3.5, "the capture time of the last frame"
        assert down.note == "no frame for 30 s" and down.severity is Severity.MEDIUM
        assert [(e.type, e.incident_id) for e in marked] == [(UPDATED, garbage_id)]
        assert marked[0].note == "source down since 2025-10-09T08:53:23Z"
        assert marked[0].last_seen_ts == T0 + 3.5, "the rules' incident is as it was, only noted"
        assert marked[0].evidence and marked[0].evidence == opened[0].evidence, "it keeps its photo"

        clock.now_s += 600
        assert await pipeline.check_streams() == [], "exactly one SOURCE_DOWN per outage"
        assert pipeline.stream_health is not None and pipeline.stream_health.sources_down == ["cam-1"]
        down_record = store.get_incident(down.incident_id)
        assert down_record is not None and down_record.state is IncidentState.OPEN

        await send(pipeline, frames([100.0, 100.5], seq0=100))
        up, *back = await pipeline.check_streams()
        assert (up.type, up.incident_id, up.last_seen_ts) == (UP, down.incident_id, T0 + 100.0)
        assert up.note == "frames are back after 96 s of capture time"
        assert [(e.type, e.incident_id, e.note) for e in back] == [
            (UPDATED, garbage_id, "source back at 2025-10-09T08:55:00Z")
        ]
        down_record = store.get_incident(down.incident_id)
        assert down_record is not None and down_record.state is IncidentState.CLEARED
        stored = [e.type for e in store.read_events(0, 100) if e.incident_id == down.incident_id]
        assert stored == [DOWN, UP], "both went through the event writer into the log"
        assert pipeline.stream_health.sources_down == []

    with pipeline_of(make_config(tmp_path), clock) as (pipeline, store):
        asyncio.run(scenario(pipeline, store))


def test_a_source_below_its_expected_frame_rate_is_degraded_until_it_recovers(tmp_path: Path) -> None:
    config = make_config(
        tmp_path, "ingest.fps_window_s=5", "ingest.streams={cam-1: {expected_fps: 2, degraded_below_fraction: 0.5}}"
    )
    clock = Clock()

    async def scenario(pipeline: FramePipeline) -> list[IncidentEvent]:
        found = []
        await send(pipeline, frames(every(2, 0.0, 6.0), garbage=False))
        found += await pipeline.check_streams()  # 2 fps: as expected
        await send(pipeline, frames(every(0.5, 8.0, 14.0), seq0=100, garbage=False))
        found += await pipeline.check_streams()  # 3 frames in the last 5 s: 0.6 fps, under 1
        await send(pipeline, frames(every(2, 14.5, 20.0), seq0=200, garbage=False))
        found += await pipeline.check_streams()  # 2 fps again
        return found

    with pipeline_of(config, clock) as (pipeline, store):
        degraded, up = asyncio.run(scenario(pipeline))
        record = store.get_incident(degraded.incident_id)
    assert (degraded.type, degraded.category, degraded.severity) == (DEGRADED, STREAM_HEALTH, Severity.LOW)
    assert degraded.note == "0.6 fps over the last 5 s, expected 2 fps" and degraded.last_seen_ts == T0 + 14.0
    assert (up.type, up.incident_id, up.first_seen_ts, up.last_seen_ts) == (UP, degraded.incident_id, T0 + 14, T0 + 20)
    assert record is not None and record.state is IncidentState.CLEARED


def test_a_source_down_across_a_restart_is_not_reported_twice_and_comes_back_on_its_incident(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    clock = Clock()
    with pipeline_of(config, clock) as (pipeline, _):

        async def before() -> IncidentEvent:
            await send(pipeline, frames(every(2, 0.0, 3.5)))
            clock.now_s += 30
            return (await pipeline.check_streams())[0]

        down = asyncio.run(before())
    assert down.type is DOWN

    restarted = Clock()
    with pipeline_of(config, restarted) as (pipeline, store):
        assert pipeline.restore() == 2, "the garbage incident (rules) and the outage (stream health)"

        async def after() -> tuple[list[IncidentEvent], list[IncidentEvent]]:
            restarted.now_s += 3600
            silent = await pipeline.check_streams()
            await send(pipeline, frames([200.0], seq0=300))
            return silent, await pipeline.check_streams()

        silent, back = asyncio.run(after())
        record = store.get_incident(down.incident_id)
    assert silent == [], "still down after the restart: no second SOURCE_DOWN"
    assert [(e.type, e.incident_id) for e in back if e.category == STREAM_HEALTH] == [(UP, down.incident_id)]
    assert back[0].first_seen_ts == T0 + 3.5 and back[0].last_seen_ts == T0 + 200.0
    noted = [e for e in back if e.type is UPDATED]
    assert [e.note for e in noted] == ["source back at 2025-10-09T08:56:40Z"]
    assert noted[0].evidence, "it keeps a photo after the restart"
    assert record is not None and record.state is IncidentState.CLEARED


@pytest.mark.parametrize(
    ("overrides", "recorded"),
    [
        (["ingest.stale_after_s=0"], False),
        (["ingest.stale_after_s=null"], False),
        ([], True),  # a recorded flight ends; the drone is not down
    ],
)
def test_no_source_goes_down_when_disabled_or_never_seen_live(
    tmp_path: Path, overrides: list[str], recorded: bool
) -> None:
    clock = Clock()

    async def scenario(pipeline: FramePipeline) -> list[IncidentEvent]:
        assert await pipeline.check_streams() == [], "nothing seen yet"
        await send(pipeline, frames([0.0, 0.5], garbage=False, recorded=recorded))
        clock.now_s += 1e6
        return await pipeline.check_streams()

    with pipeline_of(make_config(tmp_path, *overrides), clock) as (pipeline, _):
        assert asyncio.run(scenario(pipeline)) == []


def test_a_degraded_outage_resumed_without_an_expectation_any_more_is_cleared_by_its_next_frame() -> None:
    """The monitor alone: ``expected_fps`` was dropped from the settings while the source was degraded."""
    health = StreamHealth(IngestSettings(), clock=Clock())
    degraded = IncidentEvent(
        "e-1", "outage-1", DEGRADED, STREAM_HEALTH, "", "", Severity.LOW, 1, "cam-1", T0, T0, (0, 0, 0, 0), "", "fps<5"
    )
    health.restore([degraded])
    assert health.check() == [] and health.sources_degraded == ["cam-1"]
    frame = Frame("cam-1", 1, T0 + 50, np.zeros((4, 4, 3), np.uint8))
    health.observe(frame, FrameOutcome("cam-1", 1))
    [up] = health.check()
    assert (up.type, up.incident_id, up.last_seen_ts) == (UP, "outage-1", T0 + 50)
    assert health.sources_degraded == []
