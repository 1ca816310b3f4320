"""record_case_update against the real store: the verdict on the incident, its FEEDBACK event in the log, and a
closing verdict that an event the rules raised before they learnt of it cannot undo."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from detector.incidents.feedback import UnknownIncident, record_case_update
from detector.store import SqliteStore
from detector.store.model import IncidentState
from detector.types import CaseState, EventType
from tests.store.factories import FakeClock, make_event


@pytest.mark.parametrize(
    ("verdict", "after_late_update"),
    [
        (CaseState.REJECTED, IncidentState.CLEARED),
        (CaseState.RESOLVED, IncidentState.CLEARED),
        (CaseState.DISPATCHED, IncidentState.OPEN),
    ],
)
def test_a_closing_verdict_keeps_the_incident_cleared_against_a_late_update(
    tmp_path: Path, verdict: CaseState, after_late_update: IncidentState
) -> None:
    clock = FakeClock(1.75e9)
    with SqliteStore(tmp_path / "data", clock=clock) as store:
        opened = make_event("inc-1")
        store.append([opened])
        clock.advance(30.0)
        record = record_case_update(store, "inc-1", verdict, case_id="SR-1", note="seen on site")
        assert record.case_updated_ts == 1.75e9 + 30.0, "the verdict's wall clock, as the store recorded it"
        assert (record.case_state, record.case_id) == (verdict, "SR-1")
        assert record.state is (IncidentState.CLEARED if verdict.closes else IncidentState.OPEN)
        [feedback] = store.read_events(1, 10)
        assert (feedback.type, feedback.case_state, feedback.note) == (EventType.FEEDBACK, verdict, "seen on site")

        # The rules raised this UPDATED before their feedback watcher applied the verdict.
        store.append([replace(opened, event_id="late-update", type=EventType.UPDATED)])
        stored = store.get_incident("inc-1")

    assert stored is not None
    assert stored.state is after_late_update
    assert (stored.case_state, stored.case_id, stored.opened_count) == (verdict, "SR-1", 1)


def test_an_unknown_incident_or_an_overlong_note_appends_nothing(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "data") as store:
        store.append([make_event("inc-1")])
        with pytest.raises(UnknownIncident):
            record_case_update(store, "inc-2", CaseState.FILED)
        with pytest.raises(ValueError, match="at most 2000"):
            record_case_update(store, "inc-1", CaseState.FILED, note="x" * 2001)
        assert store.last_sequence() == 1
