"""``detector.delivery.payload.event_to_dict`` (no proto) is the one writer of an event's JSON: it must equal the
proto JSON of ``streetwatch.v1.IncidentEvent`` (``MessageToDict``) for every event type and field, so the two
cannot drift; ``detector subscribe --json`` prints it."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict

from detector.api.incident_convert import event_to_proto
from detector.api.subscribe import event_json
from detector.delivery.payload import event_to_dict, event_to_json
from detector.types import STREAM_HEALTH, CaseState, EventType, GeoPoint, IncidentEvent, LocationMethod, Telemetry
from tests.store.factories import make_event

CASES = {
    "opened": make_event(sequence=7),
    "fractions": make_event(
        sequence=2**40,
        confidence=0.123456789,
        first_seen_ts=1_760_000_000.5,
        last_seen_ts=1_760_000_123.000123,
        box_xyxy=(0.1, 1 / 3, 1919.7, 1e-3),
    ),
    "nanos": make_event(first_seen_ts=1_760_000_000.123456789, last_seen_ts=1_760_000_001.25),
    "drone": make_event(
        type=EventType.CLEARED,
        location=GeoPoint(31.2, 121.5, 12.25, LocationMethod.DRONE_PROJECTION),
        source_pose=Telemetry(lat=31.2, lon=121.5, altitude_agl_m=80.0, gimbal_pitch_deg=-90.0, hfov_deg=84.0),
        location_note="gimbal assumed nadir",
    ),
    "bare": make_event(location=None, evidence=(), model_version="", severity="critical", confidence=1.0),
    "updated": make_event(type=EventType.UPDATED, sequence=3),
    **{
        f"feedback-{state.value.lower()}": make_event(
            type=EventType.FEEDBACK, case_state=state, case_id="SR-2026-0042", note="crew sent; 街道办"
        )
        for state in CaseState
    },
    **{
        f"stream-{kind.value.lower()}": make_event(
            type=kind,
            category=STREAM_HEALTH,
            incident_id="cam-1/down-1",
            location=None,
            evidence=(),
            note="no frame for 30 s",
            box_xyxy=(0.0, 0.0, 0.0, 0.0),
            confidence=0.0,
        )
        for kind in (EventType.SOURCE_DOWN, EventType.SOURCE_UP, EventType.SOURCE_DEGRADED)
    },
}


def proto_json(event: IncidentEvent) -> dict[str, Any]:
    """What protobuf itself writes for the event (the wire contract)."""
    return MessageToDict(
        event_to_proto(event), preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def test_every_event_type_and_case_state_is_covered() -> None:
    assert {e.type for e in CASES.values()} == set(EventType)
    assert {e.case_state for e in CASES.values()} == {None, *CaseState}


@pytest.mark.parametrize("name", sorted(CASES))
def test_event_to_dict_is_the_proto_json(name: str) -> None:
    event = CASES[name]
    expected = proto_json(event)
    assert event_to_dict(event) == expected
    assert json.loads(event_to_json(event)) == expected
    assert json.loads(event_json(event)) == expected  # `detector subscribe --json` prints the same


def test_payload_keeps_non_ascii_and_field_names() -> None:
    event = replace(make_event(), label="无照经营游商")
    raw = event_to_json(event)
    assert "无照经营游商".encode() in raw
    assert set(event_to_dict(event)) == set(proto_json(event))  # field order is not in the contract
