"""SQL of the PostgreSQL backend, and what PostgreSQL errors mean to the store.

The statements are SQLite's (``sqlite_queries``, ``sql_common``) with psycopg's placeholders: both backends
apply an event to its incident, move an offset or page through incidents by the same SQL, so they cannot drift
apart.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from detector.store import sql_common, sqlite_queries
from detector.store.errors import StoreCorrupt, StoreError, StoreFull
from detector.store.model import EventFilter, IncidentState


def pyformat(sqlite_sql: str) -> str:
    """SQLite's ``:name`` and ``?`` placeholders as psycopg's ``%(name)s`` and ``%s``."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sqlite_sql).replace("?", "%s")


INSERT_EVENT = pyformat(sqlite_queries.INSERT_EVENT)
UPSERT_INCIDENT = pyformat(sqlite_queries.UPSERT_INCIDENT)
SELECT_INCIDENT = sqlite_queries.SELECT_INCIDENT
UPSERT_OFFSET = pyformat(sql_common.UPSERT_OFFSET)
SELECT_OFFSET = pyformat(sql_common.SELECT_OFFSET)
UPSERT_DEAD_LETTER = pyformat(sql_common.UPSERT_DEAD_LETTER)
SELECT_DEAD_LETTERS = pyformat(sql_common.SELECT_DEAD_LETTERS)
DELETE_DEAD_LETTER = pyformat(sql_common.DELETE_DEAD_LETTER)
OPEN_INCIDENTS = sql_common.OPEN_INCIDENTS
INCIDENTS_WITH_CASE_STATE = pyformat(sql_common.INCIDENTS_WITH_CASE_STATE)
OPEN_INCIDENTS_NEAR = pyformat(sql_common.OPEN_INCIDENTS_NEAR)
EVENT_ID_UNIQUE = "events_event_id_key"
EVENTS_BY_ID = "SELECT * FROM events WHERE event_id = ANY(%s)"

# The transaction that holds this row lock is the only one appending: sequences commit in order, so a reader
# never sees sequence N+1 before N.
LOCK_LOG = "SELECT last_sequence FROM log_state WHERE id = 1 FOR UPDATE"
READ_LOG_END = "SELECT last_sequence FROM log_state WHERE id = 1"


def filter_sql(event_filter: EventFilter, prefix: str) -> tuple[str, list[Any]]:
    where, params = sqlite_queries.filter_sql(event_filter, prefix)
    return pyformat(where), params


def incidents_query(
    event_filter: EventFilter, state: IncidentState | None, page_size: int, page_token: str
) -> tuple[str, list[Any]]:
    query, params = sql_common.incidents_query(event_filter, state, page_size, page_token)
    return pyformat(query), params


def channel_name(schema: str) -> str:
    """The LISTEN/NOTIFY channel of the log in ``schema``: channels are per database, so two stores in two
    schemas of one database must not wake each other. At most 63 bytes (PostgreSQL's identifier limit)."""
    name = f"streetwatch_log.{schema}"
    if len(name.encode()) <= 63:
        return name
    return f"streetwatch_log.{hashlib.sha256(schema.encode()).hexdigest()[:40]}"


def translate_error(exc: psycopg.Error, action: str) -> StoreError:
    if isinstance(exc, pg_errors.DiskFull):
        return StoreFull(f"{action}: the PostgreSQL server's disk is full; free space or lower retention limits")
    if isinstance(exc, pg_errors.DataCorrupted | pg_errors.IndexCorrupted):
        return StoreCorrupt(f"{action}: the database is damaged ({exc}); restore a backup")
    if isinstance(exc, pg_errors.LockNotAvailable):
        return StoreError(f"{action}: another writer held the log longer than store.busy_timeout_s ({exc})")
    if isinstance(exc, psycopg.OperationalError):
        return StoreError(f"{action}: PostgreSQL is unreachable or refused the connection: {exc}")
    return StoreError(f"{action}: {exc}")
