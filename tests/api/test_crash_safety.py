"""kill -9 of a real `detector serve` process while incident events are being produced, then a restart.

The service runs the colour-blob engine (the rules and the store are under test, not the model) through the
production Engine interface, with the real SQLite store in a data directory that outlives the process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc, ingest_pb2_grpc
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.client import make_frame
from detector.types import DeliveryMode
from tests.api.scripted import GREEN, RED, T0, scene, scripted_overrides, write_spec
from tests.api.test_serve_process import free_port

SECONDS = 400
STALL_BOX = (200, 150, 240, 190)  # in the no-vending zone; present 0-330 s: opens at 120 s, clears at 390 s
GARBAGE = [((10 + (i % 6) * 50, 15 + (i // 6) * 50), (20 * i, 20 * i + 12)) for i in range(12)]


def _frames() -> list[pb.Frame]:
    """One frame per second of capture time: a stall that stays, and twelve garbage piles that come and go."""
    frames = []
    for t in range(SECONDS):
        patches = [(RED, STALL_BOX)] if t < 330 else []
        for (x, y), (a, b) in GARBAGE:
            if a <= t < b:
                patches.append((GREEN, (x, y, x + 20, y + 20)))
        frames.append(make_frame("cam-1", t + 1, T0 + t, image=scene(patches), mode=DeliveryMode.LOSSLESS))
    return frames


class Server:
    def __init__(self, port: int, settings: list[str], log: Path) -> None:
        self.target = f"127.0.0.1:{port}"
        args = [a for s in settings for a in ("--set", s)]
        self._log = log.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "detector.cli", "serve", "--port", str(port), *args],
            stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._wait_serving(90)

    def _wait_serving(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(self.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, "detector serve exited during start-up"
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                        return
                except grpc.RpcError:
                    pass
                time.sleep(0.05)
        raise AssertionError("detector serve never became SERVING")

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


class Subscriber(threading.Thread):
    """A case system: follows consumer 'case' from its committed offset and acks every event it has filed."""

    def __init__(self, target: str) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.events: list[ipb.IncidentEvent] = []
        self.acked = 0
        self.stall_opened = threading.Event()
        self.stall_cleared = threading.Event()
        self.ended: grpc.StatusCode | None = None

    def run(self) -> None:
        with grpc.insecure_channel(self.target) as channel:
            stub = incidents_pb2_grpc.IncidentsStub(channel)
            try:
                for event in stub.Subscribe(ipb.SubscribeRequest(consumer="case")):
                    self.events.append(event)
                    stub.Ack(ipb.AckRequest(consumer="case", sequence=event.sequence))
                    self.acked = event.sequence
                    if event.type == ipb.OPENED and event.category == "ROAD_OCCUPYING_STALL":
                        self.stall_opened.set()
                    if event.type == ipb.CLEARED and event.category == "ROAD_OCCUPYING_STALL":
                        self.stall_cleared.set()  # the last incident to clear (at 390 s)
            except grpc.RpcError as exc:
                self.ended = exc.code()


def _stream(target: str, frames: list[pb.Frame], answered: list[int]) -> grpc.StatusCode:
    """Send frames paced like a gateway; record each answered seq. Returns how the stream ended."""

    def paced() -> Iterator[pb.Frame]:
        for frame in frames:
            time.sleep(0.01)
            yield frame

    with grpc.insecure_channel(target) as channel:
        try:
            for result in ingest_pb2_grpc.IngestStub(channel).StreamFrames(paced()):
                assert not result.HasField("error"), result.error
                answered.append(result.seq)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


@pytest.fixture
def settings(tmp_path: Path) -> list[str]:
    spec = write_spec(tmp_path / "blobs.yaml")
    return [*scripted_overrides(spec, tmp_path / "data"), "server.grace_s=5"]


def test_kill_9_while_events_flow_then_restart_loses_nothing_and_reopens_nothing(settings, tmp_path):
    frames = _frames()
    port = free_port()
    log = tmp_path / "serve.log"
    first = Server(port, settings, log)
    try:
        before = Subscriber(first.target)
        before.start()
        answered: list[int] = []
        streamer = threading.Thread(target=lambda: _stream(first.target, frames, answered), daemon=True)
        streamer.start()
        assert before.stall_opened.wait(120), "the stall never opened before the kill"
        first.kill9()
        streamer.join(30)
        before.join(30)
    finally:
        first.close()
    assert before.ended == grpc.StatusCode.UNAVAILABLE
    assert len(answered) < len(frames), "the kill must land mid-stream"
    acked_before_kill = before.acked

    second = Server(port, settings, log)
    try:
        after = Subscriber(second.target)
        after.start()
        # The gateway resends every frame it had no answer for, as it would after any disconnect.
        resumed_answers: list[int] = []
        ended = _stream(second.target, frames[len(answered) :], resumed_answers)
        assert ended == grpc.StatusCode.OK
        assert resumed_answers == [f.seq for f in frames[len(answered) :]]
        assert after.stall_cleared.wait(60), f"the stall never cleared: {[e.type for e in after.events]}"
        with grpc.insecure_channel(second.target) as channel:
            audit_call = incidents_pb2_grpc.IncidentsStub(channel).Subscribe(
                ipb.SubscribeRequest(consumer="audit", after_sequence=0), timeout=3
            )
            log_events = []
            try:
                for event in audit_call:
                    log_events.append(event)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        second.close()

    sequences = [e.sequence for e in log_events]
    assert sequences == list(range(1, len(sequences) + 1)), "the event log is gap-free and strictly increasing"
    by_sequence = {e.sequence: e.event_id for e in log_events}
    # Everything the case system saw before the kill is still in the log, unchanged.
    assert all(by_sequence[e.sequence] == e.event_id for e in before.events)
    # Resuming from the committed offset continues exactly after it: nothing missed, nothing repeated.
    assert after.events[0].sequence == acked_before_kill + 1
    received = [e.sequence for e in before.events if e.sequence <= acked_before_kill]
    received += [e.sequence for e in after.events]
    assert received == sequences

    per_incident: dict[str, list[int]] = defaultdict(list)
    for event in log_events:
        per_incident[event.incident_id].append(event.type)
    assert len(per_incident) == 1 + len(GARBAGE), "one case per stall or pile, none duplicated by the restart"
    for incident_id, types in per_incident.items():
        assert types.count(ipb.OPENED) == 1 and types.count(ipb.CLEARED) == 1 and types[-1] == ipb.CLEARED, (
            incident_id,
            types,
        )
    stall = next(e.incident_id for e in log_events if e.category == "ROAD_OCCUPYING_STALL")
    stall_sequences = [e.sequence for e in log_events if e.incident_id == stall]
    assert min(stall_sequences) <= acked_before_kill < max(stall_sequences), (
        "the stall was open across the kill and continued as the same incident"
    )
