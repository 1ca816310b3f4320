"""Incident latency: from an object's appearance in a simulator scenario to the OPENED event at a subscriber,
minus the dwell.

A scenario folder (what ``detector sim`` renders) holds ``truth.json`` and the footage it names (a video file
or a folder of images). Only these truth fields are read: ``source_id``, ``fps``, ``start_ts``, ``dwell_s``,
``files.video``, ``objects[].id/class/appear_s`` and ``frames[].t_s/objects[].id/box``.

The footage is streamed LOSSLESS to the service with capture times ``start_ts + t_s``, at ``speed`` times real
time (0: as fast as the service takes it), while a subscriber collects OPENED events. Each event is matched to
the truth object whose box overlaps it most in the frame that opened it; its latency is

    (last_seen - appear - dwell)  +  (event received - opening frame sent)
     in capture time: detection      in wall time: the system's own delay
     and confirmation delay

which equals wall-clock "appeared -> OPENED, minus the dwell" when the replay runs in real time, and stays
meaningful when it runs faster.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.api.client import IngestClient, OutgoingFrame, encode_jpeg
from detector.api.incidents_client import IncidentsClient, Subscription
from detector.bench.backends import iou
from detector.bench.stats import Latency
from detector.inference.engine import EngineError
from detector.types import DeliveryMode, EventType, ImageArray

Box = tuple[float, float, float, float]


class ScenarioError(Exception):
    """The folder is not a usable simulator scenario; the message says what is missing."""


@dataclass(frozen=True)
class Scenario:
    folder: Path
    source_id: str
    fps: float
    start_ts: float
    dwell_s: float
    footage: Path
    appear_s: dict[int, float]  # object id -> first appearance (0 when there from the start)
    classes: dict[int, str]
    boxes: dict[float, dict[int, Box]]  # t_s -> object id -> box

    @classmethod
    def load(cls, folder: Path) -> Scenario:
        truth_path = folder / "truth.json"
        if not truth_path.is_file():
            raise ScenarioError(
                f"{folder} has no truth.json: incident latency needs a scenario rendered by the simulator "
                "(detector/sim, e.g. render_scenario('market-street', DIR))"
            )
        try:
            truth: dict[str, Any] = json.loads(truth_path.read_text())
            footage = folder / str(truth["files"]["video"])
            scenario = cls(
                folder=folder,
                source_id=str(truth["source_id"]),
                fps=float(truth["fps"]),
                start_ts=float(truth["start_ts"]),
                dwell_s=float(truth["dwell_s"]),
                footage=footage,
                appear_s={int(o["id"]): float(o.get("appear_s") or 0.0) for o in truth["objects"]},
                classes={int(o["id"]): str(o["class"]) for o in truth["objects"]},
                boxes={
                    float(f["t_s"]): {int(o["id"]): _box(o["box"]) for o in f.get("objects", []) if o.get("box")}
                    for f in truth["frames"]
                },
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ScenarioError(f"{truth_path}: missing or bad field: {exc}") from None
        if not footage.exists():
            raise ScenarioError(f"{truth_path} names footage {footage}, which is not there")
        return scenario


@dataclass(frozen=True)
class OpenedEvent:
    incident_id: str
    category: str
    first_seen_ts: float
    last_seen_ts: float
    box: Box
    received_s: float  # perf_counter


@dataclass(frozen=True)
class IncidentLatency:
    object_id: int
    cls: str
    incident_id: str
    detect_and_confirm_s: float  # capture time: last_seen - appear - dwell
    system_s: float  # wall time: event received - opening frame sent
    total_s: float


@dataclass
class IncidentLatencyReport:
    scenario: str
    frames_sent: int
    latencies: list[IncidentLatency] = field(default_factory=list)
    unmatched_events: list[str] = field(default_factory=list)  # incident ids no truth object explains
    never_opened: list[int] = field(default_factory=list)  # truth object ids with no OPENED event

    @property
    def total(self) -> Latency:
        return Latency.of([x.total_s * 1e3 for x in self.latencies])

    @property
    def system(self) -> Latency:
        return Latency.of([x.system_s * 1e3 for x in self.latencies])


async def measure_incident_latency(
    scenario: Scenario, target: str, speed: float = 1.0, settle_s: float = 5.0
) -> IncidentLatencyReport:
    """Replay the scenario to ``target`` and time its OPENED events."""
    events: list[OpenedEvent] = []
    sent_at: dict[float, float] = {}  # capture ts -> perf_counter when sent
    async with IncidentsClient(target) as incidents:
        consumer = f"bench-{uuid.uuid4().hex[:8]}"
        subscription = incidents.subscribe(consumer, source_ids=[scenario.source_id])
        collector = asyncio.create_task(_collect(subscription, events))
        try:
            async with IngestClient(target) as client:
                await client.wait_ready(30)
                async for answer in client.send(_paced(scenario, speed, sent_at)):
                    if answer.error is not None:
                        raise ScenarioError(f"the service rejected frame {answer.seq}: {answer.error_message}")
            await asyncio.sleep(settle_s)  # events of the last frames
        finally:
            subscription.cancel()
            await asyncio.gather(collector, return_exceptions=True)
    if collector.exception() is not None:
        raise ScenarioError(f"the subscription failed: {collector.exception()}")
    return _match(scenario, events, sent_at)


async def _collect(subscription: Subscription, events: list[OpenedEvent]) -> None:
    async for event in subscription:
        if event.type is EventType.OPENED:
            events.append(
                OpenedEvent(
                    event.incident_id,
                    event.category,
                    event.first_seen_ts,
                    event.last_seen_ts,
                    event.box_xyxy,
                    time.perf_counter(),
                )
            )


async def _paced(scenario: Scenario, speed: float, sent_at: dict[float, float]) -> AsyncIterator[OutgoingFrame]:
    started = time.perf_counter()
    for seq, (t_s, image) in enumerate(_footage(scenario), start=1):
        if speed > 0:
            await asyncio.sleep(max(started + t_s / speed - time.perf_counter(), 0.0))
        capture_ts = scenario.start_ts + t_s
        frame = OutgoingFrame(scenario.source_id, seq, capture_ts, jpeg=encode_jpeg(image), mode=DeliveryMode.LOSSLESS)
        sent_at[round(capture_ts, 3)] = time.perf_counter()
        yield frame


def _footage(scenario: Scenario) -> Iterator[tuple[float, ImageArray]]:
    from detector.ingest.video import read_frames, read_images

    if scenario.footage.is_dir():
        return read_images(scenario.footage, scenario.fps)
    return read_frames(scenario.footage)


def _match(scenario: Scenario, events: list[OpenedEvent], sent_at: dict[float, float]) -> IncidentLatencyReport:
    report = IncidentLatencyReport(scenario.folder.name, len(sent_at))
    matched: set[int] = set()
    times = sorted(scenario.boxes)
    for event in events:
        t_s = event.last_seen_ts - scenario.start_ts
        nearest = min(times, key=lambda t: abs(t - t_s), default=None)
        boxes = scenario.boxes.get(nearest, {}) if nearest is not None else {}
        overlaps = {oid: iou(event.box, box) for oid, box in boxes.items() if oid not in matched}
        best = max(overlaps, key=lambda k: overlaps[k], default=None)
        sent = sent_at.get(round(event.last_seen_ts, 3))
        if best is None or overlaps[best] < 0.3 or sent is None:
            report.unmatched_events.append(event.incident_id)
            continue
        matched.add(best)
        detect = event.last_seen_ts - (scenario.start_ts + scenario.appear_s[best]) - scenario.dwell_s
        system = event.received_s - sent
        report.latencies.append(
            IncidentLatency(best, scenario.classes[best], event.incident_id, detect, system, detect + system)
        )
    report.never_opened = sorted(oid for oid in scenario.appear_s if oid not in matched)
    return report


def _box(values: Any) -> Box:
    x1, y1, x2, y2 = (float(v) for v in values)
    return (x1, y1, x2, y2)


def write_incident_report(report: IncidentLatencyReport, folder: Path, extra: dict[str, Any]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    total, system = report.total, report.system
    data = {
        "suite": "incident-latency",
        **extra,
        "scenario": report.scenario,
        "frames_sent": report.frames_sent,
        "total_ms": _finite(total.__dict__),
        "system_ms": _finite(system.__dict__),
        "incidents": [x.__dict__ for x in report.latencies],
        "unmatched_events": report.unmatched_events,
        "never_opened": report.never_opened,
    }
    json_path = folder / f"incident_latency-{report.scenario}.json"
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    md_path = folder / f"incident_latency-{report.scenario}.md"
    md_path.write_text(
        f"# Incident latency: {report.scenario}\n\n"
        "Appearance -> OPENED at a subscriber, minus the dwell (detection and confirmation in capture time, plus "
        "the system's own delay in wall time).\n\n"
        "| | p50 ms | p95 ms | p99 ms | incidents | unmatched events | objects never opened |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
        f"| total | {total.p50_ms:.0f} | {total.p95_ms:.0f} | {total.p99_ms:.0f} | {len(report.latencies)} "
        f"| {len(report.unmatched_events)} | {len(report.never_opened)} |\n"
        f"| system only | {system.p50_ms:.0f} | {system.p95_ms:.0f} | {system.p99_ms:.0f} | | | |\n"
    )
    return [json_path, md_path]


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (None if not np.isfinite(v) else v) for k, v in values.items()}


def run_incident_command(args: argparse.Namespace) -> int:
    """`detector bench incident-latency --scenario DIR [--target HOST:PORT | --config F --set K=V ...]`."""
    from detector.bench.machine import machine_info, results_dir
    from detector.bench.service_load import ServiceProcess, ServiceStartError
    from detector.bench.suite import resolve_device

    try:
        scenario = Scenario.load(args.scenario)
        device = resolve_device(args.device)
        if args.target:
            report = asyncio.run(measure_incident_latency(scenario, args.target, args.speed))
        else:
            work = args.cache_dir.resolve() / "work"
            overrides = [f"store.data_dir={work / 'store-incident'}", *args.overrides]
            with ServiceProcess(overrides, work / "serve-incident.log", args.config) as service:
                report = asyncio.run(measure_incident_latency(scenario, service.target, args.speed))
    except (ScenarioError, ServiceStartError, EngineError) as exc:
        print(f"detector bench incident-latency: {exc}", file=sys.stderr)
        return 2
    machine = machine_info(device)
    extra = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "speed": args.speed,
        "machine": machine.as_dict(),
    }
    written = write_incident_report(report, results_dir(args.out, machine, device), extra)
    total = report.total
    measured = (
        f"p50 {total.p50_ms / 1e3:.2f} s, p95 {total.p95_ms / 1e3:.2f} s over {len(report.latencies)} incidents"
        if report.latencies
        else "no incident opened for a truth object, so no latency"
    )
    print(
        f"incident latency ({scenario.folder.name}): {measured}; {len(report.never_opened)} objects never opened, "
        f"{len(report.unmatched_events)} events matched no object"
    )
    for path in written:
        print(f"  wrote {path}")
    return 0
