"""Store append throughput and subscriber lag: 1, 2 and 4 writer processes on one log, PostgreSQL vs SQLite.

    .venv/bin/python benchmarks/store_append.py [--seconds 8] [--writers 1,2,4] [--batch 1] [--backends sqlite,postgres]

For each backend and writer count, a fresh log (a SQLite file in a temporary directory, or a new schema of the
PostgreSQL at ``--postgres``, dropped afterwards) is appended to by that many writer processes for ``--seconds``,
each calling ``store.append`` with ``--batch`` events at a time as fast as it can (the service appends one
frame's events per call). Another process follows the log as a subscriber does (``wait_for`` then
``read_events``):

- PostgreSQL wakes it through LISTEN/NOTIFY (``wait_for`` returns when another process commits);
- SQLite has no wake-up across processes, so it polls: ``wait_for`` with a ``--poll-ms`` timeout, then reads.

Lag = the follower read the event minus its writer's ``append`` returned, both on ``time.monotonic`` (one
system-wide clock on Linux). Writes ``store_append.json`` and ``store_append.md`` to ``<out>/<device>/<date>/``
(default benchmarks/results), with the machine, versions and command line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import shlex
import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql
from tqdm import tqdm

from detector.bench.machine import MachineInfo, machine_info, results_dir
from detector.store import IncidentStore, PostgresStore, SqliteStore
from detector.types import EventType, GeoPoint, IncidentEvent, LocationMethod, Severity

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("sqlite", "postgres")


def open_log(where: str) -> IncidentStore:
    if where.startswith("postgresql:"):
        return PostgresStore(where, pool_max_size=2)
    return SqliteStore(Path(where))


def event(writer: int, n: int) -> IncidentEvent:
    incident = n % 20
    return IncidentEvent(
        event_id=f"w{writer}-{n}-{uuid.uuid4().hex[:8]}",
        incident_id=f"w{writer}-inc-{incident}",
        type=EventType.OPENED if n < 20 else EventType.UPDATED,
        category="ROAD_OCCUPYING_STALL",
        case_code="200501",
        label="无照经营游商",
        severity=Severity.MEDIUM,
        confidence=0.87,
        source_id=f"drone-{writer}",
        first_seen_ts=100.0,
        last_seen_ts=100.0 + n,
        box_xyxy=(10.0, 20.0, 110.0, 220.0),
        zone_id="",
        rule="confirm",
        model_version="bench",
        location=GeoPoint(39.9042 + incident * 1e-4, 116.4074, 3.0, LocationMethod.DRONE_PROJECTION),
    )


def write(where: str, writer: int, batch: int, ready: Any, start: Event, seconds: float, results: Any) -> None:
    """Append ``batch`` events per call from ``start`` for ``seconds``; report (event_id, returned at) of each."""
    committed: list[tuple[str, float]] = []
    with open_log(where) as store:
        ready.put(writer)
        start.wait()
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            stored = store.append([event(writer, n + i) for i in range(batch)])
            returned = time.monotonic()
            committed += [(e.event_id, returned) for e in stored]
            n += batch
    results.put(("writer", writer, committed))


def follow(where: str, poll_s: float | None, ready: Any, expected: Any, results: Any) -> None:
    """Read the log as it grows until it holds ``expected`` events; report (event_id, sequence, read at)."""
    seen: list[tuple[str, int, float]] = []
    with open_log(where) as store:
        ready.put("follower")
        after = 0
        while expected.value < 0 or after < expected.value:
            store.wait_for(after, 1.0 if poll_s is None else poll_s)
            batch = store.read_events(after, 1000)
            read_at = time.monotonic()
            seen += [(e.event_id, e.sequence, read_at) for e in batch]
            after = batch[-1].sequence if batch else after
    results.put(("follower", 0, seen))


@dataclass
class Run:
    backend: str
    writers: int
    seconds: float
    batch: int
    appended: int
    seen: int
    gap_free: bool
    lags_ms: list[float]

    def summary(self) -> dict[str, Any]:
        lags = np.array(self.lags_ms)
        return {
            "backend": self.backend,
            "writers": self.writers,
            "batch": self.batch,
            "seconds": self.seconds,
            "events_appended": self.appended,
            "events_per_s": round(self.appended / self.seconds, 1),
            "appends_per_s": round(self.appended / self.batch / self.seconds, 1),
            "follower_saw": self.seen,
            "gap_free": self.gap_free,
            "lag_p50_ms": round(float(np.percentile(lags, 50)), 2) if len(lags) else None,
            "lag_p95_ms": round(float(np.percentile(lags, 95)), 2) if len(lags) else None,
            "lag_max_ms": round(float(lags.max()), 2) if len(lags) else None,
        }


def measure(where: str, backend: str, writers: int, args: argparse.Namespace) -> Run:
    ctx = multiprocessing.get_context("spawn")
    ready, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    expected = ctx.Value("q", -1)
    open_log(where).close()  # create or migrate once, before the processes race to
    poll_s = args.poll_ms / 1000.0 if backend == "sqlite" else None
    follower = ctx.Process(target=follow, args=(where, poll_s, ready, expected, results))
    procs = [
        ctx.Process(target=write, args=(where, w, args.batch, ready, start, args.seconds, results))
        for w in range(writers)
    ]
    for proc in (follower, *procs):
        proc.start()
    for _ in range(writers + 1):
        ready.get(timeout=60)  # every store is open: the clock starts for all at once
    start.set()
    committed: dict[str, float] = {}
    for _ in range(writers):
        _, _, pairs = results.get(timeout=args.seconds + 120)
        committed.update(pairs)
    expected.value = len(committed)
    _, _, seen = results.get(timeout=120)
    for proc in (follower, *procs):
        proc.join(timeout=60)
    sequences = [sequence for _, sequence, _ in seen]
    lags = [(read_at - committed[event_id]) * 1000.0 for event_id, _, read_at in seen if event_id in committed]
    return Run(
        backend,
        writers,
        args.seconds,
        args.batch,
        len(committed),
        len(seen),
        sequences == list(range(1, len(committed) + 1)),
        lags,
    )


def fresh_postgres_schema(url: str) -> tuple[str, str]:
    """A new schema for one run, and the URL whose search_path is it."""
    schema = f"sw_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    separator = "&" if "?" in url else "?"
    return schema, f"{url}{separator}options=-csearch_path%3D{schema}"


def drop_postgres_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def versions(postgres_url: str | None) -> dict[str, str]:
    found = {"sqlite": sqlite3.sqlite_version}
    for name in ("psycopg", "psycopg-pool"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    if postgres_url is not None:
        with psycopg.connect(postgres_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            found["postgresql"] = str(row[0]) if row else "unknown"
            for setting in ("fsync", "synchronous_commit"):
                row = conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(setting))).fetchone()
                found[f"postgresql {setting}"] = str(row[0]) if row else "unknown"
    return found


def markdown(info: MachineInfo, report: dict[str, Any]) -> str:
    title = f"Store append throughput and subscriber lag: {info.device_slug('cpu')}, {report['date']}"
    lines = info.markdown_header(title, report["versions"], report["command"])
    lines += [
        f"- Load: N writer processes append to one log for {report['seconds']} s each, {report['batch']} event(s) "
        "per append call, as fast as they can; SQLite = one file (WAL, synchronous=FULL), PostgreSQL = one schema "
        "of the local server (its own fsync settings, see versions).",
        "- Lag: a follower in another process reads the log (wait_for, read_events); lag = it read the event minus "
        f"the writer's append returned. PostgreSQL wakes it by LISTEN/NOTIFY; SQLite cannot wake another process, "
        f"so that follower polls every {report['poll_ms']} ms.",
        "- gap-free: the follower read sequences 1..N, each once, in order.",
    ]
    lines += info.contention_lines("; other work shared the machine, so these numbers are low and noisy.")
    lines += [
        "",
        "| backend | writers | events | events/s | follower saw | gap-free | lag p50 ms | lag p95 ms | lag max ms |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['backend']} | {r['writers']} | {r['events_appended']} | {r['events_per_s']} | {r['follower_saw']} "
            f"| {'yes' if r['gap_free'] else 'NO'} | {r['lag_p50_ms']} | {r['lag_p95_ms']} | {r['lag_max_ms']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="how long the writers append, per run")
    parser.add_argument("--writers", default="1,2,4", help="comma-separated writer process counts")
    parser.add_argument("--batch", type=int, default=1, help="events per append call")
    parser.add_argument("--poll-ms", type=float, default=5.0, help="the SQLite follower's poll interval")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: " + ", ".join(BACKENDS))
    parser.add_argument(
        "--postgres", default="postgresql://postgres@127.0.0.1:5432/test", help="server for the postgres runs"
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results", help="results root")
    args = parser.parse_args(argv)
    writer_counts = [int(n) for n in args.writers.split(",")]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := set(backends) - set(BACKENDS):
        parser.error(f"unknown backends: {', '.join(sorted(unknown))}; known: {', '.join(BACKENDS)}")
    info = machine_info("cpu")
    results = []
    with tqdm(total=len(backends) * len(writer_counts), unit="run") as progress:
        for backend in backends:
            for writers in writer_counts:
                progress.set_description(f"{backend}, {writers} writer(s)")
                if backend == "postgres":
                    schema, where = fresh_postgres_schema(args.postgres)
                    try:
                        run = measure(where, backend, writers, args)
                    finally:
                        drop_postgres_schema(args.postgres, schema)
                else:
                    with tempfile.TemporaryDirectory(prefix="sw-bench-") as data_dir:
                        run = measure(data_dir, backend, writers, args)
                results.append(run.summary())
                progress.set_postfix(events_per_s=results[-1]["events_per_s"], lag_p50_ms=results[-1]["lag_p50_ms"])
                progress.update()
    report = {
        "date": dt.date.today().isoformat(),
        "command": shlex.join([".venv/bin/python", "benchmarks/store_append.py", *sys.argv[1:]]),
        "seconds": args.seconds,
        "batch": args.batch,
        "poll_ms": args.poll_ms,
        "machine": info.as_dict(),
        "versions": versions(args.postgres if "postgres" in backends else None),
        "results": results,
    }
    out = results_dir(args.out, info, "cpu")
    (out / "store_append.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (out / "store_append.md").write_text(markdown(info, report))
    print(markdown(info, report))
    print(f"written to {out}")
    return 0 if all(r["gap_free"] and r["follower_saw"] == r["events_appended"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
