"""PostgreSQL backend: one log shared by several detector processes (replicas), evidence in the database.

Appends from every process are serialized by a row lock on ``log_state`` taken inside the append transaction,
so sequences are gap-free and commit in order: a reader never sees a gap that is filled later. Each append
also sends a NOTIFY, which a listener thread (``postgres_listen``) turns into wake-ups for followers in every
process. Evidence bytes are a ``bytea`` column, verified against their sha256 on every read.

Example::

    store = open_store("postgresql://streetwatch@db.internal/streetwatch")
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import BinaryIO

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from detector.store.base import IncidentStore, register_store
from detector.store.blobs import check_kind, check_sha256, evidence_uri, verified
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
from detector.store.postgres_listen import LogListener
from detector.store.postgres_queries import (
    DELETE_DEAD_LETTER,
    EVENT_ID_UNIQUE,
    EVENTS_BY_ID,
    INCIDENTS_WITH_CASE_STATE,
    INSERT_EVENT,
    LOCK_LOG,
    OPEN_INCIDENTS,
    OPEN_INCIDENTS_NEAR,
    READ_LOG_END,
    SELECT_DEAD_LETTERS,
    SELECT_INCIDENT,
    SELECT_OFFSET,
    UPSERT_DEAD_LETTER,
    UPSERT_INCIDENT,
    UPSERT_OFFSET,
    channel_name,
    filter_sql,
    incidents_query,
    translate_error,
)
from detector.store.postgres_schema import migrate, schema_version
from detector.store.sql_common import (
    EVENT_LOG_SPAN,
    decode_dead_letter,
    incident_page,
    near_query_params,
    nearest_within,
)
from detector.types import CaseState, EventType, Evidence, EvidenceKind, IncidentEvent

Connection = psycopg.Connection[DictRow]


@register_store("postgres")
class PostgresStore(IncidentStore):
    """The shared store for several replicas; see ``IncidentStore`` for the contract of each method.

    ``url`` is a libpq URL; its database and the first schema on its search_path hold the tables.
    """

    def __init__(
        self,
        url: str,
        pool_max_size: int = 8,
        busy_timeout_s: float = 10.0,
        evidence_spot_checks: int = 16,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._busy_timeout_s = busy_timeout_s
        self._evidence_spot_checks = evidence_spot_checks
        self._clock = clock
        self._closed = False
        self._close_lock = threading.Lock()
        self._pool: ConnectionPool[Connection] = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_max_size,
            connection_class=psycopg.Connection[DictRow],
            kwargs={"autocommit": True, "row_factory": dict_row},
            configure=self._configure,
            # A connection the server dropped while it sat in the pool (a restart, a failover) is replaced on
            # checkout, so the first read after the database is back does not fail on it; one round trip each.
            check=ConnectionPool.check_connection,
            timeout=busy_timeout_s,
            open=False,
            name="streetwatch-store",
        )
        try:
            with self._translated("opening the store"):
                # One plain connection first: an unreachable server fails here at once, with libpq's reason,
                # instead of after the pool's retries.
                with psycopg.connect(
                    url, autocommit=True, row_factory=dict_row, connect_timeout=max(1, round(busy_timeout_s))
                ) as conn:
                    migrate(conn, clock())
                    schema = _one(conn.execute("SELECT current_schema() AS schema"))["schema"]
                    last = self._read_last_sequence(conn)
                self._pool.open(wait=True, timeout=busy_timeout_s)
                super().__init__(last)
                self._channel = channel_name(schema)
                self._listener = LogListener(url, self._channel, self._appends)
        except BaseException:
            self._pool.close()
            raise

    @classmethod
    def from_config(cls, config: StoreSettings) -> PostgresStore:
        return cls(config.url, config.pool_max_size, config.busy_timeout_s, config.integrity_spot_checks)

    # -- connections and errors -----------------------------------------------------------------------------

    def _configure(self, conn: Connection) -> None:
        # A writer waits this long for the log lock held by another writer, then fails instead of hanging.
        conn.execute(f"SET lock_timeout = {max(1, round(self._busy_timeout_s * 1000))}")

    @contextmanager
    def _translated(self, action: str) -> Iterator[None]:
        if self._closed:
            raise StoreClosed(f"{action}: the store is closed")
        try:
            yield
        except PoolClosed as exc:
            raise StoreClosed(f"{action}: the store was closed meanwhile") from exc
        except PoolTimeout as exc:
            raise StoreError(f"{action}: no database connection within {self._busy_timeout_s} s: {exc}") from exc
        except psycopg.Error as exc:
            raise translate_error(exc, action) from exc

    @contextmanager
    def _connection(self, action: str) -> Iterator[Connection]:
        """A pooled connection in autocommit mode: each statement sees every commit made before it."""
        with self._translated(action), self._pool.connection() as conn:
            yield conn

    @contextmanager
    def _transaction(self, action: str) -> Iterator[Connection]:
        with self._connection(action) as conn, conn.transaction():
            yield conn

    @staticmethod
    def _read_last_sequence(conn: Connection) -> int:
        return int(_one(conn.execute(READ_LOG_END))["last_sequence"])

    # -- event log ------------------------------------------------------------------------------------------

    def append(self, events: Sequence[IncidentEvent]) -> list[IncidentEvent]:
        if not events:
            return []
        for event in events:
            check_appendable(event)
        recorded_ts = self._clock()
        with self._transaction("appending events") as conn:
            last = int(_one(conn.execute(LOCK_LOG))["last_sequence"])
            existing = conn.execute(EVENTS_BY_ID, ([event.event_id for event in events],)).fetchall()
            retried = already_stored(events, (decode_event_row(row) for row in existing))
            stored, new = numbered_on(events, last, retried)
            for event in new:
                row = event_to_row(event, recorded_ts)
                try:
                    conn.execute(INSERT_EVENT, row)
                except pg_errors.UniqueViolation as exc:
                    if exc.diag.constraint_name != EVENT_ID_UNIQUE:
                        raise
                    raise DuplicateEvent(f"event {event.event_id} is already in the log") from exc
                current = None
                if event.type is EventType.FEEDBACK:
                    found = conn.execute(
                        "SELECT state FROM incidents WHERE incident_id = %s", (event.incident_id,)
                    ).fetchone()
                    current = None if found is None else IncidentState(found["state"])
                row.update(incident_columns(event, current))
                conn.execute(UPSERT_INCIDENT, row)
            if new:
                last = new[-1].sequence
                conn.execute("UPDATE log_state SET last_sequence = %s WHERE id = 1", (last,))
                conn.execute("SELECT pg_notify(%s, %s)", (self._channel, str(last)))
        if new:
            self._appends.publish(last)
        return stored

    def read_events(
        self, after_sequence: int, limit: int, event_filter: EventFilter = ANY_EVENT
    ) -> list[IncidentEvent]:
        if limit < 1:
            raise InvalidQuery(f"limit must be at least 1, got {limit}")
        where, params = filter_sql(event_filter, "")
        query = f"SELECT * FROM events WHERE sequence > %s{where} ORDER BY sequence LIMIT %s"
        with self._connection("reading events") as conn:
            rows = conn.execute(query, (after_sequence, *params, limit)).fetchall()
        return [decode_event_row(row) for row in rows]

    def last_sequence(self) -> int:
        with self._connection("reading the last sequence") as conn:
            return self._read_last_sequence(conn)

    # -- consumers ------------------------------------------------------------------------------------------

    def commit_offset(self, consumer: str, sequence: int) -> int:
        if not consumer:
            raise InvalidQuery("consumer name must not be empty")
        if sequence < 0:
            raise InvalidQuery(f"sequence must not be negative, got {sequence}")
        with self._transaction("committing an offset") as conn:
            last = self._read_last_sequence(conn)  # the log only grows: a sequence within it stays within it
            if sequence > last:
                raise OffsetAheadOfLog(
                    f"consumer {consumer!r} acknowledged sequence {sequence}, but the log ends at {last}"
                )
            conn.execute(UPSERT_OFFSET, (consumer, sequence, self._clock()))
            return int(_one(conn.execute(SELECT_OFFSET, (consumer,)))["sequence"])

    def get_offset(self, consumer: str) -> int:
        with self._connection("reading an offset") as conn:
            row = conn.execute(SELECT_OFFSET, (consumer,)).fetchone()
        return 0 if row is None else int(row["sequence"])

    # -- dead letters ---------------------------------------------------------------------------------------

    def add_dead_letter(self, consumer: str, event_sequence: int, event_id: str, reason: str, attempts: int) -> None:
        if not consumer:
            raise InvalidQuery("consumer name must not be empty")
        with self._connection("recording a dead letter") as conn:
            conn.execute(UPSERT_DEAD_LETTER, (consumer, event_sequence, event_id, reason, attempts, self._clock()))

    def dead_letters(self, consumer: str) -> list[DeadLetter]:
        with self._connection("reading dead letters") as conn:
            rows = conn.execute(SELECT_DEAD_LETTERS, (consumer,)).fetchall()
        return [decode_dead_letter(row) for row in rows]

    def remove_dead_letter(self, consumer: str, event_sequence: int) -> bool:
        with self._connection("removing a dead letter") as conn:
            return conn.execute(DELETE_DEAD_LETTER, (consumer, event_sequence)).rowcount > 0

    # -- incidents ------------------------------------------------------------------------------------------

    def get_incident(self, incident_id: str) -> IncidentRecord | None:
        with self._connection("reading an incident") as conn:
            row = conn.execute(f"{SELECT_INCIDENT} WHERE i.incident_id = %s", (incident_id,)).fetchone()
        return None if row is None else decode_incident_row(row)

    def list_incidents(
        self,
        event_filter: EventFilter = ANY_EVENT,
        state: IncidentState | None = None,
        page_size: int = 100,
        page_token: str = "",
    ) -> IncidentPage:
        query, params = incidents_query(event_filter, state, page_size, page_token)
        with self._connection("listing incidents") as conn:
            return incident_page(conn.execute(query, params).fetchall(), page_size)

    def open_incidents(self) -> list[IncidentRecord]:
        with self._connection("reading open incidents") as conn:
            rows = conn.execute(OPEN_INCIDENTS).fetchall()
        return [decode_incident_row(row) for row in rows]

    def open_incidents_near(self, category: str, lat: float, lon: float, radius_m: float) -> list[IncidentRecord]:
        params = near_query_params(category, lat, lon, radius_m)
        with self._connection("reading open incidents nearby") as conn:
            rows = conn.execute(OPEN_INCIDENTS_NEAR, params).fetchall()
        return nearest_within(rows, lat, lon, radius_m)

    def incidents_with_case_state(self, state: CaseState, updated_after_ts: float) -> list[IncidentRecord]:
        with self._connection("reading incidents by case state") as conn:
            rows = conn.execute(INCIDENTS_WITH_CASE_STATE, (CaseState(state).value, updated_after_ts)).fetchall()
        return [decode_incident_row(row) for row in rows]

    # -- evidence -------------------------------------------------------------------------------------------

    def put_evidence(self, kind: EvidenceKind, data: bytes) -> Evidence:
        kind = check_kind(kind)  # text from an untyped caller becomes the enum, or InvalidQuery
        sha256 = hashlib.sha256(data).hexdigest()
        # Storing the same bytes again rewrites them too, which repairs a damaged copy as SQLite's files do.
        with self._connection("storing evidence") as conn:
            conn.execute(
                "INSERT INTO evidence (sha256, kind, size_bytes, created_ts, data) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (sha256) DO UPDATE SET created_ts = excluded.created_ts, "
                "size_bytes = excluded.size_bytes, data = excluded.data",
                (sha256, kind.value, len(data), self._clock(), data),
            )
        return Evidence(kind=kind, sha256=sha256, uri=evidence_uri(sha256, kind))

    def open_evidence(self, sha256: str) -> BinaryIO:
        check_sha256(sha256)
        with self._connection("reading evidence") as conn:
            row = conn.execute("SELECT size_bytes, data FROM evidence WHERE sha256 = %s", (sha256,)).fetchone()
        if row is None:
            raise EvidenceMissing(f"no evidence {sha256}: never stored, or pruned by retention")
        return verified(sha256, bytes(row["data"]), int(row["size_bytes"]), "in the database")

    # -- maintenance ----------------------------------------------------------------------------------------

    def apply_retention(self, max_age_s: float | None, max_bytes: int | None) -> RetentionReport:
        now = self._clock()
        incidents_pruned = 0
        with self._transaction("applying retention") as conn:
            # Holding the log lock keeps appends out, so the evidence of open incidents cannot change meanwhile.
            conn.execute(LOCK_LOG)
            protected = protected_evidence(conn.execute(EVIDENCE_OF_OPEN_INCIDENTS))
            rows = conn.execute(
                "SELECT sha256, size_bytes, created_ts FROM evidence ORDER BY created_ts, sha256"
            ).fetchall()
            pruned, _ = evidence_to_prune(rows, protected, now, max_age_s, max_bytes)
            # A row stored again since it was read (newer created_ts) stays: put_evidence takes no log lock.
            deleted = conn.execute(
                "DELETE FROM evidence WHERE (sha256, created_ts) IN "
                "(SELECT * FROM unnest(%s::text[], %s::double precision[])) RETURNING size_bytes",
                ([row["sha256"] for row in pruned], [row["created_ts"] for row in pruned]),
            ).fetchall()
            kept = _one(conn.execute("SELECT COALESCE(SUM(size_bytes), 0) AS kept FROM evidence"))["kept"]
            if max_age_s is not None:
                incidents_pruned = conn.execute(
                    "DELETE FROM incidents WHERE state = 'cleared' AND updated_ts < %s", (now - max_age_s,)
                ).rowcount
        return RetentionReport(
            evidence_deleted=len(deleted),
            evidence_bytes_freed=sum(int(row["size_bytes"]) for row in deleted),
            evidence_bytes_kept=int(kept),
            incidents_pruned=incidents_pruned,
        )

    def integrity_check(self) -> list[str]:
        with self._connection("checking integrity") as conn:
            try:
                span = _one(conn.execute(EVENT_LOG_SPAN))
                recorded_last = self._read_last_sequence(conn)
                samples = conn.execute(
                    "SELECT sha256, size_bytes, data FROM evidence ORDER BY random() LIMIT %s",
                    (self._evidence_spot_checks,),
                ).fetchall()
            except psycopg.DatabaseError as exc:
                return [f"database: {exc}"]
        problems = event_log_problems(span["count"], span["first"], span["last"], recorded_last)
        for row in samples:
            try:
                verified(row["sha256"], bytes(row["data"]), int(row["size_bytes"]), "in the database")
            except StoreError as exc:
                problems.append(f"evidence: {exc}")
        return problems

    def schema_version(self) -> int:
        with self._connection("reading the schema version") as conn:
            return schema_version(conn)

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._listener.stop()
        self._pool.close()
        self._appends.close()


def _one(cursor: psycopg.Cursor[DictRow]) -> DictRow:
    """The single row a query always returns (an aggregate, the one-row log_state)."""
    row = cursor.fetchone()
    if row is None:
        raise StoreError("the database lost a row it always has (log_state); was the schema altered by hand?")
    return row
