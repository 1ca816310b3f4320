"""The inference core: bounded per-source queues, a fair dynamic batcher and one worker running the engine.

- Every source has its own bounded queue. A LIVE frame that finds it full pushes out the oldest queued frame of
  that source (which completes as DROPPED); a LOSSLESS frame waits for room, and so holds back its sender.
- A batch is cut when it holds ``max_batch`` frames or when its oldest frame has waited ``max_wait_ms``.
- Batches are filled round-robin over the sources that have frames, at most ``max_per_source`` items of one
  source per batch, starting after the source served first last time, so no stream can starve the others.
- A tiled source's frame (tiling.py) is several items, its tiles and its whole-frame pass; they enter batches as
  separate items counted against their source, and the frame completes when its last item has run, with the
  boxes of all its items merged into the frame's own pixels. An untiled frame is one item, run as it is.

Submitters live on an asyncio loop; the worker is a thread, because the engine blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field

from detector.inference.engine import BatchTimings, Engine
from detector.inference.tiling import Tile, TilingPolicy, TilingSettings, merge_tiles
from detector.types import DeliveryMode, Detections, Frame


@dataclass(frozen=True)
class BatcherSettings:
    max_batch: int = 8
    max_wait_ms: float = 10.0
    max_per_source: int = 4
    queue_size: int = 8  # frames queued per source


class FrameDropped(Exception):
    """A LIVE frame was pushed out of its source's queue by a newer one."""


class CoreStopped(Exception):
    """The core is draining or stopped and takes no new frames."""


@dataclass
class Inference:
    """What the core gives back for one frame."""

    detections: Detections
    queued_ms: float
    timings: BatchTimings
    batch_size: int


@dataclass
class _Job:
    """One frame in the core: its items (tiles, or the whole frame alone) and the results gathered so far."""

    frame: Frame
    enqueued: float
    tiles: list[Tile]
    future: Future[Inference] = field(default_factory=Future)
    taken: int = 0  # items handed to batches so far
    results: dict[int, Detections] = field(default_factory=dict)
    timings: BatchTimings = field(default_factory=BatchTimings)
    started: float | None = None

    @property
    def waiting_items(self) -> int:
        return len(self.tiles) - self.taken


@dataclass
class _SourceQueue:
    jobs: deque[_Job] = field(default_factory=deque)
    dropped_total: int = 0
    space_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(default_factory=list)


@dataclass
class BatchRecord:
    """One executed batch, for metrics and benchmarks."""

    size: int
    sources: int
    timings: BatchTimings


