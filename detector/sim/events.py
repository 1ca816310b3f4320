"""Incident events as a case system receives them, folded into one record per incident: the JSON lines of
``detector subscribe --json`` (``parse_events``), or the ``IncidentEvent``s of a subscription (``fold_events``).

Each line is one ``streetwatch.v1.IncidentEvent`` in proto JSON (proto field names, enum names, timestamps as
RFC 3339, uint64 as strings). Lines that are blank are skipped; anything else that does not parse is an error
that names the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from detector.types import IncidentEvent

Box = tuple[float, float, float, float]


class EventsError(ValueError):
    """The events file cannot be read as IncidentEvent JSON lines."""


@dataclass(frozen=True)
class Located:
    lat: float
    lon: float
    accuracy_m: float


@dataclass(frozen=True)
class IncidentSeen:
    """One incident as the case system saw it: when and where it was opened, and when it cleared."""

    incident_id: str
    category: str
    source_id: str
    first_seen_ts: float  # when the service first saw the object
    opened_ts: float  # capture time of the frame that opened it (the OPENED event's last_seen)
    box: Box  # box at opening, in the source's pixels
    location: Located | None  # location at opening, else the first one reported later
    cleared_ts: float | None
    opened_count: int  # more than 1: the same incident was reopened


def _ts(value: Any, line_no: int, name: str) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise EventsError(f"line {line_no}: {name} is missing or not a timestamp")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise EventsError(f"line {line_no}: {name} {value!r} is not an RFC 3339 timestamp") from exc


def _event(data: dict[str, Any], line_no: int) -> dict[str, Any]:
    try:
        box = data.get("box") or {}
        location = data.get("location")
        return {
            "incident_id": str(data["incident_id"]),
            "type": str(data["type"]),
            "sequence": int(data.get("sequence", 0)),
            "category": str(data.get("category", "")),
            "source_id": str(data.get("source_id", "")),
            "first_seen": _ts(data.get("first_seen"), line_no, "first_seen"),
            "last_seen": _ts(data.get("last_seen"), line_no, "last_seen"),
            "box": tuple(float(box.get(k, 0.0)) for k in ("x1", "y1", "x2", "y2")),
            "location": None
            if not location
            else Located(float(location["lat"]), float(location["lon"]), float(location.get("accuracy_m", 0.0))),
        }
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, EventsError):
            raise
        raise EventsError(f"line {line_no}: not an IncidentEvent ({exc!r})") from exc


def _internal(event: IncidentEvent) -> dict[str, Any]:
    loc = event.location
    return {
        "incident_id": event.incident_id,
        "type": event.type.value,
        "sequence": event.sequence,
        "category": event.category,
        "source_id": event.source_id,
        "first_seen": event.first_seen_ts,
        "last_seen": event.last_seen_ts,
        "box": event.box_xyxy,
        "location": None if loc is None else Located(loc.lat, loc.lon, loc.accuracy_m),
    }


def fold_events(events: Iterable[IncidentEvent]) -> list[IncidentSeen]:
    """``parse_events`` for events as a subscription yields them."""
    return _fold({(e.incident_id, e.sequence, e.type.value): _internal(e) for e in events})


def parse_events(text: str) -> list[IncidentSeen]:
    """Fold events into incidents, in the order they were opened. Duplicate deliveries (same sequence) count once;
    incidents never OPENED in the file (it starts mid-life) are left out."""
    events: dict[tuple[str, int, str], dict[str, Any]] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EventsError(f"line {line_no}: not JSON ({exc.msg})") from exc
        if not isinstance(data, dict):
            raise EventsError(f"line {line_no}: expected a JSON object per line")
        event = _event(data, line_no)
        events[(event["incident_id"], event["sequence"], event["type"])] = event
    return _fold(events)


def _fold(events: dict[tuple[str, int, str], dict[str, Any]]) -> list[IncidentSeen]:
    by_incident: dict[str, list[dict[str, Any]]] = {}
    for event in sorted(events.values(), key=lambda e: (e["sequence"], e["last_seen"])):
        by_incident.setdefault(event["incident_id"], []).append(event)
    out = []
    for incident_id, history in by_incident.items():
        opened = [e for e in history if e["type"] == "OPENED"]
        if not opened:
            continue
        first = opened[0]
        location = first["location"] or next((e["location"] for e in history if e["location"]), None)
        cleared = [e["last_seen"] for e in history if e["type"] == "CLEARED"]
        out.append(
            IncidentSeen(
                incident_id=incident_id,
                category=first["category"],
                source_id=first["source_id"],
                first_seen_ts=first["first_seen"],
                opened_ts=first["last_seen"],
                box=first["box"],
                location=location,
                cleared_ts=cleared[-1] if cleared else None,
                opened_count=len(opened),
            )
        )
    return sorted(out, key=lambda i: i.opened_ts)


def read_events(path: Path) -> list[IncidentSeen]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise EventsError(f"cannot read events file {path}: {exc.strerror}") from exc
    try:
        return parse_events(text)
    except EventsError as exc:
        raise EventsError(f"{path}: {exc}") from exc
