"""What only the PostgreSQL backend has: its migrations, wake-ups across stores, its errors and the migrate CLI.

The store contract itself runs against PostgreSQL through the ``postgres`` entry of STORE_FACTORIES.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from detector.cli import main
from detector.store import (
    IncompatibleSchema,
    PostgresStore,
    SqliteStore,
    StoreCorrupt,
    StoreError,
    StoreFull,
    postgres_schema,
    sqlite_schema,
)
from detector.store.codec import event_to_row
from detector.store.postgres_queries import translate_error
from detector.store.sqlite import DB_FILENAME
from detector.types import EventType
from tests.store.factories import make_event, postgres_url


def test_a_database_at_an_older_version_migrates_and_keeps_its_events(tmp_path: Path) -> None:
    url = postgres_url(tmp_path)
    old = make_event()
    with psycopg.connect(url, autocommit=True) as conn:  # as schema version 2 left it, with one event
        for statements in postgres_schema.MIGRATIONS[:2]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(
            "CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, migrated_ts FLOAT8)"
        )
        conn.execute("INSERT INTO schema_version VALUES (1, 2, 0)")
        row = {k: v for k, v in event_to_row(old, 5.0).items() if k not in ("case_state", "case_id", "note")}
        row["sequence"] = 1
        conn.execute(
            f"INSERT INTO events ({', '.join(row)}) VALUES ({', '.join(['%s'] * len(row))})", list(row.values())
        )
        conn.execute("UPDATE log_state SET last_sequence = 1")

    with PostgresStore(url) as store:
        assert store.schema_version() == postgres_schema.LATEST_VERSION
        assert [e.event_id for e in store.read_events(0, 10)] == [old.event_id]
        (appended,) = store.append([make_event(type=EventType.UPDATED)])
        assert appended.sequence == 2
        store.add_dead_letter("d", 1, old.event_id, "HTTP 400", 1)  # a table version 3 added
        assert store.integrity_check() == []


def test_a_database_from_a_newer_build_is_refused(tmp_path: Path) -> None:
    url = postgres_url(tmp_path)
    PostgresStore(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(IncompatibleSchema, match="schema version 99"):
        PostgresStore(url)


def test_processes_starting_together_migrate_once(tmp_path: Path) -> None:
    url = postgres_url(tmp_path)
    opened: list[PostgresStore] = []
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(PostgresStore(url, pool_max_size=1))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in opened:
        store.close()
    assert failures == []
    assert len(opened) == 4


def test_the_latest_schema_has_the_tables_and_columns_of_sqlite(tmp_path: Path) -> None:
    assert postgres_schema.LATEST_VERSION == sqlite_schema.LATEST_VERSION
    SqliteStore(tmp_path / "sqlite").close()
    with sqlite3.connect(tmp_path / "sqlite" / DB_FILENAME) as lite:
        tables = [r[0] for r in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        sqlite_columns = {t: [r[1] for r in lite.execute(f"PRAGMA table_info({t})")] for t in tables}
    url = postgres_url(tmp_path / "postgres")
    PostgresStore(url).close()
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ).fetchall()
    postgres_columns: dict[str, list[str]] = {}
    for table, column in rows:
        postgres_columns.setdefault(table, []).append(column)
    # Evidence bytes: a file named by `path` in SQLite, the `data` column in PostgreSQL.
    sqlite_columns["evidence"] = [c.replace("path", "data") for c in sqlite_columns["evidence"]]
    assert postgres_columns == sqlite_columns


def test_the_event_log_is_append_only(store_url: str) -> None:
    with PostgresStore(store_url) as store:
        store.append([make_event()])
    with psycopg.connect(store_url) as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("DELETE FROM events")
    with psycopg.connect(store_url) as conn, pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        conn.execute("UPDATE events SET label = 'x'")


def test_a_follower_wakes_for_appends_of_another_store_on_the_same_log_only(tmp_path: Path) -> None:
    url = postgres_url(tmp_path / "shared")
    with PostgresStore(url) as writer, PostgresStore(url) as follower, PostgresStore(postgres_url(tmp_path)) as other:
        woken: list[int] = []
        follower.subscribe_appends(woken.append)
        threading.Timer(0.2, lambda: writer.append([make_event(), make_event()])).start()
        assert follower.wait_for(0, timeout_s=10)
        assert follower.last_sequence() == 2
        assert woken == [2]
        assert not other.wait_for(0, timeout_s=0.5)  # another schema's channel


def test_a_follower_still_wakes_after_its_listening_connection_was_cut(tmp_path: Path) -> None:
    url = postgres_url(tmp_path)
    with PostgresStore(url) as writer, PostgresStore(url) as follower:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (follower._listener._conn.info.backend_pid,))
        writer.append([make_event()])  # its NOTIFY may be lost; the reconnected listener reads the log's end
        assert follower.wait_for(0, timeout_s=10)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://postgres@127.0.0.1:1/test", "unreachable or refused the connection"),
        ("missing-schema", "no schema on the search_path exists"),
    ],
)
def test_a_database_that_cannot_be_used_says_why(tmp_path: Path, url: str, message: str) -> None:
    if url == "missing-schema":
        url = postgres_url(tmp_path).replace("search_path%3D", "search_path%3Dnot_there_")
    with pytest.raises(StoreError, match=message):
        PostgresStore(url, busy_timeout_s=2)


def test_store_migrate_cli_brings_a_store_to_the_latest_version(
    store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["store", "migrate", "--url", store_url]) == 0
    assert capsys.readouterr().out == f"postgres store at schema version {postgres_schema.LATEST_VERSION}\n"
    config = tmp_path / "service.yaml"
    config.write_text("store:\n  data_dir: lite\n")
    assert main(["store", "migrate", "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"sqlite store at schema version {sqlite_schema.LATEST_VERSION}\n"
    assert (tmp_path / "lite" / DB_FILENAME).exists()
    assert main(["store", "migrate", "--url", "postgresql://postgres@127.0.0.1:1/test"]) == 1
    assert "unreachable" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (psycopg.errors.DiskFull("could not extend file: No space left on device"), StoreFull),
        (psycopg.errors.DataCorrupted("invalid page in block 7"), StoreCorrupt),
        (psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"), StoreError),
        (psycopg.OperationalError("server closed the connection unexpectedly"), StoreError),
    ],
)
def test_server_errors_become_store_errors(error: psycopg.Error, raised: type[StoreError]) -> None:
    # A full disk on the server (SQLSTATE 53100) is StoreFull, as a full local disk is for SQLite: the event
    # writer keeps events in its backlog and health says the log is not writable.
    translated = translate_error(error, "appending events")
    assert type(translated) is raised
    assert str(translated).startswith("appending events: ")


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return postgres_url(tmp_path / "data")
