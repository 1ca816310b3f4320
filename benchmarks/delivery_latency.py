"""Delivery latency: an event appended to the store -> the same event at the peer, for each connector kind.

    .venv/bin/python benchmarks/delivery_latency.py [--events 300] [--rate 20] [--kinds webhook,mqtt,nats]

For each kind, a fresh SQLite store and the real DeliveryRunner with one connector; events are appended one at a
time at a steady ``--rate`` (the runner is caught up between them, as in normal operation), and the latency of
each is the time from ``store.append`` returning to the peer receiving it:

- webhook: an aiohttp receiver on loopback, in this process (time taken when the request body was read);
- mqtt: a subscriber on the event topic of the local Mosquitto (``--mqtt``, default 127.0.0.1:1883);
- nats: a core NATS subscriber on the event subject of the local nats-server with JetStream (``--nats``); the
  connector publishes to its stream and counts the event delivered on the stream's PubAck;
- open311: an aiohttp GeoReport v2 endpoint on loopback, in this process (time taken when the form of
  ``POST /requests.json`` was read; the event is known by ``attribute[incident_id]``); it answers a
  service_request_id, which the connector then stores on the incident as a FILED verdict.

Everything runs in one process on one clock (``time.perf_counter``). Writes ``delivery_latency.json`` and
``delivery_latency.md`` to ``<out>/<device>/<date>/`` (default benchmarks/results), with the machine, versions
and command line. The run's MQTT retained state topics and NATS stream are removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import aiomqtt
import nats
import numpy as np
from aiohttp import web
from tqdm import tqdm

from detector.bench.machine import MachineInfo, machine_info, results_dir
from detector.delivery.mqtt import state_topic
from detector.delivery.runner import DeliveryRunner
from detector.delivery.settings import DeliverySettings
from detector.store import SqliteStore
from detector.types import EventType, GeoPoint, IncidentEvent, LocationMethod, Severity

REPO = Path(__file__).resolve().parents[1]
SECRET = "benchmark-secret-0123456789"
KINDS = ("webhook", "mqtt", "nats", "open311")


@dataclass
class KindResult:
    kind: str
    events: int
    received: int
    duplicates: int
    latencies_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        values = np.array(self.latencies_ms)
        stats = {}
        if len(values):
            stats = {
                "p50_ms": round(float(np.percentile(values, 50)), 2),
                "p95_ms": round(float(np.percentile(values, 95)), 2),
                "max_ms": round(float(values.max()), 2),
            }
        return {
            "kind": self.kind,
            "events": self.events,
            "received": self.received,
            "duplicates": self.duplicates,
            **stats,
        }


class Arrivals:
    """When each event id first reached the peer (perf_counter), and how many came again."""

    def __init__(self, incident_ids: list[str]) -> None:
        self.incident_ids = incident_ids  # whose MQTT retained state is removed afterwards
        self.by_incident = False  # the peer knows events by incident id (Open311 files one request per incident)
        self.at: dict[str, float] = {}
        self.duplicates = 0
        self.changed = asyncio.Event()

    def record(self, event_id: str) -> None:
        now = time.perf_counter()
        if event_id in self.at:
            self.duplicates += 1
        else:
            self.at[event_id] = now
        self.changed.set()

    async def wait_for(self, count: int, timeout_s: float) -> None:
        async def until() -> None:
            while len(self.at) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), timeout_s)


Peer = Callable[[Arrivals, str], Awaitable[tuple[dict[str, Any], Callable[[], Awaitable[None]]]]]


async def webhook_peer(arrivals: Arrivals, run_id: str) -> tuple[dict[str, Any], Callable[[], Awaitable[None]]]:
    async def handle(request: web.Request) -> web.Response:
        arrivals.record(json.loads(await request.read())["event_id"])
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    connector = {"kind": "webhook", "url": f"http://127.0.0.1:{port}/hook", "secret": SECRET}
    return connector, runner.cleanup


async def open311_peer(arrivals: Arrivals, run_id: str) -> tuple[dict[str, Any], Callable[[], Awaitable[None]]]:
    arrivals.by_incident = True
    filed = iter(range(1, 1_000_000))

    async def handle(request: web.Request) -> web.Response:
        form = await request.post()
        arrivals.record(str(form["attribute[incident_id]"]))
        return web.json_response([{"service_request_id": f"SR-{run_id}-{next(filed)}"}])

    app = web.Application()
    app.router.add_post("/open311/v2/requests.json", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    connector = {
        "kind": "open311",
        "endpoint": f"http://127.0.0.1:{port}/open311/v2",
        "api_key": "bench",
        "service_codes": {"200501": "STALL"},
        "poll_interval_s": 0,
    }
    return connector, runner.cleanup


def mqtt_peer(host: str, port: int) -> Peer:
    async def start(arrivals: Arrivals, run_id: str) -> tuple[dict[str, Any], Callable[[], Awaitable[None]]]:
        prefix = f"bench-{run_id}"
        client = aiomqtt.Client(host, port, identifier=f"bench-sub-{run_id}")
        await client.__aenter__()
        await client.subscribe(f"{prefix}/events/#", qos=1)

        async def read() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                arrivals.record(json.loads(message.payload)["event_id"])

        reader = asyncio.create_task(read())

        async def stop() -> None:
            reader.cancel()
            for incident_id in arrivals.incident_ids:
                await client.publish(state_topic(prefix, incident_id), b"", qos=1, retain=True)
            await client.__aexit__(None, None, None)

        return {"kind": "mqtt", "host": host, "port": port, "topic_prefix": prefix}, stop

    return start


def nats_peer(url: str) -> Peer:
    async def start(arrivals: Arrivals, run_id: str) -> tuple[dict[str, Any], Callable[[], Awaitable[None]]]:
        prefix, stream = f"bench{run_id}", f"BENCH_{run_id}"
        nc = await nats.connect(url)

        async def on_message(message: Any) -> None:
            arrivals.record(json.loads(message.data)["event_id"])

        await nc.subscribe(f"{prefix}.events.>", cb=on_message)
        await nc.flush()

        async def stop() -> None:
            try:
                await nc.jetstream().delete_stream(stream)
            finally:
                await nc.close()

        return {"kind": "nats", "servers": [url], "subject_prefix": prefix, "stream": stream}, stop

    return start


def make_event(i: int, run_id: str) -> IncidentEvent:
    now = time.time()
    return IncidentEvent(
        event_id=str(uuid.uuid4()),
        incident_id=f"bench-{run_id}-{i}",
        type=EventType.OPENED,
        category="ROAD_OCCUPYING_STALL",
        case_code="200501",
        label="无照经营游商",
        severity=Severity.MEDIUM,
        confidence=0.87,
        source_id="cam-1",
        first_seen_ts=now - 120.0,
        last_seen_ts=now,
        box_xyxy=(10.0, 20.0, 110.0, 220.0),
        zone_id="zone-a",
        rule="dwell",
        location=GeoPoint(lat=39.9042, lon=116.4074, accuracy_m=3.5, method=LocationMethod.HOMOGRAPHY),
    )


async def measure(kind: str, peer: Peer, events: int, rate: float, progress: tqdm[Any]) -> KindResult:
    run_id = uuid.uuid4().hex[:10]
    arrivals = Arrivals([f"bench-{run_id}-{i}" for i in range(events)])
    connector, stop_peer = await peer(arrivals, run_id)
    delivery = DeliverySettings.model_validate({"connectors": [{"name": f"bench-{kind}", **connector}]})
    appended: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, SqliteStore(Path(tmp)) as store:

        def append(i: int) -> None:
            event = store.append([make_event(i, run_id)])[0]
            appended[event.incident_id if arrivals.by_incident else event.event_id] = time.perf_counter()

        runner = DeliveryRunner(store, delivery)
        await runner.start()
        try:
            start = time.perf_counter()
            for i in range(events):
                await asyncio.to_thread(append, i)
                progress.update()
                await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))  # the steady pace
            await arrivals.wait_for(events, 60.0)
        finally:
            await runner.stop()
            await stop_peer()
    latencies = [(arrivals.at[key] - t) * 1000.0 for key, t in appended.items() if key in arrivals.at]
    return KindResult(kind, events, len(arrivals.at), arrivals.duplicates, latencies)


def _tool_version(command: list[str]) -> str:
    """The version number a broker prints (the local broker this run used is the one on PATH)."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    found = re.search(r"\d+\.\d+\.\d+", done.stdout + done.stderr)
    return found.group(0) if found else "unknown"


