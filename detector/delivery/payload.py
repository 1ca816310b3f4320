"""An event as a JSON object, without proto: the one writer of it, used by the connectors and by the JSON line of
``detector subscribe --json`` (``detector/api/subscribe.py::event_json``, docs/EVENTS.md). It is the proto JSON
of ``streetwatch.v1.IncidentEvent`` (what ``MessageToDict`` gives, field for field): proto field names,
enum names, timestamps as RFC 3339 UTC, ``sequence`` as a decimal string, 32-bit floats (``confidence``, ``box``)
written as the shortest decimal that reads back to the same float32, message fields (``location``,
``source_pose``, ``box``) left out when unset and every other field always present.
``tests/delivery/test_payload.py`` compares it with ``MessageToDict`` of the proto, for every event type."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from detector.types import IncidentEvent, Telemetry


def _float32(value: float) -> float:
    """The float32 nearest ``value``, as the shortest decimal that reads back to it (protobuf's JSON does so)."""
    if not math.isfinite(value):
        return value
    rounded = struct.unpack("<f", struct.pack("<f", value))[0]
    for precision in range(6, 10):
        short = float(f"{rounded:.{precision}g}")
        if struct.unpack("<f", struct.pack("<f", short))[0] == rounded:
            return short
    return float(rounded)


def _rfc3339(ts: float) -> str:
    """Protobuf's Timestamp JSON: UTC, ``Z``, fractional seconds as 0, 3, 6 or 9 digits."""
    seconds = int(ts // 1)
    nanos = min(round((ts - seconds) * 1e9), 999_999_999)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos == 0:
        return text + "Z"
    if nanos % 1_000_000 == 0:
        return f"{text}.{nanos // 1_000_000:03d}Z"
    if nanos % 1_000 == 0:
        return f"{text}.{nanos // 1_000:06d}Z"
    return f"{text}.{nanos:09d}Z"


def _telemetry(pose: Telemetry) -> dict[str, float]:
    return {f.name: value for f in fields(pose) if (value := getattr(pose, f.name)) is not None}


def event_to_dict(event: IncidentEvent) -> dict[str, Any]:
    """The event as a JSON-ready dict (see the module docstring)."""
    x1, y1, x2, y2 = event.box_xyxy
    data: dict[str, Any] = {
        "event_id": event.event_id,
        "sequence": str(event.sequence),
        "incident_id": event.incident_id,
        "type": event.type.value,
        "category": event.category,
        "case_code": event.case_code,
        "label": event.label,
        "severity": str(event.severity),
        "confidence": _float32(event.confidence),
        "source_id": event.source_id,
        "first_seen": _rfc3339(event.first_seen_ts),
        "last_seen": _rfc3339(event.last_seen_ts),
        "duration_s": event.duration_s,
        "box": {"x1": _float32(x1), "y1": _float32(y1), "x2": _float32(x2), "y2": _float32(y2)},
        "zone_id": event.zone_id,
    }
    if event.location is not None:
        loc = event.location
        data["location"] = {
            "lat": loc.lat,
            "lon": loc.lon,
            "accuracy_m": loc.accuracy_m,
            "method": loc.method.name,
        }
    data["evidence"] = [{"kind": str(e.kind), "sha256": e.sha256, "uri": e.uri} for e in event.evidence]
    data["model_version"] = event.model_version
    data["rule"] = event.rule
    if event.source_pose is not None:
        data["source_pose"] = _telemetry(event.source_pose)
    data["location_note"] = event.location_note
    data["case_state"] = "CASE_STATE_UNSPECIFIED" if event.case_state is None else str(event.case_state)
    data["case_id"] = event.case_id
    data["note"] = event.note
    return data


def event_to_json(event: IncidentEvent) -> bytes:
    """The event as UTF-8 JSON (non-ASCII kept as is), the payload connectors send."""
    return json.dumps(event_to_dict(event), ensure_ascii=False).encode("utf-8")
