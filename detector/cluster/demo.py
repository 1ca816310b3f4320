"""`detector cluster-demo` (`make cluster-demo`): the demo's scenarios through three replicas, one killed mid-run.

1. Render the `make demo` scenarios (or reuse its cache) and make a PostgreSQL schema for this run.
2. Start three `detector serve` replicas on loopback ports, sharing that schema (``cluster.enabled``, a short
   ``cluster.lease_s``), and wait for their health checks.
3. Subscribe a case system to each replica, then stream the pole camera and the drone flight at once, each to a
   different first replica with all three listed, so that the clients follow the owner and fail over.
4. ``kill -9`` the replica owning the camera's source part-way; its client fails over, its lease expires and a
   surviving replica takes the source over, resuming its open incidents from the store.
5. Read the whole log from the store, score each scenario against its truth, audit the log
   (:mod:`detector.cluster.demo_audit`), and write ``cluster-demo.json``, ``summary.txt`` and ``report.html``.
   Exit 1 when the audit fails.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import itertools
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from detector.api.replay import ReplaySummary, replay
from detector.cluster.demo_audit import AuditReport, LoggedEvent, Observation, audit, takeovers
from detector.cluster.demo_replicas import (
    CaseSystemPrinter,
    DemoError,
    DemoSchema,
    Follower,
    Replica,
    free_port,
    wait_serving,
)
from detector.config import DEFAULT_WEIGHTS
from detector.demo.run import DemoSettings, ensure_rendered, score_events
from detector.store import IncidentStore, StoreError, StoreSettings, open_store
from detector.types import DeliveryMode, EvidenceKind, ImageArray, IncidentEvent

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
EPILOG = "example:\n  detector cluster-demo --out demo-data/cluster --lease-s 3 --kill-at 0.5"


@dataclass(frozen=True)
class ClusterDemoSettings:
    demo: DemoSettings = field(default_factory=lambda: DemoSettings(out_dir=Path("demo-data/cluster")))
    postgres: str = DEFAULT_POSTGRES  # a server URL; the run makes (and drops) a schema of its own on it
    replicas: int = 3
    lease_s: float = 3.0
    # Share of the camera's frames answered before its owner is killed. At 0.3 (180 s into market-street, seed 0)
    # no incident is due within 12 s of the kill, so the scores do not hang on which replica a due one opens on.
    kill_at: float = 0.3
    camera_fps: float = 0.0  # frames per second of video streamed from the pole camera; 0: all the render has
    keep_schema: bool = False
    # Inference threads per replica. Two replicas infer at once (the camera's owner and the drone's); all the
    # cores each beats half each, as the drone's owner then has them all once the camera's stream ends.
    threads: int = os.cpu_count() or 1


def missing_cluster_support() -> list[str]:
    """What this build lacks for a cluster; empty when the cluster code is in."""
    from detector.config import ServerSettings, ServiceConfig

    missing = [
        f"{module} (detector/cluster/{module.rsplit('.', 1)[1]}.py)"
        for module in ("detector.cluster.settings", "detector.cluster.leases", "detector.cluster.ownership")
        if importlib.util.find_spec(module) is None
    ]
    if "cluster" not in ServiceConfig.model_fields:
        missing.append("the service setting `cluster` (cluster.enabled, cluster.replica_id, cluster.lease_s)")
    if "advertise_address" not in ServerSettings.model_fields:
        missing.append("the setting server.advertise_address")
    if "Sequence" not in str(inspect.signature(replay).parameters["target"].annotation):
        missing.append("replay to several targets, following the source's owner (detector.api.replay.replay)")
    return missing


class StreamProgress:
    """A replay view: a progress bar of answered frames, and when each answer came (for the fail-over pause)."""

    wants_images = False

    def __init__(self, name: str, total: int, position: int) -> None:
        self.name, self.total = name, total
        self.answered_at: list[float] = []
        self._bar = tqdm(total=total, desc=f"streaming {name}", unit="frame", position=position)

    @property
    def answered(self) -> int:
        return len(self.answered_at)

    def begin(self, fps: float) -> None:
        return None

    def add(self, result: object, capture_ts: float | None, image: ImageArray | None) -> None:
        self.answered_at.append(time.time())
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()

    def pause_after(self, ts: float) -> float:
        """The longest wait between answers from ``ts`` on: how long the stream stood still across a fail-over."""
        times = [ts] + [t for t in self.answered_at if t >= ts]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


@dataclass
class Kill:
    replica: str = ""
    at_ts: float = 0.0
    after_frames: int = 0
    owners_before: dict[str, str] = field(default_factory=dict)


def read_owners(store_url: str, source_ids: list[str], live_only: bool) -> dict[str, str]:
    """Source id -> the replica holding its lease (``live_only``: unexpired leases only; else the last holder)."""
    from detector.cluster.leases import LeaseTable

    table = LeaseTable(store_url)
    try:
        holders = {source: table.holder(f"source:{source}") for source in source_ids}
    finally:
        table.close()
    return {source: h.owner for source, h in holders.items() if h is not None and (h.expires_in_s > 0 or not live_only)}


def service_document(settings: ClusterDemoSettings, truths: dict[str, dict[str, Any]], url: str) -> dict[str, Any]:
    """The demo's service settings (zones, calibration, drone tiling, 640 px) on the shared store, clustered."""
    from detector.sim.service_config import service_document as rules_document

    demo = settings.demo
    return {
        "model": {"weights": str(demo.weights.resolve()), "device": "cpu", "imgsz": demo.imgsz},
        "store": {"backend": "postgres", "url": url, "pool_max_size": 4},
        "cluster": {"enabled": True, "lease_s": settings.lease_s},
        "logging": {"level": "INFO"},
        **rules_document(truths.values(), demo.imgsz, tile_drones=demo.tile_drone),
    }


