"""The after-model stage finishes even when its frame's caller goes away: the rules' state and the event log
must not part (an OPENED lost between them would leave a later CLEARED without its opening)."""

from __future__ import annotations

import asyncio

import pytest

from detector.pipeline.pipeline import _uncancelled


def test_a_cancelled_caller_still_lets_the_stage_write_what_it_started():
    written: list[str] = []

    async def stage(started: asyncio.Event, release: asyncio.Event) -> str:
        started.set()  # the rules have changed their state ...
        await release.wait()  # ... and the event log is being written (evidence, append) when the caller leaves
        written.append("OPENED")
        return "done"

    async def go() -> None:
        started, release = asyncio.Event(), asyncio.Event()
        caller = asyncio.create_task(_uncancelled(stage(started, release)))
        await started.wait()
        caller.cancel()  # the gateway dropped its stream
        await asyncio.sleep(0)
        caller.cancel()  # and again: a second cancel does not cut the stage either
        await asyncio.sleep(0)
        assert not caller.done(), "the caller waits for the stage instead of leaving it half done"
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await caller  # the cancel still reaches the caller, after the stage
        assert written == ["OPENED"]

    asyncio.run(go())


def test_without_a_cancel_the_stage_result_and_errors_pass_through():
    async def ok() -> int:
        return 7

    async def failing() -> int:
        raise ValueError("store went away")

    assert asyncio.run(_uncancelled(ok())) == 7
    with pytest.raises(ValueError, match="store went away"):
        asyncio.run(_uncancelled(failing()))
