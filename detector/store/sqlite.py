"""SQLite backend: one database file in WAL mode plus content-addressed evidence files.

Durability: ``synchronous=FULL`` makes every commit fsync the WAL, so an acknowledged append survives a
``kill -9`` or a power cut. Writes go through one connection under a lock (SQLite has one writer anyway);
reads use one connection per thread, so followers reading the log never wait for an append to finish.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from detector.store.base import IncidentStore, register_store
from detector.store.blobs import EvidenceFiles, check_kind, check_sha256
from detector.store.codec import (
    already_stored,
    check_appendable,
    decode_event_row,
    decode_incident_row,
    event_to_row,
    incident_columns,
    numbered_on,
)
from detector.store.config import StoreSettings
from detector.store.errors import (
    DuplicateEvent,
    EvidenceMissing,
    InvalidQuery,
    OffsetAheadOfLog,
    StoreClosed,
    StoreError,
    StoreFull,
)
from detector.store.maintenance import (
    EVIDENCE_OF_OPEN_INCIDENTS,
    event_log_problems,
    evidence_to_prune,
    protected_evidence,
)
from detector.store.model import (
    ANY_EVENT,
    DeadLetter,
    EventFilter,
    IncidentPage,
    IncidentRecord,
    IncidentState,
    RetentionReport,
)
from detector.store.sql_common import (
    DELETE_DEAD_LETTER,
    EVENT_LOG_SPAN,
    INCIDENTS_WITH_CASE_STATE,
    OPEN_INCIDENTS,
    OPEN_INCIDENTS_NEAR,
    SELECT_DEAD_LETTERS,
    SELECT_OFFSET,
    UPSERT_DEAD_LETTER,
    UPSERT_OFFSET,
    decode_dead_letter,
    incident_page,
    incidents_query,
    near_query_params,
    nearest_within,
)
from detector.store.sqlite_queries import (
    INSERT_EVENT,
    SELECT_INCIDENT,
    UPSERT_INCIDENT,
    events_by_id,
    filter_sql,
    translate_error,
)
from detector.store.sqlite_schema import immediate_transaction, migrate
from detector.types import CaseState, EventType, Evidence, EvidenceKind, IncidentEvent

log = logging.getLogger(__name__)

DB_FILENAME = "incidents.db"
CLOSE_WAIT_S = 30.0  # how long close() waits for reads and writes under way
ID_SLICE = 500  # event ids looked up per statement (SQLite allows 32766 parameters at most, old builds 999)


@register_store("sqlite")
class SqliteStore(IncidentStore):
    """The embedded default store; see ``IncidentStore`` for the contract of each method."""

    def __init__(
        self,
        data_dir: Path,
        busy_timeout_s: float = 10.0,
        evidence_spot_checks: int = 16,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._data_dir = data_dir
        self._db_path = data_dir / DB_FILENAME
        self._busy_timeout_s = busy_timeout_s
        self._evidence_spot_checks = evidence_spot_checks
        self._clock = clock
        self._closed = False
        self._inflight = 0  # connection uses under way (see _translated)
        self._inflight_changed = threading.Condition()
        self._write_lock = threading.RLock()
        self._readers_lock = threading.Lock()
        self._readers: list[sqlite3.Connection] = []
        self._local = threading.local()
        data_dir.mkdir(parents=True, exist_ok=True)
        self._files = EvidenceFiles(data_dir)
        self._files.sweep_staged()
        with self._translated("opening the store"):
            self._writer = self._connect()
            try:
                mode = self._writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode != "wal":
                    raise StoreError(f"{self._db_path} cannot use WAL mode (got {mode!r}); use a local disk")
                migrate(self._writer, self._db_path, self._clock())
                last = self._read_last_sequence(self._writer)
            except BaseException:
                self._writer.close()
                raise
        super().__init__(last)

    @classmethod
    def from_config(cls, config: StoreSettings) -> SqliteStore:
        return cls(config.data_dir, config.busy_timeout_s, config.integrity_spot_checks)

    # -- connections and errors -----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._db_path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            with self._readers_lock:
                if self._closed:
                    raise StoreClosed("the store is closed")
                conn = self._connect()
                conn.execute("PRAGMA query_only = ON")
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        """Every use of a connection runs inside this: SQLite errors become store errors, and ``close`` waits
        for the uses in flight (closing a connection another thread is reading from can crash the process)."""
        with self._inflight_changed:
            if self._closed:
                raise StoreClosed(f"{action}: the store is closed")
            self._inflight += 1
        try:
            yield
        except sqlite3.ProgrammingError as exc:
            if self._closed:
                raise StoreClosed(f"{action}: the store was closed meanwhile") from exc
            raise
        except sqlite3.Error as exc:
            raise translate_error(exc, action, self._db_path) from exc
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFull(f"{action}: disk full under {self._data_dir}") from exc
            raise
        finally:
            with self._inflight_changed:
                self._inflight -= 1
                self._inflight_changed.notify_all()

    @contextmanager
    def _transaction(self, action: str) -> Iterator[sqlite3.Connection]:
        """One write transaction under the write lock, with SQLite errors turned into store errors."""
        with self._write_lock, self._translated(action), immediate_transaction(self._writer) as conn:
            yield conn

    @staticmethod
    def _read_last_sequence(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT last_sequence FROM log_state WHERE id = 1").fetchone()[0])

    # -- event log ------------------------------------------------------------------------------------------

    def append(self, events: Sequence[IncidentEvent]) -> list[IncidentEvent]:
        if not events:
            return []
        for event in events:
            check_appendable(event)
        recorded_ts = self._clock()
        with self._transaction("appending events") as conn:
            last = self._read_last_sequence(conn)
            ids = [event.event_id for event in events]
            existing: list[sqlite3.Row] = []
            for start in range(0, len(ids), ID_SLICE):  # a writer's backlog can hold more ids than one statement
                some_ids = ids[start : start + ID_SLICE]
                existing += conn.execute(events_by_id(len(some_ids)), some_ids).fetchall()
            retried = already_stored(events, (decode_event_row(row) for row in existing))
            stored, new = numbered_on(events, last, retried)
            for event in new:
                row = event_to_row(event, recorded_ts)
                try:
                    conn.execute(INSERT_EVENT, row)
                except sqlite3.IntegrityError as exc:
                    if "events.event_id" not in str(exc):
                        raise
                    raise DuplicateEvent(f"event {event.event_id} is already in the log") from exc
                current = None
                if event.type is EventType.FEEDBACK:
                    found = conn.execute(
                        "SELECT state FROM incidents WHERE incident_id = ?", (event.incident_id,)
                    ).fetchone()
                    current = None if found is None else IncidentState(found[0])
                row.update(incident_columns(event, current))
                conn.execute(UPSERT_INCIDENT, row)
            if new:
                last = new[-1].sequence
                conn.execute("UPDATE log_state SET last_sequence = ? WHERE id = 1", (last,))
        if new:
            self._appends.publish(last)
        return stored

    def read_events(
        self, after_sequence: int, limit: int, event_filter: EventFilter = ANY_EVENT
    ) -> list[IncidentEvent]:
        if limit < 1:
            raise InvalidQuery(f"limit must be at least 1, got {limit}")
        where, params = filter_sql(event_filter, "")
        sql = f"SELECT * FROM events WHERE sequence > ?{where} ORDER BY sequence LIMIT ?"
        with self._translated("reading events"):
            rows = self._reader().execute(sql, (after_sequence, *params, limit)).fetchall()
            return [decode_event_row(row) for row in rows]

    def last_sequence(self) -> int:
        with self._translated("reading the last sequence"):
            return self._read_last_sequence(self._reader())

    # -- consumers ------------------------------------------------------------------------------------------

    def commit_offset(self, consumer: str, sequence: int) -> int:
        if not consumer:
            raise InvalidQuery("consumer name must not be empty")
        if sequence < 0:
            raise InvalidQuery(f"sequence must not be negative, got {sequence}")
        with self._transaction("committing an offset") as conn:
            last = self._read_last_sequence(conn)
            if sequence > last:
                raise OffsetAheadOfLog(
                    f"consumer {consumer!r} acknowledged sequence {sequence}, but the log ends at {last}"
                )
            conn.execute(UPSERT_OFFSET, (consumer, sequence, self._clock()))
            return int(conn.execute(SELECT_OFFSET, (consumer,)).fetchone()[0])

    def get_offset(self, consumer: str) -> int:
        with self._translated("reading an offset"):
            row = self._reader().execute(SELECT_OFFSET, (consumer,)).fetchone()
            return 0 if row is None else int(row[0])

    # -- dead letters ---------------------------------------------------------------------------------------

    def add_dead_letter(self, consumer: str, event_sequence: int, event_id: str, reason: str, attempts: int) -> None:
        if not consumer:
            raise InvalidQuery("consumer name must not be empty")
        with self._transaction("recording a dead letter") as conn:
            conn.execute(UPSERT_DEAD_LETTER, (consumer, event_sequence, event_id, reason, attempts, self._clock()))

    def dead_letters(self, consumer: str) -> list[DeadLetter]:
        with self._translated("reading dead letters"):
            rows = self._reader().execute(SELECT_DEAD_LETTERS, (consumer,)).fetchall()
        return [decode_dead_letter(row) for row in rows]

    def remove_dead_letter(self, consumer: str, event_sequence: int) -> bool:
        with self._transaction("removing a dead letter") as conn:
            return conn.execute(DELETE_DEAD_LETTER, (consumer, event_sequence)).rowcount > 0

    # -- incidents ------------------------------------------------------------------------------------------

    def get_incident(self, incident_id: str) -> IncidentRecord | None:
        with self._translated("reading an incident"):
            row = self._reader().execute(f"{SELECT_INCIDENT} WHERE i.incident_id = ?", (incident_id,)).fetchone()
            return None if row is None else decode_incident_row(row)

    def list_incidents(
        self,
        event_filter: EventFilter = ANY_EVENT,
        state: IncidentState | None = None,
        page_size: int = 100,
        page_token: str = "",
    ) -> IncidentPage:
        sql, params = incidents_query(event_filter, state, page_size, page_token)
        with self._translated("listing incidents"):
            return incident_page(self._reader().execute(sql, params).fetchall(), page_size)

    def open_incidents(self) -> list[IncidentRecord]:
        with self._translated("reading open incidents"):
            rows = self._reader().execute(OPEN_INCIDENTS).fetchall()
            return [decode_incident_row(row) for row in rows]

    def open_incidents_near(self, category: str, lat: float, lon: float, radius_m: float) -> list[IncidentRecord]:
        params = near_query_params(category, lat, lon, radius_m)
        with self._translated("reading open incidents nearby"):
            return nearest_within(self._reader().execute(OPEN_INCIDENTS_NEAR, params).fetchall(), lat, lon, radius_m)

    def incidents_with_case_state(self, state: CaseState, updated_after_ts: float) -> list[IncidentRecord]:
        with self._translated("reading incidents by case state"):
            rows = (
                self._reader().execute(INCIDENTS_WITH_CASE_STATE, (CaseState(state).value, updated_after_ts)).fetchall()
            )
            return [decode_incident_row(row) for row in rows]

    # -- evidence -------------------------------------------------------------------------------------------

    def put_evidence(self, kind: EvidenceKind, data: bytes) -> Evidence:
        kind = check_kind(kind)  # text from an untyped caller becomes the enum, or InvalidQuery
        sha256 = hashlib.sha256(data).hexdigest()
        relative_path = self._files.relative_path(sha256, kind)
        # The slow part (write + fsync) happens outside the write lock; only the rename and the index row
        # are under it, so retention never deletes a file between its rename and its row.
        with self._translated("storing evidence"):
            staged = self._files.stage(data)
        try:
            with self._transaction("indexing evidence") as conn:
                self._files.publish(staged, relative_path)
                conn.execute(
                    "INSERT INTO evidence (sha256, kind, size_bytes, created_ts, path) "
                    "VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (sha256) DO UPDATE SET created_ts = excluded.created_ts",
                    (sha256, kind.value, len(data), self._clock(), relative_path),
                )
        finally:
            self._files.discard(staged)
        return Evidence(kind=kind, sha256=sha256, uri=relative_path)

    def open_evidence(self, sha256: str) -> BinaryIO:
        check_sha256(sha256)
        with self._translated("reading evidence"):
            row = self._reader().execute("SELECT path, size_bytes FROM evidence WHERE sha256 = ?", (sha256,)).fetchone()
        if row is None:
            raise EvidenceMissing(f"no evidence {sha256}: never stored, or pruned by retention")
        return self._files.read_verified(sha256, row["path"], int(row["size_bytes"]))

    # -- maintenance ----------------------------------------------------------------------------------------

    def apply_retention(self, max_age_s: float | None, max_bytes: int | None) -> RetentionReport:
        now = self._clock()
        incidents_pruned = 0
        # The write lock spans the transaction and the unlinks, so put_evidence cannot re-index a file that is
        # about to go. Files go only after their rows are committed away: a crash in between leaves an
        # unindexed file (wasted space), never an index row without its file.
        with self._write_lock:
            with self._transaction("applying retention") as conn:
                protected = protected_evidence(conn.execute(EVIDENCE_OF_OPEN_INCIDENTS))
                rows = conn.execute(
                    "SELECT sha256, path, size_bytes, created_ts FROM evidence ORDER BY created_ts, sha256"
                ).fetchall()
                pruned, total_bytes = evidence_to_prune(rows, protected, now, max_age_s, max_bytes)
                doomed = {row["sha256"]: (row["path"], int(row["size_bytes"])) for row in pruned}
                conn.executemany("DELETE FROM evidence WHERE sha256 = ?", [(sha,) for sha in doomed])
                if max_age_s is not None:
                    incidents_pruned = conn.execute(
                        "DELETE FROM incidents WHERE state = 'cleared' AND updated_ts < ?", (now - max_age_s,)
                    ).rowcount
            for path, _size in doomed.values():
                self._files.remove(path)
        return RetentionReport(
            evidence_deleted=len(doomed),
            evidence_bytes_freed=sum(size for _path, size in doomed.values()),
            evidence_bytes_kept=total_bytes,
            incidents_pruned=incidents_pruned,
        )

    def integrity_check(self) -> list[str]:
        problems: list[str] = []
        with self._translated("checking integrity"):
            conn = self._reader()
            try:
                problems += [f"database: {row[0]}" for row in conn.execute("PRAGMA quick_check") if row[0] != "ok"]
                count, first, last = conn.execute(EVENT_LOG_SPAN).fetchone()
                problems += event_log_problems(count, first, last, self._read_last_sequence(conn))
                samples = conn.execute(
                    "SELECT sha256, path, size_bytes FROM evidence ORDER BY RANDOM() LIMIT ?",
                    (self._evidence_spot_checks,),
                ).fetchall()
            except sqlite3.DatabaseError as exc:
                problems.append(f"database: {exc}")
                return problems
        for row in samples:
            try:
                self._files.read_verified(row["sha256"], row["path"], int(row["size_bytes"]))
            except StoreError as exc:
                problems.append(f"evidence: {exc}")
        return problems

    def schema_version(self) -> int:
        with self._translated("reading the schema version"):
            return int(self._reader().execute("SELECT version FROM schema_version").fetchone()[0])

    def close(self) -> None:
        with self._inflight_changed:
            if self._closed:
                return
            self._closed = True  # no new use starts; the ones under way finish first
            if not self._inflight_changed.wait_for(lambda: self._inflight == 0, timeout=CLOSE_WAIT_S):
                log.warning("closing the store while %d reads or writes are still running", self._inflight)
        with self._write_lock, self._readers_lock:
            readers, self._readers = self._readers, []
            for conn in readers:
                conn.close()
            # The last connection to close checkpoints the WAL into the main file.
            self._writer.close()
        self._appends.close()