async def _kill_owner(
    settings: ClusterDemoSettings,
    progress: StreamProgress,
    source_id: str,
    sources: list[str],
    replicas: list[Replica],
    url: str,
) -> Kill:
    while progress.answered < settings.kill_at * progress.total:
        await asyncio.sleep(0.2)
    owners = await asyncio.to_thread(read_owners, url, sources, True)
    by_id = {r.replica_id: r for r in replicas}
    victim = by_id.get(owners.get(source_id, ""))
    if victim is None:
        raise DemoError(f"no live replica holds the lease on {source_id} after {progress.answered} frames: {owners}")
    victim.kill()
    tqdm.write(
        f"*** kill -9 {victim.replica_id} ({victim.address}), owner of {source_id}, "
        f"after {progress.answered} of its frames"
    )
    return Kill(victim.replica_id, victim.killed_at or time.time(), progress.answered, owners)


async def _stream(targets: list[str], folder: Path, truth: dict[str, Any], fps: float, view: StreamProgress) -> Any:
    srt = folder / truth["files"]["srt"] if truth["files"].get("srt") else None
    return await replay(
        targets,
        folder / truth["files"]["video"],
        truth["source_id"],
        fps=fps,
        mode=DeliveryMode.LOSSLESS,
        start_ts=truth["start_ts"],
        srt=srt,
        views=[view],
    )


