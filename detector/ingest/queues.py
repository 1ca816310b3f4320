"""Per-source frame queues and the drop policy of each delivery mode.

Every source has its own bounded queue (``batching.queue_size``). A LIVE frame that finds it full pushes out the
oldest queued frame of that source that has not started (it completes as DROPPED, and the source's drop count
goes up); a LOSSLESS frame waits for room, and so holds back its sender (gRPC flow control).

The queues are shared between submitters on the event loop and the inference core's worker thread, which takes
batches from their heads under :attr:`SourceQueues.lock` (see :mod:`detector.inference.batcher`).
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from detector.types import DeliveryMode


class Queued(Protocol):
    """What a queue holds: a frame's job, which knows whether any of it has started and how to fail."""

    @property
    def started(self) -> bool: ...

    def drop(self, reason: str) -> None:
        """Complete the job as dropped (LIVE: a newer frame replaced it)."""


J = TypeVar("J", bound=Queued)


class QueuesClosed(Exception):
    """The queues take no new frames (the service is draining or stopped)."""


@dataclass
class SourceQueue(Generic[J]):
    jobs: deque[J] = field(default_factory=deque)
    dropped_total: int = 0
    space_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(default_factory=list)


class SourceQueues(Generic[J]):
    def __init__(self, queue_size: int, on_drop: Callable[[str], None] | None = None) -> None:
        self.queue_size = queue_size
        self.lock = threading.Condition()
        self.accepting = True
        self._on_drop = on_drop
        self._queues: OrderedDict[str, SourceQueue[J]] = OrderedDict()

    async def put(self, source_id: str, job: J, mode: DeliveryMode, describe: str = "frame") -> None:
        """Queue ``job``; LIVE drops the oldest unstarted job when full, LOSSLESS waits for room.

        Raises :class:`QueuesClosed` once the queues stop accepting.
        """
        loop = asyncio.get_running_loop()
        while True:
            with self.lock:
                if not self.accepting:
                    raise QueuesClosed("the inference core is draining")
                queue = self._queues.setdefault(source_id, SourceQueue())
                if len(queue.jobs) < self.queue_size:
                    queue.jobs.append(job)
                    self.lock.notify_all()
                    return
                if mode is DeliveryMode.LIVE:
                    # The oldest frame none of whose items has run yet; a frame already partly run (a tiled
                    # frame whose first tiles are in a batch) is dropped only when it is the only one queued.
                    oldest = next((j for j in queue.jobs if not j.started), queue.jobs[0])
                    queue.jobs.remove(oldest)
                    queue.dropped_total += 1
                    oldest.drop(f"{describe} replaced by a newer one")
                    if self._on_drop is not None:
                        self._on_drop(source_id)
                    queue.jobs.append(job)
                    self.lock.notify_all()
                    return
                waiter: asyncio.Future[None] = loop.create_future()
                queue.space_waiters.append((loop, waiter))
            await waiter

    def dropped_total(self, source_id: str) -> int:
        with self.lock:
            queue = self._queues.get(source_id)
            return 0 if queue is None else queue.dropped_total

    def depths(self) -> dict[str, int]:
        with self.lock:
            return {source: len(q.jobs) for source, q in self._queues.items()}

    # ---- the worker's side: call with ``lock`` held ------------------------------------------------------------

    def busy(self) -> Iterator[tuple[str, SourceQueue[J]]]:
        """Sources with queued jobs, in round-robin order."""
        return ((source, q) for source, q in self._queues.items() if q.jobs)

    def get(self, source_id: str) -> SourceQueue[J]:
        return self._queues[source_id]

    def served_first(self, source_id: str) -> None:
        """The source served first goes to the back, so the next batch starts with the one after it."""
        self._queues.move_to_end(source_id)

    def wake(self, source_id: str) -> None:
        """Room was made in this source's queue: wake its LOSSLESS senders."""
        queue = self._queues[source_id]
        waiters, queue.space_waiters = queue.space_waiters, []
        for loop, waiter in waiters:
            loop.call_soon_threadsafe(_resolve, waiter)

    def close(self) -> list[J]:
        """Stop accepting, wake every waiting sender (they get QueuesClosed) and return the jobs still queued."""
        self.accepting = False
        left: list[J] = []
        for source, queue in self._queues.items():
            self.wake(source)
            left.extend(queue.jobs)
        return left

    def clear(self) -> list[J]:
        """Empty every queue; returns what was in them."""
        left: list[J] = []
        for queue in self._queues.values():
            left.extend(queue.jobs)
            queue.jobs.clear()
        return left

    def forget_idle(self, keep: int = 1024) -> None:
        """Bound the table: beyond ``keep`` sources, forget idle ones that never dropped a frame."""
        if len(self._queues) <= keep:
            return
        for source in [s for s, q in self._queues.items() if not q.jobs and not q.space_waiters]:
            if self._queues[source].dropped_total == 0:
                del self._queues[source]


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
