"""The pieces `make cluster-demo` runs: a PostgreSQL schema of its own, `detector serve` replica processes on
loopback ports, and one case-system subscriber per replica that records what it was shown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
import psycopg
from psycopg import sql
from tqdm import tqdm

from detector.api.health_probe import HealthProbe
from detector.api.incidents_client import IncidentsClient, Subscription
from detector.api.subscribe import event_line
from detector.types import IncidentEvent


class DemoError(RuntimeError):
    """The cluster demo cannot run here; the message says what to fix."""


@dataclass(frozen=True)
class DemoSchema:
    """A fresh schema on ``server_url`` for one run; ``url`` points the store at it (its search_path)."""

    server_url: str
    name: str

    @classmethod
    def create(cls, server_url: str) -> DemoSchema:
        name = "cluster_demo_" + datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
        try:
            with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split())
            raise DemoError(
                f"the cluster demo needs a PostgreSQL server it may create a schema on, at {server_url} "
                f"(--postgres URL, or $STREETWATCH_DEMO_POSTGRES): {reason}"
            ) from exc
        return cls(server_url, name)

    @property
    def url(self) -> str:
        separator = "&" if "?" in self.server_url else "?"
        return f"{self.server_url}{separator}options=-csearch_path%3D{self.name}"

    def drop(self) -> None:
        with psycopg.connect(self.server_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.name)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replica:
    """One `detector serve` process of the cluster."""

    replica_id: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    killed_at: float | None = None  # wall time of the SIGKILL

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, config: Path, data_dir: Path, threads: int) -> None:
        cmd = [sys.executable, "-m", "detector.cli", "serve", "--config", str(config)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        cmd += ["--set", f"cluster.replica_id={self.replica_id}", "--set", f"server.advertise_address={self.address}"]
        cmd += ["--set", f"store.data_dir={data_dir}"]
        # Replicas share this machine's cores: capped inference threads keep them from fighting over them.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye to the lease table; its leases must expire."""
        assert self.process is not None
        self.killed_at = time.time()  # before the signal: its subscriber must not take the broken call for a blip
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self, timeout_s: float = 30.0) -> None:
        if not self.alive:
            return
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


LEASE_LOG_MESSAGES = ("lease taken", "source taken over", "leases released")


def lease_log(replicas: list[Replica]) -> list[str]:
    """The replicas' own account of who took which lease and resumed which source, from their JSON logs, in
    time order (informative: the audit judges the lease table, not these lines)."""
    entries = []
    for replica in replicas:
        try:
            lines = replica.log_path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and entry.get("msg") in LEASE_LOG_MESSAGES:
                entries.append((str(entry.get("ts", "")), replica.replica_id, entry))
    out = []
    for ts, replica_id, entry in sorted(entries, key=lambda e: e[0]):
        what = entry.get("resource") or entry.get("source_id") or entry.get("resources")
        extra = [f"{k} {entry[k]}" for k in ("epoch", "open_incidents") if k in entry]
        out.append(f"{ts[11:23]} {replica_id}: {entry['msg']} {what}" + (f" ({', '.join(extra)})" if extra else ""))
    return out


def wait_serving(replicas: list[Replica], timeout_s: float) -> None:
    """Until every replica's health check answers SERVING (the model is loaded, the store migrated)."""
    deadline = time.monotonic() + timeout_s
    pending = list(replicas)
    with tqdm(total=len(replicas), desc="replicas ready", unit="replica") as bar:
        while pending:
            for replica in list(pending):
                if not replica.alive:
                    raise DemoError(f"{replica.replica_id} exited while starting; its log:\n{replica.log_tail()}")
                with HealthProbe(replica.address) as probe:
                    if probe.serving(timeout_s=1):
                        pending.remove(replica)
                        bar.update(1)
            if time.monotonic() > deadline:
                names = ", ".join(r.replica_id for r in pending)
                raise DemoError(f"{names} not SERVING after {timeout_s:.0f} s; see {pending[0].log_path}")
            time.sleep(0.5)


@dataclass
class Follower:
    """A case system subscribed to one replica from the start of the log: what it was shown, in order."""

    replica: Replica
    consumer: str
    received: list[tuple[int, str]] = field(default_factory=list)
    events: list[IncidentEvent] = field(default_factory=list)
    reconnects: int = 0
    caught_up_to: int = 0  # the log's last sequence when it was stopped

    @property
    def last_sequence(self) -> int:
        return self.received[-1][0] if self.received else 0

    async def follow(self, stop: asyncio.Event, shown: Callable[[IncidentEvent, Follower], None]) -> None:
        """Follow until ``stop``; resubscribe after the last event when a live replica ends the call; give up when
        its replica was killed."""
        while not stop.is_set():
            try:
                async with (
                    IncidentsClient(self.replica.address) as client,
                    client.subscribe(self.consumer, after_sequence=self.last_sequence) as subscription,
                ):
                    stopper = asyncio.create_task(_cancel_when_set(stop, subscription))
                    try:
                        async for event in subscription:
                            self.received.append((event.sequence, event.event_id))
                            self.events.append(event)
                            shown(event, self)
                    finally:
                        stopper.cancel()
            except grpc.aio.AioRpcError:
                if self.replica.killed_at is not None:
                    return
                self.reconnects += 1
                await asyncio.sleep(0.5)


async def _cancel_when_set(stop: asyncio.Event, subscription: Subscription) -> None:
    await stop.wait()
    subscription.cancel()


class CaseSystemPrinter:
    """Prints each event once, the first time any subscriber receives it, saying which replica delivered it."""

    def __init__(self) -> None:
        self._printed: set[str] = set()

    def __call__(self, event: IncidentEvent, follower: Follower) -> None:
        if event.event_id not in self._printed:
            self._printed.add(event.event_id)
            tqdm.write(f"  case system ← {follower.replica.replica_id}: {event_line(event)}")