def versions() -> dict[str, str]:
    found = {}
    for name in ("aiohttp", "aiomqtt", "paho-mqtt", "nats-py"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["mosquitto"] = _tool_version(["mosquitto", "-h"])
    found["nats-server"] = _tool_version(["nats-server", "--version"])
    return found


def markdown(info: MachineInfo, report: dict[str, Any]) -> str:
    title = f"Delivery latency: {info.device_slug('cpu')}, {report['date']}"
    lines = info.markdown_header(title, report["versions"], report["command"])
    lines += [
        f"- Load: {report['events']} events per kind, appended one at a time at {report['rate']} events/s through "
        "the SQLite store (synchronous=FULL) with the DeliveryRunner running; latency = the peer received it "
        "minus store.append returned, one process, one clock.",
        "- Peers: webhook = aiohttp receiver on loopback; mqtt = the local Mosquitto, a QoS 1 subscriber on the "
        "event topic (the connector also publishes the retained state topic before it counts the event "
        "delivered); nats = the local nats-server, a core subscriber on the subject (the connector waits for the "
        "JetStream PubAck); open311 = an aiohttp GeoReport v2 endpoint on loopback (POST /requests.json; the "
        "connector then stores the service_request_id as a FILED verdict).",
    ]
    lines += info.contention_lines("; other work shared the machine, so the tails are not clean.")
    lines += [
        "",
        "| kind | events | received | duplicates | p50 ms | p95 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['kind']} | {r['events']} | {r['received']} | {r['duplicates']} | {r.get('p50_ms', '-')} | "
            f"{r.get('p95_ms', '-')} | {r.get('max_ms', '-')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=300, help="events per kind")
    parser.add_argument("--rate", type=float, default=20.0, help="events appended per second")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: " + ", ".join(KINDS))
    parser.add_argument("--mqtt", default="127.0.0.1:1883", help="Mosquitto host:port")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222", help="nats-server URL (JetStream on)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="results root")
    args = parser.parse_args(argv)
    mqtt_host, _, mqtt_port = args.mqtt.rpartition(":")
    peers: dict[str, Peer] = {
        "webhook": webhook_peer,
        "mqtt": mqtt_peer(mqtt_host, int(mqtt_port)),
        "nats": nats_peer(args.nats),
        "open311": open311_peer,
    }
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = set(kinds) - set(peers)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}; known: {', '.join(KINDS)}")
    info = machine_info("cpu")
    results = []
    with tqdm(total=args.events * len(kinds), unit="event") as progress:
        for kind in kinds:
            progress.set_description(kind)
            results.append(asyncio.run(measure(kind, peers[kind], args.events, args.rate, progress)).summary())
    report = {
        "date": dt.date.today().isoformat(),
        "command": shlex.join([".venv/bin/python", "benchmarks/delivery_latency.py", *sys.argv[1:]]),
        "events": args.events,
        "rate": args.rate,
        "machine": info.as_dict(),
        "versions": versions(),
        "results": results,
    }
    out = results_dir(args.out, info, "cpu")
    (out / "delivery_latency.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (out / "delivery_latency.md").write_text(markdown(info, report))
    print(markdown(info, report))
    print(f"written to {out}")
    return 0 if all(r["received"] == r["events"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
