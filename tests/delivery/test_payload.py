"""The connectors' JSON (``detector.delivery.payload``, no proto) is the JSON line of ``detector subscribe``."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from detector.api.subscribe import event_json
from detector.delivery.payload import event_to_dict, event_to_json
from detector.types import EventType, GeoPoint, LocationMethod, Telemetry
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
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_event_to_dict_is_the_subscribe_json_line(name: str) -> None:
    event = CASES[name]
    assert event_to_dict(event) == json.loads(event_json(event))
    assert json.loads(event_to_json(event)) == json.loads(event_json(event))


def test_payload_keeps_non_ascii_and_field_names() -> None:
    event = replace(make_event(), label="无照经营游商")
    raw = event_to_json(event)
    assert "无照经营游商".encode() in raw
    assert set(event_to_dict(event)) == set(json.loads(event_json(event)))  # field order is not in the contract
