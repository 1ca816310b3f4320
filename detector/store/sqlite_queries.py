"""SQL of the SQLite backend: statements, filter clauses, and what SQLite errors mean to the store."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from detector.store.codec import EVENT_COLUMNS
from detector.store.errors import StoreCorrupt, StoreError, StoreFull
from detector.store.model import EventFilter

_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_NOTADB = 26

INSERT_EVENT = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join(':' + c for c in EVENT_COLUMNS)})"
# After a closing verdict (RESOLVED, REJECTED) the incident stays cleared: an UPDATED the rules raised before their
# feedback watcher saw the verdict is logged, but does not reopen it.
UPSERT_INCIDENT = """
INSERT INTO incidents (incident_id, state, category, case_code, label, severity, severity_rank, source_id,
    first_seen_ts, last_seen_ts, box, zone_id, location, last_sequence, opened_count, updated_ts,
    case_state, case_id, case_updated_ts, lat, lon)
VALUES (:incident_id, :state, :category, :case_code, :label, :severity, :severity_rank, :source_id,
    :first_seen_ts, :last_seen_ts, :box, :zone_id, :location, :sequence, :opened, :recorded_ts,
    :case_state, :case_id, CASE WHEN :case_state = '' THEN NULL ELSE :recorded_ts END, :lat, :lon)
ON CONFLICT (incident_id) DO UPDATE SET
    state = CASE WHEN incidents.case_state IN ('RESOLVED', 'REJECTED') AND excluded.case_state = ''
        THEN incidents.state ELSE excluded.state END,
    category = excluded.category, case_code = excluded.case_code,
    label = excluded.label, severity = excluded.severity, severity_rank = excluded.severity_rank,
    source_id = excluded.source_id,
    first_seen_ts = excluded.first_seen_ts, last_seen_ts = excluded.last_seen_ts, box = excluded.box,
    zone_id = excluded.zone_id, location = excluded.location, last_sequence = excluded.last_sequence,
    opened_count = incidents.opened_count + excluded.opened_count, updated_ts = excluded.updated_ts,
    case_state = CASE WHEN excluded.case_state = '' THEN incidents.case_state ELSE excluded.case_state END,
    case_id = CASE WHEN excluded.case_id = '' THEN incidents.case_id ELSE excluded.case_id END,
    case_updated_ts = COALESCE(excluded.case_updated_ts, incidents.case_updated_ts),
    lat = excluded.lat, lon = excluded.lon
"""


def events_by_id(count: int) -> str:
    """The stored events with any of ``count`` event_ids (given as parameters)."""
    return f"SELECT * FROM events WHERE event_id IN ({', '.join('?' * count)})"


SELECT_INCIDENT = """
SELECT i.incident_no, i.state AS incident_state, i.opened_count, i.case_state AS incident_case_state,
    i.case_id AS incident_case_id, i.case_updated_ts AS incident_case_updated_ts, e.*
FROM incidents AS i JOIN events AS e ON e.sequence = i.last_sequence
"""


def filter_sql(event_filter: EventFilter, prefix: str) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in (("category", event_filter.categories), ("source_id", event_filter.source_ids)):
        if values:
            clauses.append(f"{prefix}{column} IN ({', '.join('?' * len(values))})")
            params.extend(sorted(values))
    if event_filter.min_severity_rank is not None:
        clauses.append(f"{prefix}severity_rank >= ?")
        params.append(event_filter.min_severity_rank)
    return "".join(f" AND {clause}" for clause in clauses), params


def translate_error(exc: sqlite3.Error, action: str, db_path: Path) -> StoreError:
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    text = str(exc).lower()
    if code == _SQLITE_FULL or "disk is full" in text:
        return StoreFull(f"{action}: disk full under {db_path.parent}; free space or lower retention limits")
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "malformed" in text or "not a database" in text:
        return StoreCorrupt(f"{action}: {db_path} is damaged ({exc}); restore a backup or move it aside")
    return StoreError(f"{action}: {exc}")
