"""The event writer on a real SQLite store on a disk that fills up: events wait in a bounded backlog, the
overflow drops the oldest (counted and logged by incident), and the rest reach the log in order once the disk
has room again.

PostgreSQL has no twin of this test: its disk is the server's, which a test cannot fill without filling it for
everyone. The server reports a full disk as SQLSTATE 53100, which the store raises as StoreFull like SQLite's
(tests/store/test_postgres.py::test_server_errors_become_store_errors), so the writer behaves as here; a server
that goes away and comes back is tests/store/test_postgres_restart.py."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from detector.incidents import EventWriter
from detector.store import SqliteStore
from tests.api.test_faults_disk import _fill, small_disk  # noqa: F401  (small_disk is a fixture)
from tests.store.factories import make_event


def test_a_full_backlog_drops_the_oldest_counts_them_and_keeps_the_rest_in_order(
    small_disk: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = SqliteStore(small_disk / "data")
    writable: list[bool] = []

    async def on_writable(value: bool) -> None:
        writable.append(value)

    async def go() -> tuple[EventWriter, list[str]]:
        writer = EventWriter(store, max_backlog=3, on_writable=on_writable)
        await writer.append([make_event("inc-0")])
        filler = _fill(small_disk)
        ids = [f"inc-{i}" for i in range(1, 6)]
        for incident_id in ids:  # each append fails: the disk is full
            await writer.append([make_event(incident_id)])
        assert (writer.backlog, writer.events_lost, writer.writable) == (3, 2, False)
        filler.unlink()
        await writer.flush()
        return writer, ids

    with caplog.at_level(logging.ERROR, logger="detector.incidents.writer"):
        writer, ids = asyncio.run(go())
    try:
        stored = [event.incident_id for event in store.read_events(0, 100)]
    finally:
        store.close()
    assert stored == ["inc-0", *ids[2:]], "the three newest waited and were stored in order after the first"
    assert (writer.backlog, writer.events_lost, writer.events_appended) == (0, 2, 4)
    assert writable == [False, True], "the health hook heard the store stop and start taking events"
    dropped = [r for r in caplog.records if "event backlog full" in r.getMessage()]
    assert dropped and "store.max_backlog_events=3" in dropped[0].getMessage()
    lost_ids = {i for r in dropped for i in r.incident_ids}  # type: ignore[attr-defined]
    assert lost_ids == {"inc-1", "inc-2"}, "the log names the incidents whose events were dropped"


def test_the_backlog_limit_must_hold_at_least_one_event(tmp_path: Path) -> None:
    with SqliteStore(tmp_path) as store, pytest.raises(ValueError, match="max_backlog must be at least 1"):
        EventWriter(store, max_backlog=0)
