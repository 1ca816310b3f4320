"""Resend, give-up and refusal after a failed service call, with a scripted service link (a fake of
``detector.api.gateway_link.ServiceLink``) so that the failure comes exactly where the test wants it; the cameras
are real (a file)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from detector.api.client import FrameAnswer, OutgoingFrame
from detector.api.gateway_link import LinkError
from detector.gateway.config import GatewayConfig
from detector.gateway.gateway import Gateway
from detector.gateway.summary import GatewaySummary
from tests.conftest import run


class ScriptedStream:
    """Answers the first ``answer`` frames, then none; fails with ``failure`` once ``fail_when(stream)`` holds.
    With ``failure`` None it answers every frame and ends the call after ``finish``."""

    def __init__(self, answer: int, failure: LinkError | None, fail_when: Callable[[ScriptedStream], bool]) -> None:
        self.sent: list[OutgoingFrame] = []
        self.sent_at: list[float] = []
        self._answer = answer
        self._failure = failure
        self._fail_when = fail_when
        self._answered = 0
        self._finished = False
        self._changed = asyncio.Event()

    async def send(self, frame: OutgoingFrame) -> None:
        self.sent.append(frame)
        self.sent_at.append(time.monotonic())
        self._changed.set()

    async def receive(self) -> FrameAnswer | None:
        while True:
            if self._failure is not None and self._fail_when(self):
                raise self._failure
            if self._answered < min(len(self.sent), self._answer if self._failure is not None else len(self.sent)):
                frame = self.sent[self._answered]
                self._answered += 1
                return FrameAnswer(frame.source_id, frame.seq)
            if self._finished and self._failure is None:
                return None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 0.05)

    async def finish(self) -> None:
        self._finished = True
        self._changed.set()

    def cancel(self) -> None:
        pass


class ScriptedLink:
    def __init__(self, streams: list[ScriptedStream]) -> None:
        self.streams = streams
        self.opened: list[ScriptedStream] = []

    def open_stream(self) -> ScriptedStream:
        stream = self.streams[len(self.opened)] if len(self.opened) < len(self.streams) else _answer_all()
        self.opened.append(stream)
        return stream

    async def close(self) -> None:
        pass


def _answer_all() -> ScriptedStream:
    return ScriptedStream(0, None, lambda s: False)


def _run(clip: Path, link: ScriptedLink, **settings: object) -> GatewaySummary:
    config = GatewayConfig.model_validate(
        {
            "target": "scripted",
            "fps": 0,
            "cameras": [{"id": "cam-1", "url": str(clip)}],
            "service_reconnect": {"initial_s": 0.05, "max_s": 0.2},
            **settings,
        }
    )

    async def go() -> GatewaySummary:
        gateway = Gateway(config, link_factory=lambda: link)  # type: ignore[arg-type,return-value]
        return await asyncio.wait_for(gateway.run(asyncio.Event()), 60)

    return run(go())


def test_frames_unanswered_when_the_call_fails_are_resent_with_their_seq_on_the_next_call(short_clip: Path) -> None:
    first = ScriptedStream(3, LinkError("UNAVAILABLE", "connection reset"), lambda s: len(s.sent) >= 7)
    link = ScriptedLink([first])
    summary = _run(short_clip, link)
    cam = summary.cameras[0]
    second = link.opened[1]
    unanswered = [f.seq for f in first.sent[3:]]
    assert [f.seq for f in second.sent[: len(unanswered)]] == unanswered, "resent first, in their order"
    assert [f.seq for f in second.sent] == sorted({f.seq for f in second.sent}), "seqs increase on the new call"
    assert {f.seq for f in first.sent} | {f.seq for f in second.sent} == set(range(1, 21))
    assert (cam.frames_read, cam.frames_sent, cam.answered_ok, cam.resends) == (20, 20, 20, len(unanswered))
    assert cam.dropped_unanswered == 0 and summary.balanced()
    assert (summary.service_calls, summary.service_reconnects, summary.service_failures) == (2, 1, {"UNAVAILABLE": 1})


def test_frames_too_old_to_resend_are_counted_as_dropped_unanswered(short_clip: Path) -> None:
    def stale(s: ScriptedStream) -> bool:  # both frames in flight are older than max_age_s
        return len(s.sent) >= 5 and time.monotonic() - s.sent_at[3] > 0.4

    first = ScriptedStream(3, LinkError("UNAVAILABLE", "gone"), stale)
    link = ScriptedLink([first])
    summary = _run(short_clip, link, max_age_s=0.3, max_in_flight=2)
    cam = summary.cameras[0]
    given_up = {f.seq for f in first.sent[3:5]}
    assert cam.dropped_unanswered == 2 and cam.resends == 0
    assert not given_up & {f.seq for f in link.opened[1].sent}, "a stale frame is not resent"
    assert cam.frames_sent == cam.answered_ok + cam.dropped_unanswered
    assert summary.balanced(), summary.text()


def test_a_refusal_for_good_stops_the_gateway_with_every_frame_accounted_for(short_clip: Path) -> None:
    first = ScriptedStream(
        2, LinkError("PERMISSION_DENIED", "source not allowed", fatal=True), lambda s: len(s.sent) >= 4
    )
    summary = _run(short_clip, ScriptedLink([first]))
    cam = summary.cameras[0]
    assert summary.error is not None and "PERMISSION_DENIED" in summary.error
    assert summary.service_calls == 1 and cam.answered_ok == 2
    assert cam.frames_read < 20, "the cameras were stopped, not read to the end"
    assert summary.balanced(), summary.text()