async def _drain(followers: list[Follower], store: IncidentStore, quiet_s: float = 3.0, timeout_s: float = 90) -> int:
    """Wait until every live subscriber has the log's last event and nothing was appended for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_last = await asyncio.to_thread(store.last_sequence)
        if now_last != last:
            last, since = now_last, time.monotonic()
        caught_up = all(f.last_sequence >= last for f in followers if f.replica.alive)
        if caught_up and time.monotonic() - since >= quiet_s:
            break
        await asyncio.sleep(0.5)
    return last


@dataclass
class ClusterRun:
    kill: Kill
    owners_after: dict[str, str]
    followers: list[Follower]
    summaries: list[ReplaySummary]
    pauses_s: dict[str, float]
    targets: dict[str, list[str]]


async def stream_through_cluster(
    settings: ClusterDemoSettings,
    folders: dict[str, Path],
    truths: dict[str, dict[str, Any]],
    replicas: list[Replica],
    store: IncidentStore,
    url: str,
) -> ClusterRun:
    names = list(folders)
    addresses = {r.replica_id: r.address for r in replicas}
    # Scenario i goes first to replica i; the replica that has nothing of its own is listed next, so that the
    # killed camera's client fails over to it.
    order = [r.replica_id for r in replicas]
    targets = {n: [order[i], *order[len(names) :], *order[i + 1 : len(names)], *order[:i]] for i, n in enumerate(names)}
    fps = {n: settings.camera_fps if truths[n]["camera"] == "fixed" else 0.0 for n in names}
    totals = {n: _frames_to_send(truths[n], fps[n], settings.demo.fps) for n in names}
    for name in names:
        print(f"  {name}: first to {targets[name][0]}, then {', '.join(targets[name][1:])} ({totals[name]} frames)")
    stop = asyncio.Event()
    followers = [Follower(r, f"cluster-demo-{r.replica_id}") for r in replicas]
    printer = CaseSystemPrinter()
    following = [asyncio.create_task(f.follow(stop, printer)) for f in followers]
    views = {n: StreamProgress(n, totals[n], i) for i, n in enumerate(names)}
    camera = next(n for n in names if truths[n]["camera"] == "fixed")
    sources = [truths[n]["source_id"] for n in names]
    killer = asyncio.create_task(
        _kill_owner(settings, views[camera], truths[camera]["source_id"], sources, replicas, url)
    )
    streams = [_stream([addresses[r] for r in targets[n]], folders[n], truths[n], fps[n], views[n]) for n in names]
    summaries = list(await asyncio.gather(*streams))
    if not killer.done():  # the camera's stream ended short of the kill point (frames rejected, or fewer sent)
        killer.cancel()
        raise DemoError(f"{camera} ended after {views[camera].answered} answered frames, before the kill point")
    kill = killer.result()
    owners_after = await asyncio.to_thread(read_owners, url, sources, False)
    last = await _drain(followers, store)
    stop.set()
    await asyncio.gather(*following)
    for f in followers:
        f.caught_up_to = last
    pauses = {n: views[n].pause_after(kill.at_ts) for n in names}
    return ClusterRun(kill, owners_after, followers, summaries, pauses, targets)


def _frames_to_send(truth: dict[str, Any], fps: float, rendered_fps: float) -> int:
    frames = len(truth["frames"])
    return frames if fps <= 0 or fps >= rendered_fps else int(frames * fps / rendered_fps)


def read_log(store: IncidentStore) -> list[IncidentEvent]:
    events: list[IncidentEvent] = []
    while batch := store.read_events(events[-1].sequence if events else 0, 1000):
        events += batch
    return events


def _evidence(store: IncidentStore, events: list[IncidentEvent]) -> dict[str, bytes]:
    out = {}
    for sha in {ev.sha256 for e in events for ev in e.evidence if ev.kind is EvidenceKind.FRAME_JPEG}:
        try:
            with store.open_evidence(sha) as blob:
                out[sha] = blob.read()
        except StoreError:  # gone or damaged: the report shows the incident without its photo
            continue
    return out


def run_cluster_demo(settings: ClusterDemoSettings) -> int:
    from detector.cluster.demo_report import write_outputs

    if missing := missing_cluster_support():
        raise DemoError("this build has no cluster support yet; missing: " + "; ".join(missing))
    started = time.perf_counter()
    out = settings.demo.out_dir
    out.mkdir(parents=True, exist_ok=True)
    folders = ensure_rendered(settings.demo)
    truths = {name: json.loads((folder / "truth.json").read_text()) for name, folder in folders.items()}
    schema = DemoSchema.create(settings.postgres)
    print(f"PostgreSQL schema {schema.name} on {settings.postgres}")
    replicas_dir = out / "replicas"
    shutil.rmtree(replicas_dir, ignore_errors=True)
    replicas_dir.mkdir(parents=True)
    config = out / "cluster-config.yaml"
    config.write_text(yaml.safe_dump(service_document(settings, truths, schema.url), allow_unicode=True))
    replicas = [
        Replica(name, free_port(), replicas_dir / f"{name}.log")
        for name in (f"replica-{i + 1}" for i in range(settings.replicas))
    ]
    try:
        for r in replicas:
            r.start(config, (replicas_dir / r.replica_id).resolve(), settings.threads)
            print(f"started {r.replica_id} on {r.address}, log {r.log_path}")
        wait_serving(replicas, timeout_s=300)
        with open_store(StoreSettings(backend="postgres", url=schema.url, data_dir=replicas_dir / "audit")) as store:
            run = asyncio.run(stream_through_cluster(settings, folders, truths, replicas, store, schema.url))
            for r in replicas:
                r.stop()
            log = read_log(store)
            evidence = _evidence(store, log)
    finally:
        for r in replicas:
            r.stop(timeout_s=10)
        if not settings.keep_schema:
            schema.drop()
    report = audit_run(run, log, truths)
    wall_s = time.perf_counter() - started
    write_outputs(settings, schema, replicas, run, log, evidence, truths, report, wall_s)
    return 0 if report.passed else 1


def audit_run(run: ClusterRun, log: list[IncidentEvent], truths: dict[str, dict[str, Any]]) -> AuditReport:
    observations = [
        Observation(
            f.consumer,
            f.replica.replica_id,
            f.replica.replica_id != run.kill.replica,
            tuple(f.received),
            f.caught_up_to,
        )
        for f in run.followers
    ]
    matches = {}
    for name, truth in truths.items():
        scored = score_events(truth, log)
        matches[name] = {
            i.incident_id: i.object_id
            for i in scored.incidents
            if i.status in ("true", "duplicate") and i.object_id is not None
        }
    moves = takeovers(run.kill.owners_before, run.owners_after, run.kill.replica)
    return audit([LoggedEvent.of(e) for e in log], observations, matches, moves, run.kill.replica)


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """The ``cluster-demo`` command."""
    p: argparse.ArgumentParser = commands.add_parser(
        "cluster-demo",
        help="the demo through three PostgreSQL-backed replicas, one killed mid-run; audit the shared log",
        description=__doc__,
        epilog=EPILOG,
    )
    p.add_argument("--out", type=Path, default=Path("demo-data/cluster"), help="logs, audit, scores, report.html")
    p.add_argument("--cache", type=Path, default=Path(".cache/demo"), help="rendered scenarios (shared with demo)")
    p.add_argument("--seed", type=int, default=0, help="simulator seed")
    p.add_argument(
        "--postgres",
        default=os.environ.get("STREETWATCH_DEMO_POSTGRES", DEFAULT_POSTGRES),
        help="PostgreSQL server URL; the run creates and drops a schema cluster_demo_<time> on it "
        f"(default: $STREETWATCH_DEMO_POSTGRES or {DEFAULT_POSTGRES})",
    )
    p.add_argument("--replicas", type=int, default=3, help="replicas to start (at least 3: 2 owners and a spare)")
    p.add_argument("--lease-s", type=float, default=3.0, help="cluster.lease_s of the replicas")
    p.add_argument(
        "--kill-at",
        type=float,
        default=ClusterDemoSettings.kill_at,
        help="kill the camera's owner once this share of its frames is answered",
    )
    p.add_argument(
        "--camera-fps", type=float, default=0.0, help="frames per second of video sent from the camera (0: all)"
    )
    p.add_argument("--imgsz", type=int, default=640, help="model input size of the replicas, as `detector demo`")
    p.add_argument(
        "--threads",
        type=int,
        default=ClusterDemoSettings.threads,
        help="inference threads per replica (default: this machine's cores)",
    )
    p.add_argument("--keep-schema", action="store_true", help="leave the PostgreSQL schema for inspection")
    return p


def run_command(args: argparse.Namespace) -> int:
    import sys

    from detector.logs import setup_logging

    if args.replicas < 3 or not 0 < args.kill_at < 1:
        print("detector cluster-demo: --replicas must be 3 or more and --kill-at between 0 and 1", file=sys.stderr)
        return 2
    setup_logging("WARNING", json_format=False)
    demo = DemoSettings(
        out_dir=args.out, cache_dir=args.cache, seed=args.seed, weights=DEFAULT_WEIGHTS, imgsz=args.imgsz
    )
    settings = ClusterDemoSettings(
        demo, args.postgres, args.replicas, args.lease_s, args.kill_at, args.camera_fps, args.keep_schema, args.threads
    )
    try:
        return run_cluster_demo(settings)
    except DemoError as exc:
        print(f"detector cluster-demo: {exc}", file=sys.stderr)
        return 2
