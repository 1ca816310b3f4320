"""``RulesEngine.source_down`` / ``source_back``: open incidents noted, nothing else changed; and ``restore``
leaves STREAM_HEALTH incidents to the stream-health monitor."""

from __future__ import annotations

from dataclasses import replace

from detector.types import STREAM_HEALTH, EventType, IncidentEvent

from .helpers import Obj, make_engine, of_type, play, timeline


def _summary(events: list[IncidentEvent]) -> list[tuple[EventType, float, float]]:
    return [(e.type, e.first_seen_ts, e.last_seen_ts) for e in events]


def test_source_down_notes_open_incidents_only_and_changes_no_later_event() -> None:
    plain, noted = make_engine(dwell_s=10.0), make_engine(dwell_s=10.0)
    frames = list(timeline(fps=2, until_s=200.0, objects_at=lambda ts: [Obj()] if ts < 100.0 else []))
    first, rest = frames[:100], frames[100:]  # up to 49.5 s: the stall has been open since 10 s
    noted_events = play(noted, first)
    assert _summary(play(plain, first)) == _summary(noted_events)
    assert noted.source_down("cam-9", 49.5) == [], "a source the rules never saw has no incidents"

    marked = noted.source_down("cam-1", 49.5)
    back = noted.source_back("cam-1", 80.0)

    opened = of_type(noted_events, EventType.OPENED)
    assert [(e.type, e.incident_id) for e in marked] == [(EventType.UPDATED, opened[0].incident_id)]
    assert marked[0].note == "source down since 1970-01-01T00:00:49Z"
    assert (marked[0].first_seen_ts, marked[0].last_seen_ts) == (0.0, 49.5)
    assert back[0].note == "source back at 1970-01-01T00:01:20Z"
    later = _summary(play(noted, rest))
    assert later == _summary(play(plain, rest)), "the same heartbeats and clear as without the notes"
    assert [kind for kind, _, _ in later] == [EventType.UPDATED, EventType.CLEARED]
    assert noted.source_down("cam-1", 200.0) == [], "a cleared incident is not noted"


def test_restore_skips_stream_health_incidents() -> None:
    engine = make_engine(dwell_s=10.0)
    opened = of_type(play(engine, timeline(fps=2, until_s=12.0, objects_at=lambda ts: [Obj()])), EventType.OPENED)
    outage = replace(opened[0], incident_id="outage-1", type=EventType.SOURCE_DOWN, category=STREAM_HEALTH)
    restarted = make_engine(dwell_s=10.0)
    restarted.restore([opened[0], outage])
    assert [e.incident_id for e in restarted.source_down("cam-1", 12.0)] == [opened[0].incident_id]