class InferenceCore:
    def __init__(
        self,
        engine: Engine,
        settings: BatcherSettings,
        on_batch: Callable[[BatchRecord], None] | None = None,
        on_drop: Callable[[str], None] | None = None,
        tiling: TilingPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.tiling = tiling or TilingPolicy(TilingSettings(), imgsz=640)
        self._on_batch = on_batch
        self._on_drop = on_drop
        self._lock = threading.Condition()
        self._queues: OrderedDict[str, _SourceQueue] = OrderedDict()
        self._accepting = True
        self._running = True
        self._worker = threading.Thread(target=self._run, name="inference-core", daemon=True)
        self._worker.start()

    # ---- submit side (event loop) -------------------------------------------------------------------------

    async def submit(self, frame: Frame, mode: DeliveryMode) -> Inference:
        """Queue a frame and wait for its result. Raises FrameDropped or CoreStopped."""
        loop = asyncio.get_running_loop()
        height, width = frame.image.shape[:2]
        tiles = self.tiling.tiles(frame.source_id, height, width)
        while True:
            with self._lock:
                if not self._accepting:
                    raise CoreStopped("the inference core is draining")
                queue = self._queues.setdefault(frame.source_id, _SourceQueue())
                if len(queue.jobs) < self.settings.queue_size:
                    job = _Job(frame, time.perf_counter(), tiles)
                    queue.jobs.append(job)
                    self._lock.notify_all()
                    break
                if mode is DeliveryMode.LIVE:
                    # The oldest frame none of whose items has run yet; a frame already partly run (a tiled
                    # frame whose first tiles are in a batch) is dropped only when it is the only one queued.
                    oldest = next((j for j in queue.jobs if j.taken == 0), queue.jobs[0])
                    queue.jobs.remove(oldest)
                    queue.dropped_total += 1
                    _fail(oldest.future, FrameDropped(f"frame {oldest.frame.seq} replaced by a newer one"))
                    if self._on_drop is not None:
                        self._on_drop(frame.source_id)
                    job = _Job(frame, time.perf_counter(), tiles)
                    queue.jobs.append(job)
                    self._lock.notify_all()
                    break
                waiter: asyncio.Future[None] = loop.create_future()
                queue.space_waiters.append((loop, waiter))
            await waiter
        return await asyncio.wrap_future(job.future)

    def dropped_total(self, source_id: str) -> int:
        with self._lock:
            queue = self._queues.get(source_id)
            return 0 if queue is None else queue.dropped_total

    def queue_depths(self) -> dict[str, int]:
        """Frames queued per source (a tiled frame counts once until its last item is in a batch)."""
        with self._lock:
            return {source: len(q.jobs) for source, q in self._queues.items()}

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def drain(self, timeout_s: float) -> bool:
        """Stop taking frames, finish the queued ones; True if all finished within the timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self._accepting = False
            for queue in self._queues.values():
                self._wake_waiters(queue)
            self._lock.notify_all()
            while any(q.jobs for q in self._queues.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def stop(self) -> None:
        with self._lock:
            self._accepting = False
            self._running = False
            for queue in self._queues.values():
                while queue.jobs:
                    _fail(queue.jobs.popleft().future, CoreStopped("the inference core stopped"))
                self._wake_waiters(queue)
            self._lock.notify_all()
        self._worker.join(timeout=10)

    # ---- worker ------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._execute(batch)

    def _next_batch(self) -> list[tuple[_Job, int]] | None:
        max_wait_s = self.settings.max_wait_ms / 1e3
        with self._lock:
            while True:
                if not self._running:
                    return None
                pending = sum(j.waiting_items for q in self._queues.values() for j in q.jobs)
                if pending:
                    oldest = min(q.jobs[0].enqueued for q in self._queues.values() if q.jobs)
                    wait_left = oldest + max_wait_s - time.perf_counter()
                    if pending >= self._fill_target() or wait_left <= 0 or not self._accepting:
                        return self._take_round_robin()
                    self._lock.wait(wait_left)
                else:
                    self._lock.wait()

    def _fill_target(self) -> int:
        """Items that make a full batch, given the per-source cap and the sources that have frames."""
        active = sum(1 for q in self._queues.values() if q.jobs)
        return min(self.settings.max_batch, active * self.settings.max_per_source)

    def _take_round_robin(self) -> list[tuple[_Job, int]]:
        """Items as (frame, tile index); a frame leaves its queue when its last item is taken."""
        batch: list[tuple[_Job, int]] = []
        taken: dict[str, int] = {}
        order = [source for source, q in self._queues.items() if q.jobs]
        progress = True
        while len(batch) < self.settings.max_batch and progress:
            progress = False
            for source in order:
                queue = self._queues[source]
                if queue.jobs and taken.get(source, 0) < self.settings.max_per_source:
                    head = queue.jobs[0]
                    batch.append((head, head.taken))
                    head.taken += 1
                    if head.waiting_items == 0:
                        queue.jobs.popleft()
                    taken[source] = taken.get(source, 0) + 1
                    progress = True
                    if len(batch) == self.settings.max_batch:
                        break
        # The source served first goes to the back, so the next batch starts with the one after it.
        if order:
            self._queues.move_to_end(order[0])
        for source in taken:
            self._wake_waiters(self._queues[source])
        self._forget_idle_sources()
        self._lock.notify_all()
        return batch

    def _forget_idle_sources(self) -> None:
        if len(self._queues) <= 1024:
            return
        for source in [s for s, q in self._queues.items() if not q.jobs and not q.space_waiters]:
            if self._queues[source].dropped_total == 0:
                del self._queues[source]

    @staticmethod
    def _wake_waiters(queue: _SourceQueue) -> None:
        waiters, queue.space_waiters = queue.space_waiters, []
        for loop, waiter in waiters:
            loop.call_soon_threadsafe(_resolve, waiter)

    def _execute(self, batch: list[tuple[_Job, int]]) -> None:
        # A caller that went away (a gateway dropping its stream) cancels its future; skip its frame, and mark
        # the rest running so that a late cancel cannot make set_result fail and kill this worker. A frame
        # dropped (LIVE) after some of its tiles were taken is done already: its remaining tiles are skipped.
        batch = [(job, i) for job, i in batch if _claim(job.future)]
        if not batch:
            return
        started = time.perf_counter()
        try:
            results, timings = self.engine.infer([job.tiles[i].crop(job.frame.image) for job, i in batch])
        except Exception as exc:  # a failing batch must fail its frames, not the worker
            for job, _ in batch:
                _fail(job.future, exc)
            return
        for (job, i), detections in zip(batch, results, strict=True):
            job.results[i] = detections
        # Each frame once per batch: it took part in this batch's time, however many of its tiles ran in it.
        for job in {id(job): job for job, _ in batch}.values():
            job.timings = timings if job.started is None else job.timings + timings
            job.started = started if job.started is None else job.started
            if len(job.results) == len(job.tiles) and not job.future.done():
                height, width = job.frame.image.shape[:2]
                merged = merge_tiles(
                    [(tile, job.results[k]) for k, tile in enumerate(job.tiles)],
                    height,
                    width,
                    self.tiling.settings.match_ios,
                )
                with contextlib.suppress(InvalidStateError):  # dropped (LIVE) or cancelled meanwhile
                    job.future.set_result(
                        Inference(merged, (job.started - job.enqueued) * 1e3, job.timings, len(batch))
                    )
        if self._on_batch is not None:
            self._on_batch(BatchRecord(len(batch), len({j.frame.source_id for j, _ in batch}), timings))


def _claim(future: Future[Inference]) -> bool:
    """True if the frame still wants results: marks it running on its first item (only this worker does)."""
    if future.running():
        return True
    if future.done():
        return False
    return future.set_running_or_notify_cancel()


def _fail(future: Future[Inference], exc: Exception) -> None:
    """Fail a queued frame's future unless its caller has cancelled it meanwhile."""
    with contextlib.suppress(InvalidStateError):
        future.set_exception(exc)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
