"""Wake-ups for live followers of the event log.

The store is the source of truth: a follower is only told "the log now reaches sequence N" and then reads the
events from the store itself. Nothing is buffered per follower, so a slow follower costs no memory and never
holds up the writer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

AppendCallback = Callable[[int], None]


class AppendNotifier:
    """Tracks the last committed sequence and wakes whoever waits for a later one.

    Example (from an asyncio servicer, without holding a thread per subscriber)::

        while not await notifier.wait_for_async(after, timeout_s=5.0):
            ...  # heartbeat, check for cancellation
    """

    def __init__(self, last_sequence: int) -> None:
        self._cond = threading.Condition()
        self._last_sequence = last_sequence
        self._closed = False
        self._callbacks: dict[int, AppendCallback] = {}
        self._next_token = 0

    @property
    def last_sequence(self) -> int:
        with self._cond:
            return self._last_sequence

    def publish(self, last_sequence: int) -> None:
        """Called by the store after a commit; callbacks run here, on the writer's thread: keep them quick."""
        with self._cond:
            self._last_sequence = max(self._last_sequence, last_sequence)
            self._cond.notify_all()
            callbacks = list(self._callbacks.values())
        for callback in callbacks:
            try:
                callback(last_sequence)
            except Exception:
                # A follower that went away (closed event loop, ...) must not fail the append that woke it.
                log.exception("append callback failed; the event was stored")

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            callbacks = list(self._callbacks.values())
        for callback in callbacks:
            try:
                callback(self._last_sequence)
            except Exception:
                log.exception("append callback failed during close")

    def wait_for(self, after_sequence: int, timeout_s: float | None) -> bool:
        """Block until the log holds a sequence greater than ``after_sequence``; False on timeout or close."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._last_sequence > after_sequence, timeout_s)
            return not self._closed and self._last_sequence > after_sequence

    def subscribe(self, callback: AppendCallback) -> Callable[[], None]:
        """Call ``callback(last_sequence)`` after every commit; returns the function that unsubscribes."""
        with self._cond:
            token = self._next_token
            self._next_token += 1
            self._callbacks[token] = callback

        def unsubscribe() -> None:
            with self._cond:
                self._callbacks.pop(token, None)

        return unsubscribe

    async def wait_for_async(self, after_sequence: int, timeout_s: float | None) -> bool:
        """``wait_for`` for coroutines: parks on an asyncio.Event instead of a worker thread."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        woken = asyncio.Event()

        def wake(_last_sequence: int) -> None:
            loop.call_soon_threadsafe(woken.set)

        unsubscribe = self.subscribe(wake)
        try:
            while True:
                # Clear before checking: a commit between the check and the wait must still wake us.
                woken.clear()
                with self._cond:
                    if self._closed:
                        return False
                    if self._last_sequence > after_sequence:
                        return True
                remaining_s = None if deadline is None else deadline - loop.time()
                if remaining_s is not None and remaining_s <= 0:
                    return False
                try:
                    await asyncio.wait_for(woken.wait(), remaining_s)
                except TimeoutError:
                    continue
        finally:
            unsubscribe()
