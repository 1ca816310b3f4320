"""A subscriber that stops reading, and a gateway that drops its stream mid-way, against a real `detector serve`.

- A case system stops reading its Subscribe stream for a while (15 s here; minutes in the field work the same,
  since a follower holds at most one batch and reads the log from the store) while gateways keep streaming and
  events keep being appended: every frame is answered, and the subscriber then resumes on the same call
  with every event, gap-free.
- A gateway disconnects mid-stream with frames in flight and reconnects, resending what it had no answer for:
  every frame ends up answered, and each pile of garbage is one incident, opened once.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc, ingest_pb2_grpc
from tests.api.scripted import scripted_overrides, write_spec
from tests.api.test_crash_safety import Server
from tests.api.test_serve_process import free_port
from tests.hardening.faults import assert_sound_log, audit, channel, paced, pile_frames, stream

PAUSE_S = 15.0
SOURCES = [f"cam-{i}" for i in range(1, 7)]
SECONDS = 130  # piles 0-8 of every source open; most clear


@pytest.fixture
def server(tmp_path: Path):
    spec = write_spec(tmp_path / "blobs.yaml")
    server = Server(free_port(), scripted_overrides(spec, tmp_path / "data"), tmp_path / "serve.log")
    yield server
    server.close()


class PausingSubscriber(threading.Thread):
    """Reads one event, stops reading for PAUSE_S, then reads on (same call) until it reaches ``until``."""

    def __init__(self, target: str) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.events: list[ipb.IncidentEvent] = []
        self.paused = threading.Event()
        self.until: int | None = None
        self.done = threading.Event()

    def run(self) -> None:
        with channel(self.target) as ch:
            call = incidents_pb2_grpc.IncidentsStub(ch).Subscribe(
                ipb.SubscribeRequest(consumer="slow", after_sequence=0)
            )
            for event in call:
                self.events.append(event)
                if len(self.events) == 1:
                    self.paused.set()
                    time.sleep(PAUSE_S)  # stops reading: the server's writes back up into flow control
                if self.until is not None and event.sequence >= self.until:
                    break
            call.cancel()
        self.done.set()


def test_a_subscriber_that_stops_reading_holds_up_no_frame_and_resumes_without_gaps(server):
    opener = pile_frames("cam-0", 0, 5)  # opens the first incident, so the subscriber has one event to read
    assert not any(a.HasField("error") for a in stream(server.target, opener))
    slow = PausingSubscriber(server.target)
    slow.start()
    assert slow.paused.wait(30), "the subscriber never got its first event"

    frames = {source: pile_frames(source, 0, SECONDS) for source in SOURCES}
    with ThreadPoolExecutor(len(SOURCES)) as pool:
        answers = dict(zip(SOURCES, pool.map(lambda s: stream(server.target, frames[s]), SOURCES), strict=True))
    for source in SOURCES:
        assert [a.seq for a in answers[source]] == [f.seq for f in frames[source]], "every frame is answered"
        assert not any(a.HasField("error") for a in answers[source])
    events = audit(server.target)
    assert len(events) > 80, "many events were appended while the subscriber was not reading"
    slow.until = events[-1].sequence
    assert slow.done.wait(PAUSE_S + 60), f"the subscriber did not catch up: {len(slow.events)} of {len(events)}"
    assert [e.event_id for e in slow.events] == [e.event_id for e in events], "resumed without a gap or a repeat"
    assert_sound_log(events)


def test_a_gateway_that_disconnects_mid_stream_and_resends_loses_no_frame_and_no_incident(server):
    frames = pile_frames("cam-r", 0, SECONDS)
    answered: list[int] = []
    with channel(server.target) as ch:
        call = ingest_pb2_grpc.IngestStub(ch).StreamFrames(paced(frames))
        for result in call:
            assert not result.HasField("error")
            answered.append(result.seq)
            if len(answered) == 50:
                call.cancel()  # the uplink drops with frames sent and in flight
                break
    assert answered == [f.seq for f in frames[:50]]
    # The gateway reconnects and resends every frame it had no answer for.
    resent = stream(server.target, frames[50:])
    assert [a.seq for a in resent] == [f.seq for f in frames[50:]]
    assert not any(a.HasField("error") for a in resent), [a.error for a in resent if a.HasField("error")]
    events = audit(server.target)
    assert_sound_log(events)
    opened = [e for e in events if e.type == ipb.OPENED]
    assert len(opened) == 9, "piles 0-8 each opened one incident: none lost, none doubled by the resend"
