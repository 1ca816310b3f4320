"""The inference core: a fair dynamic batcher over the ingest queues and workers running the engine.

- Frames wait in their source's bounded queue (:mod:`detector.ingest.queues` owns the queues and the drop policy
  of each delivery mode).
- A batch is cut when it holds ``max_batch`` frames or when its oldest frame has waited ``max_wait_ms``.
- Batches are filled round-robin over the sources that have frames, at most ``max_per_source`` items of one
  source per batch, starting after the source served first last time, so no stream can starve the others.
- A tiled source's frame (tiling.py) is several items, its tiles and its whole-frame pass; they enter batches as
  separate items counted against their source, and the frame completes when its last item has run, with the
  boxes of all its items merged into the frame's own pixels. An untiled frame is one item, run as it is.

Submitters live on an asyncio loop; the workers are threads, because the engine blocks. With several workers
(``threads.inference_workers``: one per core on the CPU, detector/threads.py) each takes the next batch as soon as
it is free and runs it beside the others; frames of one source may then finish out of order, and the pipeline
puts them back in order before tracking (detector/pipeline/order.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from detector.inference.engine import BatchTimings, Engine
from detector.inference.tiling import Tile, TilingPolicy, TilingSettings, merge_tiles
from detector.ingest.queues import QueuesClosed, SourceQueues
from detector.types import DeliveryMode, Detections, Frame


class BatchingSettings(BaseModel):
    """The ``batching`` section: batch size, how long a batch may wait to fill, fairness and queue depth."""

    model_config = ConfigDict(extra="forbid")

    max_batch: int = Field(8, ge=1, le=1024, description="Most frames in one batch.")
    max_wait_ms: float = Field(10.0, ge=0, description="Longest a frame waits for its batch to fill.")
    max_per_source: int = Field(4, ge=1, description="Most frames of one source in one batch (fairness).")
    queue_size: int = Field(8, ge=1, description="Frames queued per source before LIVE drops / LOSSLESS waits.")

    @model_validator(mode="after")
    def _verify(self) -> Self:
        if self.max_per_source > self.max_batch:
            raise ValueError(
                f"batching.max_per_source ({self.max_per_source}) cannot exceed batching.max_batch ({self.max_batch})"
            )
        return self


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
    started_at: float | None = None

    @property
    def waiting_items(self) -> int:
        return len(self.tiles) - self.taken

    @property
    def started(self) -> bool:
        return self.taken > 0

    def drop(self, reason: str) -> None:
        _fail(self.future, FrameDropped(f"frame {self.frame.seq} {reason.removeprefix('frame ')}"))


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
        settings: BatchingSettings,
        on_batch: Callable[[BatchRecord], None] | None = None,
        on_drop: Callable[[str], None] | None = None,
        tiling: TilingPolicy | None = None,
        workers: int = 1,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.tiling = tiling or TilingPolicy(TilingSettings(), imgsz=engine.imgsz)
        self._on_batch = on_batch
        self.queues: SourceQueues[_Job] = SourceQueues(settings.queue_size, on_drop)
        self._lock = self.queues.lock
        self._running = True
        self._results_lock = threading.Lock()  # a tiled frame's items may finish in two workers at once
        self._workers = [
            threading.Thread(target=self._run, name=f"inference-core-{i}", daemon=True) for i in range(workers)
        ]
        for worker in self._workers:
            worker.start()

    # ---- submit side (event loop) -------------------------------------------------------------------------

    async def submit(self, frame: Frame, mode: DeliveryMode) -> Inference:
        """Queue a frame and wait for its result. Raises FrameDropped or CoreStopped."""
        job = _Job(frame, time.perf_counter(), self.tiling.tiles(frame.source_id, frame.height, frame.width))
        try:
            await self.queues.put(frame.source_id, job, mode)
        except QueuesClosed as exc:
            raise CoreStopped(str(exc)) from None
        return await asyncio.wrap_future(job.future)

    def dropped_total(self, source_id: str) -> int:
        return self.queues.dropped_total(source_id)

    def queue_depths(self) -> dict[str, int]:
        """Frames queued per source (a tiled frame counts once until its last item is in a batch)."""
        return self.queues.depths()

    # ---- lifecycle -------------------------------------------------------------------------------------------

    def drain(self, timeout_s: float) -> bool:
        """Stop taking frames, finish the queued ones; True if all finished within the timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            self.queues.close()
            self._lock.notify_all()
            while any(True for _ in self.queues.busy()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def stop(self) -> None:
        with self._lock:
            self.queues.close()
            self._running = False
            for job in self.queues.clear():
                _fail(job.future, CoreStopped("the inference core stopped"))
            self._lock.notify_all()
        for worker in self._workers:
            worker.join(timeout=10)

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
                busy = [q for _, q in self.queues.busy()]
                pending = sum(j.waiting_items for q in busy for j in q.jobs)
                if pending:
                    oldest = min(q.jobs[0].enqueued for q in busy)
                    wait_left = oldest + max_wait_s - time.perf_counter()
                    if pending >= self._fill_target(len(busy)) or wait_left <= 0 or not self.queues.accepting:
                        return self._take_round_robin()
                    self._lock.wait(wait_left)
                else:
                    self._lock.wait()

    def _fill_target(self, active: int) -> int:
        """Items that make a full batch, given the per-source cap and the sources that have frames."""
        return min(self.settings.max_batch, active * self.settings.max_per_source)

    def _take_round_robin(self) -> list[tuple[_Job, int]]:
        """Items as (frame, tile index); a frame leaves its queue when its last item is taken."""
        batch: list[tuple[_Job, int]] = []
        taken: dict[str, int] = {}
        order = [source for source, _ in self.queues.busy()]
        progress = True
        while len(batch) < self.settings.max_batch and progress:
            progress = False
            for source in order:
                queue = self.queues.get(source)
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
        if order:
            self.queues.served_first(order[0])
        for source in taken:
            self.queues.wake(source)
        self.queues.forget_idle()
        self._lock.notify_all()
        return batch

    def _execute(self, batch: list[tuple[_Job, int]]) -> None:
        # A caller that went away (a gateway dropping its stream) cancels its future; skip its frame, and mark
        # the rest running so that a late cancel cannot make set_result fail and kill this worker. A frame
        # dropped (LIVE) after some of its tiles were taken is done already: its remaining tiles are skipped.
        with self._results_lock:  # two workers may hold items of one tiled frame
            batch = [(job, i) for job, i in batch if _claim(job.future)]
        if not batch:
            return
        started = time.perf_counter()
        try:
            results, timings = self.engine.infer(
                [job.tiles[i].crop(job.frame.model_image, job.frame.scale) for job, i in batch]
            )
        except Exception as exc:  # a failing batch must fail its frames, not the worker
            for job, _ in batch:
                _fail(job.future, exc)
            return
        if self._on_batch is not None:  # before any frame is answered, so a caller's next look sees this batch
            self._on_batch(BatchRecord(len(batch), len({j.frame.source_id for j, _ in batch}), timings))
        unscaled = [
            job.tiles[i].unscale(det, job.frame.scale, job.frame.height, job.frame.width)
            for (job, i), det in zip(batch, results, strict=True)
        ]
        with self._results_lock:
            self._gather(batch, unscaled, timings, started)

    def _gather(
        self, batch: list[tuple[_Job, int]], results: list[Detections], timings: BatchTimings, started: float
    ) -> None:
        """Store a batch's results in their frames and answer each frame whose last item this was."""
        for (job, i), detections in zip(batch, results, strict=True):
            job.results[i] = detections
        # Each frame once per batch: it took part in this batch's time, however many of its tiles ran in it.
        for job in {id(job): job for job, _ in batch}.values():
            job.timings = timings if job.started is None else job.timings + timings
            job.started_at = started if job.started_at is None else job.started_at
            if len(job.results) == len(job.tiles) and not job.future.done():
                merged = merge_tiles(
                    [(tile, job.results[k]) for k, tile in enumerate(job.tiles)],
                    job.frame.height,
                    job.frame.width,
                    self.tiling.settings.match_ios,
                )
                with contextlib.suppress(InvalidStateError):  # dropped (LIVE) or cancelled meanwhile
                    job.future.set_result(
                        Inference(merged, (job.started_at - job.enqueued) * 1e3, job.timings, len(batch))
                    )


def _claim(future: Future[Inference]) -> bool:
    """True if the frame still wants results: marks it running on its first item (under the core's results lock)."""
    if future.running():
        return True
    if future.done():
        return False
    return future.set_running_or_notify_cancel()


def _fail(future: Future[Inference], exc: Exception) -> None:
    """Fail a queued frame's future unless its caller has cancelled it meanwhile."""
    with contextlib.suppress(InvalidStateError):
        future.set_exception(exc)
