from __future__ import annotations

import pytest

from detector.store.codec import event_to_row, row_to_event
from detector.types import EventType, Evidence, IncidentEvent
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
