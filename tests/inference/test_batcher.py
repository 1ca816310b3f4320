"""Batching, fairness, drop policy and draining of the inference core.

The model here is a recording stand-in (it returns no boxes and remembers which frames it got): the batcher's
scheduling is under test, and the real model cannot be made slow or paused on demand. The real model runs
through the core in tests/api.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import numpy as np
import pytest

from detector.inference.batcher import BatchingSettings, CoreStopped, FrameDropped, InferenceCore
from detector.inference.engine import BatchTimings, Engine
from detector.types import DeliveryMode, Detections, Frame, ImageArray


class RecordingEngine(Engine):
    """Returns no detections; blocks while ``gate`` is clear; records the source of each frame per batch."""

    def __init__(self) -> None:
        self.name, self.version, self.class_names, self.device, self.backend = "rec", "0", ["x"], "cpu", "rec"
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def infer(self, images: Sequence[ImageArray]) -> tuple[list[Detections], BatchTimings]:
        self.gate.wait(10)
        self.batches.append([f"{int(im[0, 0, 0])}:{int(im[0, 0, 1])}" for im in images])
        return [Detections() for _ in images], BatchTimings()


def frame(source: int, seq: int) -> Frame:
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    image[0, 0] = (source, seq, 0)
    return Frame(f"s{source}", seq, 1e9 + seq, image)


async def _submit_all(core: InferenceCore, frames: list[Frame], mode: DeliveryMode) -> list[object]:
    tasks = [asyncio.create_task(core.submit(f, mode)) for f in frames]
    return list(await asyncio.gather(*tasks, return_exceptions=True))


def test_a_busy_source_cannot_starve_the_others():
    engine = RecordingEngine()
    engine.gate.clear()
    core = InferenceCore(engine, BatchingSettings(max_batch=4, max_wait_ms=5, max_per_source=2, queue_size=32))

    async def go() -> None:
        heavy = [frame(1, i) for i in range(20)]
        light = [frame(2, 0), frame(3, 0)]
        tasks = asyncio.create_task(_submit_all(core, heavy, DeliveryMode.LOSSLESS))
        await asyncio.sleep(0.05)  # the worker is blocked inside the first batch of the heavy source
        others = asyncio.create_task(_submit_all(core, light, DeliveryMode.LOSSLESS))
        await asyncio.sleep(0.05)
        engine.gate.set()
        await asyncio.gather(tasks, others)

    asyncio.run(go())
    core.stop()
    second = engine.batches[1]
    assert "2:0" in second and "3:0" in second, f"light sources waited behind the heavy one: {engine.batches}"
    assert all(sum(1 for f in b if f.startswith("1:")) <= 2 for b in engine.batches[1:3])
    heavy_order = [f for b in engine.batches for f in b if f.startswith("1:")]
    assert heavy_order == [f"1:{i}" for i in range(20)], "a source's frames are run in the order they came"


def test_round_robin_rotates_which_source_goes_first():
    engine = RecordingEngine()
    engine.gate.clear()
    core = InferenceCore(engine, BatchingSettings(max_batch=2, max_wait_ms=1, max_per_source=1, queue_size=32))

    async def go() -> None:
        first = asyncio.create_task(core.submit(frame(9, 0), DeliveryMode.LOSSLESS))
        await asyncio.sleep(0.05)
        frames = [frame(s, i) for i in range(3) for s in (1, 2, 3)]
        rest = asyncio.create_task(_submit_all(core, frames, DeliveryMode.LOSSLESS))
        await asyncio.sleep(0.05)
        engine.gate.set()
        await asyncio.gather(first, rest)

    asyncio.run(go())
    core.stop()
    batches = engine.batches[1:]
    assert all(len(b) == 2 and len({f[0] for f in b}) == 2 for b in batches[:-1])
    counts = {s: sum(1 for b in batches for f in b if f.startswith(f"{s}:")) for s in "123"}
    assert counts == {"1": 3, "2": 3, "3": 3}
    firsts = [b[0][0] for b in batches[:3]]
    assert len(set(firsts)) == 3, f"the same source led every batch: {batches}"


def test_live_drops_the_oldest_and_lossless_waits_for_room():
    engine = RecordingEngine()
    engine.gate.clear()
    core = InferenceCore(engine, BatchingSettings(max_batch=1, max_wait_ms=0, max_per_source=1, queue_size=2))

    async def go() -> tuple[list[object], list[object], bool]:
        blocker = asyncio.create_task(core.submit(frame(5, 0), DeliveryMode.LIVE))
        await asyncio.sleep(0.05)  # taken by the worker, which now blocks
        live = asyncio.create_task(_submit_all(core, [frame(1, i) for i in range(5)], DeliveryMode.LIVE))
        await asyncio.sleep(0.05)
        lossless = asyncio.create_task(_submit_all(core, [frame(2, i) for i in range(5)], DeliveryMode.LOSSLESS))
        await asyncio.sleep(0.05)
        held = core.queue_depths()["s2"] == 2 and not lossless.done()
        engine.gate.set()
        live_results, lossless_results, _ = await asyncio.gather(live, lossless, blocker)
        return live_results, lossless_results, held

    live, lossless, held = asyncio.run(go())
    core.stop()
    assert held, "LOSSLESS frames beyond the queue size must wait, not queue without bound"
    assert [type(r).__name__ for r in live] == ["FrameDropped"] * 3 + ["Inference"] * 2
    assert core.dropped_total("s1") == 3
    assert all(type(r).__name__ == "Inference" for r in lossless)
    assert core.dropped_total("s2") == 0


def test_drain_finishes_queued_frames_and_refuses_new_ones():
    engine = RecordingEngine()
    engine.gate.clear()
    core = InferenceCore(engine, BatchingSettings(max_batch=2, max_wait_ms=1, max_per_source=2, queue_size=8))

    async def go() -> tuple[list[object], bool]:
        queued = asyncio.create_task(_submit_all(core, [frame(1, i) for i in range(5)], DeliveryMode.LOSSLESS))
        await asyncio.sleep(0.05)
        drained = asyncio.create_task(asyncio.to_thread(core.drain, 5.0))
        await asyncio.sleep(0.05)
        with pytest.raises(CoreStopped):
            await core.submit(frame(2, 0), DeliveryMode.LOSSLESS)
        engine.gate.set()
        return await queued, await drained

    results, drained = asyncio.run(go())
    core.stop()
    assert drained
    assert all(type(r).__name__ == "Inference" for r in results)


def test_an_engine_failure_fails_that_batch_only():
    class Flaky(RecordingEngine):
        def infer(self, images: Sequence[ImageArray]) -> tuple[list[Detections], BatchTimings]:
            if any(int(im[0, 0, 0]) == 7 for im in images):
                raise RuntimeError("CUDA error: out of memory")
            return super().infer(images)

    core = InferenceCore(Flaky(), BatchingSettings(max_batch=1, max_wait_ms=0, max_per_source=1, queue_size=4))

    async def go() -> list[object]:
        return await _submit_all(core, [frame(7, 0), frame(1, 0)], DeliveryMode.LOSSLESS)

    bad, good = asyncio.run(go())
    core.stop()
    assert isinstance(bad, RuntimeError) and not isinstance(good, Exception)
    assert not isinstance(good, FrameDropped)


class SideBySideEngine(Engine):
    """Each call waits until ``together`` calls are inside it at once (a barrier), so a core that runs one batch at
    a time fails its batches; returns one 8x8 box in the top-left corner of every image it gets."""

    def __init__(self, together: int) -> None:
        self.name, self.version, self.class_names, self.device, self.backend = "pair", "0", ["x"], "cpu", "pair"
        self.barrier = threading.Barrier(together, timeout=10)
        self.calls = 0
        self.lock = threading.Lock()

    def infer(self, images: Sequence[ImageArray]) -> tuple[list[Detections], BatchTimings]:
        with self.lock:
            self.calls += 1
            first = self.calls <= self.barrier.parties
        if first:
            self.barrier.wait()
        box = np.array([[0, 0, 8, 8]], dtype=np.float32)
        ones = np.ones(1, dtype=np.float32)
        zero = np.zeros(1, dtype=np.int64)
        return [Detections(xyxy=box.copy(), confidence=ones, class_id=zero) for _ in images], BatchTimings()


def test_workers_run_batches_side_by_side_and_a_tiled_frame_completes_once_with_every_tile():
    from detector.inference.tiling import TilingPolicy, TilingSettings, TilingSpec, plan_tiles

    spec = TilingSpec(tile_px=64, overlap_px=16)
    engine = SideBySideEngine(together=2)
    core = InferenceCore(
        engine,
        BatchingSettings(max_batch=2, max_wait_ms=0, max_per_source=2, queue_size=8),
        tiling=TilingPolicy(TilingSettings(sources={"tiled": spec}), imgsz=64),
        workers=2,
    )
    big = Frame("tiled", 0, 1e9, np.zeros((128, 160, 3), dtype=np.uint8))
    tiles = plan_tiles(128, 160, spec)

    async def go() -> list[object]:
        return await _submit_all(core, [big], DeliveryMode.LOSSLESS)

    try:
        (result,) = asyncio.run(go())
    finally:
        core.stop()
    assert not isinstance(result, BaseException), f"the first two batches did not run side by side: {result!r}"
    assert engine.calls == -(-len(tiles) // 2)  # every item ran once, two per batch
    # One box per tile at its corner; the whole-frame pass's box at (0, 0) is the first tile's, merged with it.
    corners = sorted((float(x0), float(y0)) for x0, y0, _, _ in result.detections.xyxy)  # type: ignore[attr-defined]
    assert corners == sorted((float(t.x0), float(t.y0)) for t in tiles if not t.full)
