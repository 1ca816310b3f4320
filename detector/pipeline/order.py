"""Order: per-source turns for the stages after the model, and in-order answers for a stream.

Frames of one source may be decoded and inferred concurrently (so that they can share batches), but tracking,
geo, rules, evidence and the event log must see them in capture order. :class:`SourceTurns` hands each frame a
ticket when it enters the pipeline and lets it through the later stages only when every earlier frame of its
source has passed or left (an error, a drop, a cancelled caller).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Turns:
    issued: int = 0
    next_turn: int = 0
    finished: set[int] = field(default_factory=set)
    waiting: dict[int, asyncio.Future[None]] = field(default_factory=dict)


class SourceTurns:
    def __init__(self) -> None:
        self._sources: dict[str, _Turns] = {}

    def ticket(self, source_id: str) -> int:
        turns = self._sources.setdefault(source_id, _Turns())
        turns.issued += 1
        return turns.issued - 1

    async def wait(self, source_id: str, ticket: int) -> None:
        """Return when every earlier ticket of the source is done."""
        turns = self._sources[source_id]
        if turns.next_turn == ticket:
            return
        waiter = turns.waiting.setdefault(ticket, asyncio.get_running_loop().create_future())
        await waiter

    def done(self, source_id: str, ticket: int) -> None:
        """The ticket's frame has passed (or left); later ones may go. Safe to call from ``finally``."""
        turns = self._sources[source_id]
        turns.finished.add(ticket)
        turns.waiting.pop(ticket, None)
        while turns.next_turn in turns.finished:
            turns.finished.remove(turns.next_turn)
            turns.next_turn += 1
        waiter = turns.waiting.pop(turns.next_turn, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if turns.next_turn == turns.issued:
            del self._sources[source_id]  # idle: the table holds only sources with frames in flight

    def in_flight(self, source_id: str) -> int:
        turns = self._sources.get(source_id)
        return 0 if turns is None else turns.issued - turns.next_turn


async def in_order(
    items: AsyncIterator[T], process: Callable[[T], Awaitable[R]], max_inflight: int
) -> AsyncIterator[R]:
    """Process up to ``max_inflight`` items at once and yield their results in the order the items came.

    An exception from ``items`` (a broken request stream) surfaces after the results before it.
    """
    pending: asyncio.Queue[asyncio.Task[R] | None] = asyncio.Queue()
    slots = asyncio.Semaphore(max_inflight)

    async def read() -> None:
        try:
            async for item in items:
                await slots.acquire()
                await pending.put(asyncio.create_task(_awaited(process(item))))
        finally:
            await pending.put(None)

    reader = asyncio.create_task(read())
    try:
        while (task := await pending.get()) is not None:
            try:
                result = await task
            finally:
                slots.release()
            yield result
        await reader
    finally:
        reader.cancel()
        while not pending.empty():
            left = pending.get_nowait()
            if left is not None:
                left.cancel()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
