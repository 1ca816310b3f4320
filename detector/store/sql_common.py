"""SQL both backends run, written with SQLite's placeholders (``postgres_queries.pyformat`` converts them), and
how their result rows become store values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from detector.geo.enu import offset_m
from detector.store.codec import Row, decode_incident_row, decode_page_token, encode_page_token
from detector.store.errors import InvalidQuery
from detector.store.model import DeadLetter, EventFilter, IncidentPage, IncidentRecord, IncidentState
from detector.store.sqlite_queries import SELECT_INCIDENT, filter_sql

MAX_PAGE_SIZE = 1000

# Offsets only move forward: an older acknowledgement leaves the newer offset as it is.
UPSERT_OFFSET = (
    "INSERT INTO consumer_offsets (consumer, sequence, updated_ts) VALUES (?, ?, ?) "
    "ON CONFLICT (consumer) DO UPDATE SET sequence = excluded.sequence, updated_ts = excluded.updated_ts "
    "WHERE excluded.sequence > consumer_offsets.sequence"
)
SELECT_OFFSET = "SELECT sequence FROM consumer_offsets WHERE consumer = ?"
UPSERT_DEAD_LETTER = (
    "INSERT INTO dead_letters (consumer, event_sequence, event_id, reason, attempts, created_ts) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (consumer, event_sequence) DO UPDATE SET event_id = excluded.event_id, "
    "reason = excluded.reason, attempts = excluded.attempts, created_ts = excluded.created_ts"
)
SELECT_DEAD_LETTERS = (
    "SELECT consumer, event_sequence, event_id, reason, attempts, created_ts FROM dead_letters "
    "WHERE consumer = ? ORDER BY event_sequence"
)
DELETE_DEAD_LETTER = "DELETE FROM dead_letters WHERE consumer = ? AND event_sequence = ?"
EVENT_LOG_SPAN = "SELECT COUNT(*) AS count, MIN(sequence) AS first, MAX(sequence) AS last FROM events"
OPEN_INCIDENTS = f"{SELECT_INCIDENT} WHERE i.state = 'open' ORDER BY i.incident_no"
INCIDENTS_WITH_CASE_STATE = (
    f"{SELECT_INCIDENT} WHERE i.case_state = ? AND i.case_updated_ts > ? ORDER BY i.case_updated_ts"
)
# A range scan of the incidents_open_near index: category, then a lat/lon box that holds the circle.
OPEN_INCIDENTS_NEAR = (
    f"{SELECT_INCIDENT} WHERE i.state = 'open' AND i.category = ? AND i.lat BETWEEN ? AND ? AND i.lon BETWEEN ? AND ?"
)
_METRES_PER_DEGREE_LAT = 111_132.0  # the shortest degree of latitude is 110_574 m: this box is a little larger
_MAX_RADIUS_M = 100_000.0


def near_query_params(category: str, lat: float, lon: float, radius_m: float) -> list[Any]:
    """``OPEN_INCIDENTS_NEAR``'s parameters: a box around the circle of ``radius_m`` (a little larger, never
    smaller). Raises ``InvalidQuery`` for a radius that is not positive or too large for a flat-earth box."""
    if not 0.0 < radius_m <= _MAX_RADIUS_M:
        raise InvalidQuery(f"radius_m must be above 0 and at most {_MAX_RADIUS_M:.0f}, got {radius_m}")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise InvalidQuery(f"({lat}, {lon}) is not a latitude and longitude in degrees")
    dlat = 1.01 * radius_m / 110_574.0
    cos_lat = math.cos(math.radians(min(abs(lat) + dlat, 89.9)))
    dlon = 1.01 * radius_m / (_METRES_PER_DEGREE_LAT * cos_lat)
    return [category, lat - dlat, lat + dlat, lon - dlon, lon + dlon]


def nearest_within(rows: Sequence[Row], lat: float, lon: float, radius_m: float) -> list[IncidentRecord]:
    """The incidents of ``rows`` (from ``OPEN_INCIDENTS_NEAR``) within ``radius_m`` on the ground, nearest first,
    by the same distance as the rules' association (``detector.geo.dedup.ground_distance_m``)."""
    near: list[tuple[float, IncidentRecord]] = []
    for row in rows:
        record = decode_incident_row(row)
        location = record.last_event.location
        if location is None:
            continue
        distance_m = math.hypot(*offset_m(lat, lon, location.lat, location.lon))
        if distance_m <= radius_m:
            near.append((distance_m, record))
    near.sort(key=lambda item: item[0])
    return [record for _, record in near]


def incidents_query(
    event_filter: EventFilter, state: IncidentState | None, page_size: int, page_token: str
) -> tuple[str, list[Any]]:
    """The query of one ``list_incidents`` page (one row more than the page, to tell whether another follows)."""
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidQuery(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    where, params = filter_sql(event_filter, "i.")
    if state is not None:
        where += " AND i.state = ?"
        params.append(state.value)
    if page_token:
        where += " AND i.incident_no < ?"
        params.append(decode_page_token(page_token))
    params.append(page_size + 1)
    return f"{SELECT_INCIDENT} WHERE 1 = 1{where} ORDER BY i.incident_no DESC LIMIT ?", params


def incident_page(rows: Sequence[Row], page_size: int) -> IncidentPage:
    items = [decode_incident_row(row) for row in rows[:page_size]]
    next_token = encode_page_token(int(rows[page_size - 1]["incident_no"])) if len(rows) > page_size else ""
    return IncidentPage(items=items, next_page_token=next_token)


def decode_dead_letter(row: Row) -> DeadLetter:
    return DeadLetter(
        str(row["consumer"]),
        int(row["event_sequence"]),
        str(row["event_id"]),
        str(row["reason"]),
        int(row["attempts"]),
        float(row["created_ts"]),
    )
