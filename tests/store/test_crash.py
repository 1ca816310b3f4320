"""Crash safety: kill -9 mid-append (SQLite and PostgreSQL), and damaged database files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from detector.store import IncidentStore, PostgresStore, SqliteStore, StoreCorrupt, StoreError
from detector.store.blobs import STAGED_MAX_AGE_S
from detector.store.sqlite import DB_FILENAME
from detector.types import EventType
from tests.store.factories import make_event, postgres_url

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_writer_until_killed(where: Path | str, min_commits: int) -> int:
    """Start the writer on ``where`` (a SQLite data directory or a PostgreSQL URL), SIGKILL it mid-stream, return
    the highest sequence it reported committed."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.store.writer_proc", str(where)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO_ROOT,
    )
    assert writer.stdout is not None
    committed = 0
    commits = 0
    deadline = time.monotonic() + 60
    try:
        while commits < min_commits and time.monotonic() < deadline:
            line = writer.stdout.readline()
            if not line:
                break
            committed = int(line.split()[1])
            commits += 1
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert commits >= min_commits, f"writer stopped after {commits} commits (exit {writer.returncode})"
    assert writer.returncode == -signal.SIGKILL
    return committed


def test_kill_9_loses_no_committed_event_and_leaves_no_gap(tmp_path: Path) -> None:
    committed = run_writer_until_killed(tmp_path, min_commits=40)
    committed = max(committed, run_writer_until_killed(tmp_path, min_commits=20))
    # Staged evidence files the killed writer left; the next open removes those older than STAGED_MAX_AGE_S (a
    # younger one may belong to another process writing to the same store right now): age them past it.
    leftovers = list((tmp_path / "evidence").glob(".tmp-*"))
    old = time.time() - STAGED_MAX_AGE_S - 60
    for leftover in leftovers:
        os.utime(leftover, (old, old))

    with SqliteStore(tmp_path) as store:
        assert_nothing_committed_was_lost(store, committed)
    assert not list((tmp_path / "evidence").glob(".tmp-*"))


def test_kill_9_of_a_postgres_writer_loses_no_committed_event_and_leaves_no_gap(tmp_path: Path) -> None:
    # The server rolls back the transaction of a client that died mid-append; nothing is staged on the client.
    url = postgres_url(tmp_path)
    committed = run_writer_until_killed(url, min_commits=40)
    committed = max(committed, run_writer_until_killed(url, min_commits=20))
    with PostgresStore(url) as store:
        assert_nothing_committed_was_lost(store, committed)


def assert_nothing_committed_was_lost(store: IncidentStore, committed: int) -> None:
    events = store.read_events(0, 100_000)
    last = store.last_sequence()
    assert store.integrity_check() == []
    incidents = {r.incident_id: r for r in store.list_incidents(page_size=100).items}
    assert last >= committed
    assert [e.sequence for e in events] == list(range(1, last + 1))
    # The writer numbers events itself, so a torn or reordered row would show up here.
    assert [e.event_id for e in events] == [f"evt-{s - 1}" for s in range(1, last + 1)]
    # Each incident row was updated in the same transaction as its events.
    for incident_id, record in incidents.items():
        own = [e for e in events if e.incident_id == incident_id]
        assert record.last_event == own[-1]
        assert record.opened_count == Counter(e.type for e in own)[EventType.OPENED]


def damage_middle(db: Path) -> None:
    with db.open("r+b") as f:
        f.seek(db.stat().st_size // 2)
        f.write(os.urandom(8192))


def damage_header(db: Path) -> None:
    with db.open("r+b") as f:
        f.write(b"this is not sqlite at all")


def truncate_half(db: Path) -> None:
    with db.open("r+b") as f:
        f.truncate(db.stat().st_size // 2)


@pytest.mark.parametrize("damage", [damage_middle, damage_header, truncate_half])
def test_damaged_database_is_reported_not_crashed_on(tmp_path: Path, damage: object) -> None:
    original = tmp_path / "original"
    with SqliteStore(original) as store:
        for _ in range(20):
            store.append([make_event(label="padding " * 40) for _ in range(10)])
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(original / DB_FILENAME, copy / DB_FILENAME)
    damage(copy / DB_FILENAME)  # type: ignore[operator]

    try:
        store = SqliteStore(copy)
    except StoreCorrupt:
        return
    with store:
        problems = store.integrity_check()
        try:
            store.read_events(0, 100_000)
        except StoreError as exc:
            problems.append(str(exc))
    assert problems, "damage went unnoticed"
