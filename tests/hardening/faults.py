"""Helpers for the fault tests: a scripted street with garbage piles that come and go, gateways, audits of the
event log, health and metrics of a real `detector serve` process (tests/api/test_crash_safety.py starts it)."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc, ingest_pb2_grpc
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.client import make_frame
from detector.types import DeliveryMode
from tests.api.scripted import GREEN, T0, scene

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
PILE_EVERY_S, PILE_STAYS_S = 15, 10


def pile_frames(source_id: str, first_s: int, last_s: int) -> list[pb.Frame]:
    """One frame per second of capture time in [first_s, last_s): pile k lies at its own place during
    [15k, 15k + 10) s, so a pile opens an incident every 15 s (the confirm rule wants 3 sightings in 5 s)."""
    frames = []
    for t in range(first_s, last_s):
        k, into = divmod(t, PILE_EVERY_S)
        x, y = 10 + (k % 6) * 50, 15 + (k // 6 % 4) * 50
        patches = [(GREEN, (x, y, x + 20, y + 20))] if into < PILE_STAYS_S else []
        frames.append(make_frame(source_id, t + 1, T0 + t, image=scene(patches), mode=DeliveryMode.LOSSLESS))
    return frames


def channel(target: str) -> grpc.Channel:
    """A channel with a connection of its own: channels to one target otherwise share it, and a call started
    just as another channel closes can find it torn down ("Socket closed")."""
    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def stream(target: str, frames: list[pb.Frame]) -> list[pb.FrameResult]:
    with channel(target) as ch:
        return list(ingest_pb2_grpc.IngestStub(ch).StreamFrames(paced(frames), timeout=300))


def paced(frames: list[pb.Frame]) -> Iterator[pb.Frame]:
    """A gateway sends at about camera rate (here 200 frames/s), not as fast as the socket takes them."""
    for frame in frames:
        time.sleep(0.005)
        yield frame


def audit(target: str) -> list[ipb.IncidentEvent]:
    """The whole event log, read from sequence 0 until it has nothing more for a few seconds."""
    events: list[ipb.IncidentEvent] = []
    with channel(target) as ch:
        call = incidents_pb2_grpc.IncidentsStub(ch).Subscribe(
            ipb.SubscribeRequest(consumer="audit", after_sequence=0), timeout=4
        )
        try:
            events.extend(call)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
    return events


def health(target: str, service: str) -> int:
    with channel(target) as ch:
        request = health_pb2.HealthCheckRequest(service=service)
        return int(health_pb2_grpc.HealthStub(ch).Check(request, timeout=5).status)


def wait_health(target: str, service: str, status: int, timeout_s: float) -> bool:
    """Poll until ``service`` reports ``status``; False if it never does within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if health(target, service) == status:
            return True
        time.sleep(0.2)
    return False


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} is not exported"
    return float(match.group(1))


def wait_log(log_path: str, needle: str, timeout_s: float) -> str:
    """The first log line containing ``needle``, waiting up to ``timeout_s`` for it to be written."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in _lines(log_path):
            if needle in line:
                return line
        time.sleep(0.2)
    raise AssertionError(f"the log never said {needle!r}")


def _lines(path: str) -> Iterator[str]:
    with open(path, encoding="utf-8", errors="replace") as file:
        yield from file


def assert_sound_log(events: list[ipb.IncidentEvent]) -> None:
    """Gap-free sequences; per incident one OPENED first and at most one CLEARED, last; per source, openings in
    capture order."""
    assert [e.sequence for e in events] == list(range(1, len(events) + 1)), "gap-free, increasing sequences"
    per_incident: dict[str, list[int]] = {}
    for event in events:
        per_incident.setdefault(event.incident_id, []).append(event.type)
    for incident_id, types in per_incident.items():
        assert types[0] == ipb.OPENED and types.count(ipb.OPENED) == 1, (incident_id, types)
        assert types.count(ipb.CLEARED) <= 1 and ipb.CLEARED not in types[:-1], (incident_id, types)
    # A CLEARED event carries the time its object was last seen, so only openings are ordered by capture time.
    opened_at: dict[str, float] = {}
    for event in events:
        if event.type == ipb.OPENED:
            seen = event.first_seen.ToSeconds()
            assert seen >= opened_at.get(event.source_id, 0), ("appended out of capture order", event)
            opened_at[event.source_id] = seen
