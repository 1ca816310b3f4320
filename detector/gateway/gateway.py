"""The gateway's event loop: camera events in, one StreamFrames call out, every frame accounted for.

One call per gateway, all cameras multiplexed on it (the service keeps each source's order on a stream): a
gateway with dozens of cameras stays within the service's streams-per-client limit, and a service restart is one
reconnect, not one per camera. Frames wait in an outbox (at most ``queue_frames`` per camera, the oldest dropped
first: LIVE) and at most ``max_in_flight`` are sent and unanswered at a time.

When the call fails (the service restarts, the network drops, no answer for ``answer_timeout_s``), the frames
sent and not answered are put back at the head of the outbox, in order, when they are younger than
``max_age_s``, and resent on the next call with their seq (a new call starts the service's seq check afresh);
older ones are counted as ``dropped_unanswered``. The link is redone with backoff and jitter. A frame that
carried a camera gap and is given up passes the gap to the camera's next frame, so the service still sees it.

Replicas (``target`` lists several): a call refused because another replica owns a source (FAILED_PRECONDITION
naming it) is redone at that owner; any other failure moves on to the next target. A new call sends one frame
and waits for its answer before the rest, so that a refusal at the first frame is not hidden by a write racing
it. All of a gateway's cameras are expected on one replica (the first one reached takes them all).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from detector.api.client import NO_CREDENTIALS, ChannelSecurity, OutgoingFrame
from detector.api.gateway_link import FrameStream, LinkError, ServiceLink
from detector.gateway.backoff import Backoff
from detector.gateway.camera import (
    CameraEvent,
    CameraReader,
    Captured,
    Connected,
    Finished,
    Lost,
    Resumed,
    Skipped,
    redact_url,
)
from detector.gateway.config import GatewayConfig
from detector.gateway.metrics import GatewayMetrics
from detector.gateway.summary import GatewaySummary, Tally

log = logging.getLogger("detector.gateway")

_WATCHDOG_S = 0.5  # how often a call with frames in flight checks answer_timeout_s


@dataclass
class _Entry:
    frame: OutgoingFrame
    read_at: float  # monotonic seconds when the camera delivered it
    sends: int = 0
    sent_at: float = 0.0

    @property
    def key(self) -> tuple[str, int]:
        return self.frame.source_id, self.frame.seq


class Gateway:
    """Pull ``config.cameras`` and stream them to ``config.target`` until ``run``'s ``stop`` is set (or every
    camera has finished, or the service refuses the gateway for good); ``summary()`` is readable at any time."""

    def __init__(
        self,
        config: GatewayConfig,
        security: ChannelSecurity = NO_CREDENTIALS,
        metrics: GatewayMetrics | None = None,
        link_factory: Callable[[], ServiceLink] | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or GatewayMetrics()
        self.target = config.targets[0]  # where the next call goes
        self._targets_tried = 0  # index in config.targets of the last target moved on to
        self._link_factory = link_factory or (lambda: ServiceLink(self.target, security))
        self._tally = Tally({c.id: redact_url(c.url) for c in config.cameras}, self.metrics)
        self._outbox: deque[_Entry] = deque()
        self._queued: dict[str, int] = {c.id: 0 for c in config.cameras}
        self._in_flight: dict[tuple[str, int], _Entry] = {}
        self._seq: dict[str, int] = {c.id: 0 for c in config.cameras}
        self._carry_gap: dict[str, float] = {c.id: 0.0 for c in config.cameras}
        self._finished: set[str] = set()
        self._changed = asyncio.Event()
        self._all_finished = asyncio.Event()
        self._closing = False
        self._calls = 0
        self._reconnects = 0
        self._failures: dict[str, int] = {}
        self._error: str | None = None
        self._call_answers = 0  # answers on the current call
        self._began = time.monotonic()
        self._ended: float | None = None

    def summary(self) -> GatewaySummary:
        """The counts so far (final once ``run`` has returned)."""
        end = time.monotonic() if self._ended is None else self._ended
        return GatewaySummary(
            target=self.config.target,
            cameras=[replace(c, answered_errors=dict(c.answered_errors)) for c in self._tally.cameras.values()],
            service_calls=self._calls,
            service_reconnects=self._reconnects,
            service_failures=dict(self._failures),
            wall_s=end - self._began,
            error=self._error,
        )

    async def run(self, stop: asyncio.Event) -> GatewaySummary:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[CameraEvent | None] = asyncio.Queue()

        def post(event: CameraEvent) -> None:  # from the camera threads
            with contextlib.suppress(RuntimeError):  # a closed loop: the gateway is gone
                loop.call_soon_threadsafe(events.put_nowait, event)

        self._began = time.monotonic()
        readers = [CameraReader(camera, self.config, post) for camera in self.config.cameras]
        for reader in readers:
            log.info("camera starting", extra={"camera": reader.camera.id, "url": redact_url(reader.camera.url)})
            reader.start()
        pump = asyncio.create_task(self._pump(events))
        link = asyncio.create_task(self._serve_link())
        stopped = asyncio.create_task(stop.wait())
        finished = asyncio.create_task(self._all_finished.wait())
        try:
            await asyncio.wait({stopped, finished, link}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            finished.cancel()
            for reader in readers:
                reader.stop()
            timeout_s = self.config.open_timeout_s + self.config.read_timeout_s + 1
            for reader in readers:
                if not await asyncio.to_thread(reader.join, timeout_s):
                    log.warning("camera thread did not stop", extra={"camera": reader.camera.id})
            loop.call_soon(events.put_nowait, None)  # after every event the threads posted
            await pump
            await self._drain(link)
            self._ended = time.monotonic()
        summary = self.summary()
        log.info("gateway stopped", extra={"balanced": summary.balanced(), "error": summary.error})
        return summary

    # -- camera side -------------------------------------------------------------------------------------------

    async def _pump(self, events: asyncio.Queue[CameraEvent | None]) -> None:
        while (event := await events.get()) is not None:
            self._on_camera(event)

    def _on_camera(self, event: CameraEvent) -> None:
        tally, cam = self._tally, event.camera_id
        if isinstance(event, Captured):
            tally.read(cam, event.capture_ts)
            self._seq[cam] += 1
            gap = event.gap_before_s + self._carry_gap[cam]
            self._carry_gap[cam] = 0.0
            frame = OutgoingFrame(cam, self._seq[cam], event.capture_ts, jpeg=event.jpeg, gap_before_s=gap)
            self._enqueue(_Entry(frame, time.monotonic()))
        elif isinstance(event, Skipped):
            tally.read(cam, event.capture_ts)
            tally.fps_capped(cam)
        elif isinstance(event, Connected):
            tally.camera_state(cam, "up")
            log.info("camera connected", extra={"camera": cam, "attempt": event.attempt})
        elif isinstance(event, Lost):
            tally.camera_state(cam, "down", event.reason)
            if event.was_up:
                tally.camera_dropped(cam)
                log.warning(
                    "camera dropped; reconnecting",
                    extra={"camera": cam, "reason": event.reason, "retry_in_s": round(event.retry_in_s, 3)},
                )
            else:
                log.info(
                    "camera unreachable",
                    extra={"camera": cam, "reason": event.reason, "retry_in_s": round(event.retry_in_s, 3)},
                )
        elif isinstance(event, Resumed):
            tally.camera_resumed(cam, event.gap_s)
            log.warning("camera back after a gap", extra={"camera": cam, "gap_s": round(event.gap_s, 3)})
        elif isinstance(event, Finished):
            tally.camera_state(cam, "finished", "" if event.reason in ("stopped", "end of file") else event.reason)
            log.info("camera finished", extra={"camera": cam, "reason": event.reason})
            self._finished.add(cam)
            if len(self._finished) == len(self.config.cameras):
                self._all_finished.set()

    def _enqueue(self, entry: _Entry) -> None:
        cam = entry.frame.source_id
        if self._queued[cam] >= self.config.queue_frames:
            oldest = next(e for e in self._outbox if e.frame.source_id == cam)
            self._remove_queued(oldest)
            self._give_up(oldest, [entry])
        self._outbox.append(entry)
        self._queued[cam] += 1
        self._touched()

    def _remove_queued(self, entry: _Entry) -> None:
        self._outbox.remove(entry)
        self._queued[entry.frame.source_id] -= 1

    def _give_up(self, entry: _Entry, later: list[_Entry] | None = None) -> None:
        """Count a frame dropped before the service answered it; pass its camera gap on to the camera's next
        frame still to be sent (in ``later``, then the outbox), or to the next one it reads."""
        self._tally.dropped(entry.frame.source_id, entry.sends > 0)
        gap = entry.frame.gap_before_s
        if gap <= 0:
            return
        cam = entry.frame.source_id
        for queue in (self._outbox, later or []):
            for e in queue:
                if e.frame.source_id == cam and e.frame.seq > entry.frame.seq and e.sends == 0:
                    e.frame = replace(e.frame, gap_before_s=e.frame.gap_before_s + gap)
                    return
        self._carry_gap[cam] += gap

    def _touched(self) -> None:
        self.metrics.queued.set(len(self._outbox))
        self.metrics.in_flight.set(len(self._in_flight))
        self._changed.set()

    async def _until(self, predicate: Callable[[], bool], timeout_s: float | None = None) -> bool:
        """Wait until ``predicate()`` holds (re-checked whenever the outbox or in-flight set changes)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not predicate():
            self._changed.clear()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return predicate()
        return True

    # -- service side ------------------------------------------------------------------------------------------

    def _nothing_left(self) -> bool:
        return self._closing and not self._outbox and not self._in_flight

    async def _serve_link(self) -> None:
        backoff = Backoff(self.config.service_reconnect)
        while not self._nothing_left():
            try:
                link = self._link_factory()
            except ValueError as exc:  # e.g. a token to a plain-text, non-loopback address
                self._error = str(exc)
                log.error("cannot open the service link", extra={"error": str(exc)})
                return
            self._calls += 1
            try:
                await self._one_call(link.open_stream())
                return  # ended cleanly: closing, everything answered
            except LinkError as exc:
                self._failures[exc.code] = self._failures.get(exc.code, 0) + 1
                if exc.fatal:
                    self._error = f"the service refused the gateway: {exc}"
                    log.error("service refused the gateway", extra={"code": exc.code, "details": exc.details})
                    self._resettle(resend=False)
                    return
                if self._call_answers:
                    backoff.reset()
                self._move_on(exc)
                self._resettle(resend=True)
                delay = backoff.next_delay()
                self._reconnects += 1
                self.metrics.service_reconnects.labels(exc.code).inc()
                log.warning(
                    "service call failed; reconnecting",
                    extra={"code": exc.code, "details": exc.details, "retry_in_s": round(delay, 3)},
                )
            finally:
                self.metrics.service_up.set(0)
                await link.close()
            await self._until(self._nothing_left, delay)

    async def _one_call(self, stream: FrameStream) -> None:
        """Send and receive on one call until it fails (``LinkError``) or, once closing, everything was
        answered."""
        self._call_answers = 0
        writer = asyncio.create_task(self._write(stream))
        reader = asyncio.create_task(self._read(stream))
        pending = {writer, reader}
        try:
            while reader in pending:
                done, pending = await asyncio.wait(pending, timeout=_WATCHDOG_S, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # a LinkError ends the call
                oldest = min((e.sent_at for e in self._in_flight.values()), default=None)
                if oldest is not None and time.monotonic() - oldest > self.config.answer_timeout_s:
                    raise LinkError("DEADLINE_EXCEEDED", f"no answer for {self.config.answer_timeout_s:g} s")
        finally:
            stream.cancel()
            for task in (writer, reader):
                task.cancel()
            await asyncio.gather(writer, reader, return_exceptions=True)

    async def _write(self, stream: FrameStream) -> None:
        limit = self.config.max_in_flight
        while True:
            await self._until(
                lambda: (
                    (bool(self._outbox) and len(self._in_flight) < (limit if self._call_answers else 1))
                    or (self._closing and not self._outbox)
                )
            )
            if not self._outbox:  # closing, and every frame was sent: the service ends the call once it answered
                await stream.finish()
                return
            entry = self._outbox.popleft()
            self._queued[entry.frame.source_id] -= 1
            now = time.monotonic()
            if now - entry.read_at > self.config.max_age_s:
                self._give_up(entry)
                self._touched()
                continue
            self._tally.sent(entry.frame.source_id, first=entry.sends == 0)
            entry.sends += 1
            entry.sent_at = now
            self._in_flight[entry.key] = entry
            self._touched()
            await stream.send(entry.frame)

    async def _read(self, stream: FrameStream) -> None:
        while (answer := await stream.receive()) is not None:
            entry = self._in_flight.pop((answer.source_id, answer.seq), None)
            if entry is None:
                log.warning("an answer to no frame in flight", extra={"camera": answer.source_id, "seq": answer.seq})
                continue
            if self._call_answers == 0:
                self.metrics.service_up.set(1)
                log.info("service answering", extra={"target": self.target, "call": self._calls})
            self._call_answers += 1
            code = None if answer.error is None else answer.error.value
            self._tally.answered(answer.source_id, code, len(answer.labels))
            self._touched()
        if not self._nothing_left():
            raise LinkError("OK", "the service ended the call with frames still to send")

    def _move_on(self, exc: LinkError) -> None:
        """Where the next call goes: the owner a refusal named, or the next of several targets."""
        targets = self.config.targets
        if exc.owner is not None:
            log.warning(
                "redirected to the source's owner", extra={"target": self.target, "owner": exc.owner, "code": exc.code}
            )
            self.target = exc.owner
        elif len(targets) > 1:
            self._targets_tried = (self._targets_tried + 1) % len(targets)
            if targets[self._targets_tried] == self.target:
                self._targets_tried = (self._targets_tried + 1) % len(targets)
            log.warning(
                "replica unavailable; failing over",
                extra={"target": self.target, "next_target": targets[self._targets_tried], "code": exc.code},
            )
            self.target = targets[self._targets_tried]

    def _resettle(self, resend: bool) -> None:
        """After a failed call: frames in flight go back to the head of the outbox (in the order sent) when young
        enough to resend, else they are given up."""
        now = time.monotonic()
        entries = list(self._in_flight.values())
        self._in_flight.clear()
        keep = [e for e in entries if resend and now - e.read_at <= self.config.max_age_s]
        for entry in reversed(keep):
            self._outbox.appendleft(entry)
            self._queued[entry.frame.source_id] += 1
        for entry in entries:
            if entry not in keep:
                self._give_up(entry)
        self._touched()

    async def _drain(self, link: asyncio.Task[None]) -> None:
        """Let the link send what is queued and collect the answers, for at most ``drain_s``; then count what is
        left."""
        self._closing = True
        self._touched()
        try:
            await asyncio.wait_for(asyncio.shield(link), self.config.drain_s)
        except TimeoutError:
            link.cancel()
            await asyncio.gather(link, return_exceptions=True)
        except Exception as exc:  # a bug in the link loop: still account for every frame
            log.exception("the service link failed")
            self._error = self._error or f"the service link failed: {exc}"
        for entry in [*self._in_flight.values(), *self._outbox]:
            self._tally.left_at_exit(entry.frame.source_id, entry.sends > 0)
        if self._in_flight or self._outbox:
            log.warning(
                "frames left at exit",
                extra={"in_flight": len(self._in_flight), "queued": len(self._outbox)},
            )
        self._in_flight.clear()
        self._outbox.clear()
        self._touched()
