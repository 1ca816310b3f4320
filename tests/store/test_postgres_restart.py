"""PostgreSQL stopped and started again under a running service: events wait, in order, and none is lost.

The database is a private PostgreSQL instance of this test (``initdb`` into a temporary directory, its own port
and socket), so stopping it disturbs no one else. The event writer appends while it is down: the events wait in
its backlog, health says the log is not writable, and once the server is back they are stored in order, with no
gap and no duplicate, and health says writable again. Two followers read them in another store: one that wakes
only through its LISTEN connection, which must reconnect after the restart, and one that reads every 0.2 s, so
reads fail during the outage, which must only pause it.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health, health_pb2

from detector.api.store_health import INCIDENTS_SERVICE, StoreHealth
from detector.incidents import EventWriter
from detector.metrics import ServiceMetrics
from detector.store import IncidentStore, PostgresStore, follow_events
from detector.types import IncidentEvent
from tests.store.factories import make_event


class PrivatePostgres:
    """A PostgreSQL server of one test, run by the ``postgres`` OS user when the test runs as root."""

    def __init__(self, bin_dir: Path, root: Path, port: int, as_user: list[str]) -> None:
        self._bin_dir = bin_dir
        self._root = root
        self._data = root / "data"
        self._port = port
        self._as_user = as_user
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def init(self) -> None:
        self._run("initdb", "-D", str(self._data), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        options = f"-p {self._port} -k {self._root} -c listen_addresses=127.0.0.1"
        log_file = str(self._root / "server.log")
        self._run("pg_ctl", "-D", str(self._data), "-o", options, "-l", log_file, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self._data), "-m", mode, "-w", "stop")

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([*self._as_user, str(self._bin_dir / program), *args], check=True, capture_output=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = Path(found[-1]) if found else Path(shutil.which("initdb") or "/nonexistent")
    if not initdb.exists():
        pytest.skip("no initdb here (install the PostgreSQL server package) to run a private PostgreSQL")
    as_user: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="sw-private-pg-"))
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot run initdb as the postgres user")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    server = PrivatePostgres(initdb.parent, root, _free_port(), as_user)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if (root / "data" / "postmaster.pid").exists():
            server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


class Follower:
    """Collects what ``follow_events`` yields; ``seen(n)`` waits, without polling, until it has ``n`` events."""

    def __init__(self, store: IncidentStore, idle_wait_s: float) -> None:
        self.events: list[IncidentEvent] = []
        self._store = store
        self._idle_wait_s = idle_wait_s
        self._changed = asyncio.Condition()
        self.stop = asyncio.Event()

    async def run(self) -> None:
        following = follow_events(self._store, 0, idle_wait_s=self._idle_wait_s, until=self.stop, retry_wait_s=0.2)
        async for event in following:
            async with self._changed:
                self.events.append(event)
                self._changed.notify_all()

    async def seen(self, count: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self.events) >= count)


async def incidents_status(servicer: health.aio.HealthServicer) -> int:
    request = health_pb2.HealthCheckRequest(service=INCIDENTS_SERVICE)
    response = await servicer.Check(request, None)  # type: ignore[arg-type]
    return int(response.status)


def test_events_wait_through_a_database_restart_and_are_stored_in_order(
    private_postgres: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    before = [make_event(f"inc-{i}", event_id=f"before-{i}") for i in range(3)]
    during = [make_event(f"inc-{i}", event_id=f"during-{i}") for i in range(3, 7)]
    after = [make_event(f"inc-{i}", event_id=f"after-{i}") for i in range(7, 9)]
    every_id = [e.event_id for e in (*before, *during, *after)]

    async def scenario(store: PostgresStore, follower_store: PostgresStore) -> tuple[EventWriter, StoreHealth]:
        servicer = health.aio.HealthServicer()
        store_health = StoreHealth(servicer, ServiceMetrics())
        await store_health.set_serving(True)
        heard: list[bool] = []

        async def on_writable(writable: bool) -> None:
            heard.append(writable)
            await store_health.set_writable(writable)

        writer = EventWriter(store, max_backlog=100, on_writable=on_writable)
        listening = Follower(follower_store, idle_wait_s=3600.0)  # an hour between idle reads: only wake-ups
        polling = Follower(follower_store, idle_wait_s=0.2)  # reads during the outage, which fail
        following = [asyncio.create_task(follower.run()) for follower in (listening, polling)]
        for event in before:
            await writer.append([event])
        await asyncio.wait_for(asyncio.gather(listening.seen(len(before)), polling.seen(len(before))), 30)

        await asyncio.to_thread(private_postgres.stop)
        for event in during:
            await writer.append([event])
        assert (writer.backlog, writer.writable, heard) == (len(during), False, [False])
        assert await incidents_status(servicer) == health_pb2.HealthCheckResponse.NOT_SERVING

        await asyncio.to_thread(private_postgres.start)
        # What the service's periodic flush does; each try is a real append that fails until the pool reconnects.
        deadline = asyncio.get_running_loop().time() + 60
        while writer.backlog and asyncio.get_running_loop().time() < deadline:
            await writer.flush()
        assert (writer.backlog, writer.writable, heard) == (0, True, [False, True])
        assert await incidents_status(servicer) == health_pb2.HealthCheckResponse.SERVING
        for event in after:
            await writer.append([event])

        await asyncio.wait_for(asyncio.gather(listening.seen(len(every_id)), polling.seen(len(every_id))), 30)
        for follower in (listening, polling):
            follower.stop.set()
        await asyncio.gather(*following)
        for follower in (listening, polling):
            assert [e.event_id for e in follower.events] == every_id, "each follower saw each event once, in order"
        return writer, store_health

    with (
        PostgresStore(private_postgres.url, busy_timeout_s=1.0) as store,
        PostgresStore(private_postgres.url, busy_timeout_s=1.0) as follower_store,
    ):
        writer, _ = asyncio.run(scenario(store, follower_store))
        stored = store.read_events(0, 100)
        assert store.integrity_check() == []

    assert [e.event_id for e in stored] == every_id, "none lost, none twice, in the order they were raised"
    assert [e.sequence for e in stored] == list(range(1, len(every_id) + 1))
    assert (writer.events_appended, writer.events_lost) == (len(every_id), 0)
    assert writer.store_failures >= len(during)
    paused = [r for r in caplog.records if r.name == "detector.store.follow"]
    assert [r.getMessage().split(" (")[0] for r in paused][:1] == ["cannot read the event log"]
