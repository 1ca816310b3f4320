from __future__ import annotations

import json

import pytest

from detector.store.codec import event_to_row, row_to_event
from detector.types import EventType, Evidence, EvidenceKind, IncidentEvent, LocationMethod, Severity
from tests.store.factories import make_event


@pytest.mark.parametrize(
    "event",
    [
        make_event(sequence=1),
        make_event(sequence=2, location=None, evidence=(), type=EventType.CLEARED),
        make_event(
            sequence=3,
            evidence=(
                Evidence("frame_jpeg", "a" * 64, "evidence/aa/x.jpg"),
                Evidence("crop_jpeg", "b" * 64, ""),
            ),
            box_xyxy=(0.1, 1e-7, 1919.999, 1080.0),
        ),
    ],
)
def test_event_round_trips_through_a_row(event: IncidentEvent) -> None:
    assert row_to_event(event_to_row(event, recorded_ts=5.0)) == event


def test_undecodable_row_raises() -> None:
    row = event_to_row(make_event(), recorded_ts=5.0)
    row["box"] = "[1, 2"
    with pytest.raises(ValueError):
        row_to_event(row)


def test_rows_hold_the_enums_text_and_rows_written_before_the_enums_decode_to_them() -> None:
    row = event_to_row(make_event(severity=Severity.HIGH), recorded_ts=5.0)
    assert (row["severity"], row["severity_rank"]) == ("high", 2)
    assert json.loads(row["location"])["method"] == "HOMOGRAPHY"
    assert [e["kind"] for e in json.loads(row["evidence"])] == ["crop_jpeg"]

    # A row as an older service wrote it: plain text, the method once also lower case.
    row["location"] = json.dumps({"lat": 39.9, "lon": 116.4, "accuracy_m": 3.5, "method": "drone-projection"})
    row["evidence"] = json.dumps([{"kind": "frame_jpeg", "sha256": "a" * 64, "uri": "evidence/aa/a.jpg"}])
    event = row_to_event(row)
    assert type(event.severity) is Severity and event.severity is Severity.HIGH
    assert event.location is not None and event.location.method is LocationMethod.DRONE_PROJECTION
    assert [type(e.kind) for e in event.evidence] == [EvidenceKind]
    assert event.evidence[0].kind is EvidenceKind.FRAME_JPEG


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("severity", "urgent"),
        ("location", '{"lat": 1, "lon": 2, "accuracy_m": 3, "method": "GPS"}'),
        ("evidence", '[{"kind": "thumb_png", "sha256": "", "uri": ""}]'),
    ],
)
def test_a_row_with_a_value_no_enum_knows_does_not_decode(column: str, value: str) -> None:
    row = event_to_row(make_event(), recorded_ts=5.0)
    row[column] = value
    with pytest.raises(ValueError):
        row_to_event(row)
