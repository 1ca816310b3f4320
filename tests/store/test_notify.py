"""Wake-ups for followers: blocking, asyncio and callback flavours."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from detector.store.notify import AppendNotifier


def publish_later(notifier: AppendNotifier, sequence: int, delay_s: float = 0.05) -> threading.Timer:
    timer = threading.Timer(delay_s, notifier.publish, args=(sequence,))
    timer.start()
    return timer


@pytest.mark.parametrize(("after", "expected"), [(4, True), (5, False), (9, False)])
def test_wait_for_returns_at_once_when_already_past(after: int, expected: bool) -> None:
    assert AppendNotifier(5).wait_for(after, timeout_s=0.01) is expected


def test_wait_for_wakes_on_publish() -> None:
    notifier = AppendNotifier(0)
    publish_later(notifier, 1)
    started = time.monotonic()
    assert notifier.wait_for(0, timeout_s=5)
    assert time.monotonic() - started < 4


def test_close_wakes_waiters_with_false() -> None:
    notifier = AppendNotifier(0)
    threading.Timer(0.05, notifier.close).start()
    assert not notifier.wait_for(0, timeout_s=5)


def test_async_wait_wakes_on_publish_from_another_thread() -> None:
    notifier = AppendNotifier(3)

    async def scenario() -> tuple[bool, bool]:
        timed_out = await notifier.wait_for_async(3, timeout_s=0.05)
        publish_later(notifier, 4)
        woken = await notifier.wait_for_async(3, timeout_s=5)
        return timed_out, woken

    assert asyncio.run(scenario()) == (False, True)


def test_callbacks_run_after_publish_until_unsubscribed() -> None:
    notifier = AppendNotifier(0)
    seen: list[int] = []
    unsubscribe = notifier.subscribe(seen.append)
    notifier.publish(1)
    unsubscribe()
    notifier.publish(2)
    assert seen == [1]


def test_failing_callback_does_not_fail_the_publisher() -> None:
    notifier = AppendNotifier(0)

    def broken(_sequence: int) -> None:
        raise RuntimeError("event loop closed")

    notifier.subscribe(broken)
    notifier.publish(1)
    assert notifier.last_sequence == 1
