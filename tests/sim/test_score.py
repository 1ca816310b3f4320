"""The scorer on hand-built truths and events, in the exact JSON lines `detector subscribe --json` prints."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from detector.api.subscribe import event_json
from detector.sim.events import EventsError, fold_events, parse_events
from detector.sim.score import Scorer, ScoreReport, ScoreSettings
from detector.sim.truth import Truth
from detector.sim.world import Street, World
from detector.types import EventType, GeoPoint, IncidentEvent, LocationMethod, Severity
from tests.sim.helpers import frames_with, truth_object, truth_of

T0 = 1_000_000.0
CATEGORY = {"stall": ("ROAD_OCCUPYING_STALL", "200501"), "garbage": ("EXPOSED_GARBAGE", "200102")}
_PLACE = World(39.9, 116.4, Street(10.0, 0.0))


def incident_event(
    incident: str,
    kind: str,
    first_s: float,
    last_s: float,
    *,
    sequence: int,
    east_m: float | None = None,
    accuracy_m: float = 1.0,
    box: tuple[float, float, float, float] = (0, 0, 1, 1),
    event: EventType = EventType.OPENED,
) -> IncidentEvent:
    category, code = CATEGORY[kind]
    location = None
    if east_m is not None:
        lat, lon = _PLACE.to_geo(east_m, 0.0)
        location = GeoPoint(lat, lon, accuracy_m, LocationMethod.HOMOGRAPHY)
    e = IncidentEvent(str(uuid.uuid4()), incident, event, category, code, "x", Severity.MEDIUM, 0.9, "cam-1",
                      T0 + first_s, T0 + last_s, box, "no-vending", "dwell", location=location,
                      sequence=sequence)  # fmt: skip
    return e


def line(*args: Any, **kwargs: Any) -> str:
    """An event as the JSON line `detector subscribe --json` prints."""
    return event_json(incident_event(*args, **kwargs))


BOXES: dict[int, tuple[float, float, float, float]] = {
    1: (100, 100, 200, 200),
    2: (400, 100, 500, 200),
    3: (700, 100, 760, 160),
    4: (800, 300, 900, 400),
    5: (10, 10, 30, 40),
}
SPANS: dict[int, tuple[float, float]] = {1: (10, 400), 2: (50, 500), 3: (0, 600), 4: (300, 370), 5: (0, 600)}


def hand_truth() -> Truth:
    """Stalls 1 and 2 stay past the dwell, garbage 3 is there all along, stall 4 stays 70 s, 5 is a bin."""
    objects = [truth_object(1, "stall", 0.0, 10, 400), truth_object(2, "stall", 30.0, 50, 500),
               truth_object(3, "garbage", 60.0, None, None), truth_object(4, "stall", 90.0, 300, 370),
               truth_object(5, "garbage_bin", 120.0, None, None)]  # fmt: skip
    return truth_of(objects, frames_with(BOXES, SPANS, 600.0))


def score(lines: list[str], **settings: object) -> ScoreReport:
    return Scorer(hand_truth(), ScoreSettings.model_validate(settings)).score(parse_events("\n".join(lines)))


SUBSCRIBED = [
    incident_event("A", "stall", 10, 131, sequence=1, east_m=0.8),  # found, 1 s after the dwell
    incident_event("C", "garbage", 0, 50, sequence=2, box=(702, 101, 758, 161)),  # no location: by box; late
    incident_event("A", "stall", 10, 200, sequence=3, east_m=0.8, event=EventType.UPDATED),
    incident_event("B", "stall", 150, 200, sequence=4, east_m=-1.0),  # the same stall again: a duplicate
    incident_event("D", "stall", 100, 230, sequence=5, east_m=200.0),  # nothing there: a false alarm
    incident_event("E", "stall", 300, 360, sequence=6, east_m=90.5),  # stays 70 s: neither hit nor miss
    incident_event("A", "stall", 10, 460, sequence=7, east_m=0.8, event=EventType.CLEARED),
]
EVENTS = [event_json(e) for e in SUBSCRIBED]


def test_found_once_in_place_in_time_and_what_else() -> None:
    report = score(EVENTS)
    m = report.metrics
    assert (m["expected"], m["found"], m["missed"]) == (3, 2, [2])
    assert m["recall"] == pytest.approx(2 / 3)
    assert (m["duplicates"], m["false_alarms"], m["ignored"]) == (1, 1, 1)
    assert m["precision"] == pytest.approx(3 / 4) and m["duplicate_rate"] == pytest.approx(1 / 3)
    assert m["geo_error_m"]["n"] == 1 and m["geo_error_m"]["median"] == pytest.approx(0.8, abs=0.01)
    assert m["within_accuracy"] == 1.0
    by_id = {o.id: o for o in report.objects}
    assert by_id[1].time_to_open_s == pytest.approx(1.0)  # 131 - 10 - dwell 120
    assert by_id[3].time_to_open_s == pytest.approx(50.0)  # confirm rule: no dwell to subtract
    assert m["late"] == 1
    assert {i.incident_id: i.status for i in report.incidents} == {
        "A": "true", "C": "true", "B": "duplicate", "D": "false_alarm", "E": "ignored"}  # fmt: skip
    assert 5 not in by_id, "bins raise no incidents and are not scored"
    table = report.text()
    assert "recall 0.67 (2/3)" in table and "false alarm: D" in table and "duplicate: B" in table


def test_a_location_outside_the_reported_accuracy_is_counted() -> None:
    report = score([line("A", "stall", 10, 131, sequence=1, east_m=3.0, accuracy_m=1.0)])
    assert report.metrics["geo_error_m"]["median"] == pytest.approx(3.0, abs=0.01)
    assert report.metrics["within_accuracy"] == 0.0


def test_a_box_that_misses_is_a_false_alarm_and_the_radius_is_a_setting() -> None:
    assert score([line("C", "garbage", 0, 5, sequence=1, box=(0, 500, 50, 550))]).metrics["false_alarms"] == 1
    far = [line("A", "stall", 10, 131, sequence=1, east_m=8.0)]
    assert score(far).metrics["found"] == 0
    assert score(far, match_radius_m=10.0).metrics["found"] == 1


def test_the_wrong_category_at_the_right_place_does_not_count() -> None:
    report = score([line("G", "garbage", 10, 131, sequence=1, east_m=0.0)])
    assert report.metrics["found"] == 0 and report.metrics["false_alarms"] == 1


def test_redelivered_events_count_once_and_json_round_trips() -> None:
    report = score([EVENTS[0], EVENTS[0], EVENTS[6]])
    assert report.metrics["incidents"] == 1 and report.metrics["duplicates"] == 0
    assert json.loads(json.dumps(report.to_dict()))["metrics"]["found"] == 1


def test_subscribed_events_fold_as_their_json_lines_parse() -> None:
    """The demo scores the events it received (``fold_events``); a case system's JSON lines give the same."""
    redelivered = [*SUBSCRIBED, SUBSCRIBED[0]]
    folded = fold_events(redelivered)
    assert folded == parse_events("\n".join(event_json(e) for e in redelivered))
    assert [i.incident_id for i in folded] == ["C", "A", "B", "D", "E"] and folded[1].cleared_ts == T0 + 460


def test_events_and_truth_from_another_replay_time_align_with_start_ts() -> None:
    shifted = [line("A", "stall", 10 + 5000, 131 + 5000, sequence=1, east_m=0.8)]
    assert score(shifted).metrics["found"] == 0
    assert score(shifted, start_ts=T0 + 5000).metrics["found"] == 1


def test_events_outside_the_truths_time_window_are_warned_about() -> None:
    shifted = [line("A", "stall", 10 + 5000, 131 + 5000, sequence=1, east_m=0.8)]
    report = score(shifted)
    (warning,) = report.warnings
    assert warning.startswith("no event between 1970-01-12T13:46:40Z and 1970-01-12T13:56:50Z")
    assert f"was the replay's first capture time {T0:.3f} aligned with the truth's start?" in warning
    assert "first_capture_ts" in warning
    assert report.text().startswith("WARNING: no event between")
    assert report.to_dict()["warnings"] == [warning]
    assert score(shifted, start_ts=T0 + 5000).warnings == []
    assert score(EVENTS).warnings == [] and score([]).warnings == [], "no events at all: nothing to align"


@pytest.mark.parametrize(
    ("text", "message"),
    [("{not json", "line 1: not JSON"), ('[1, 2]', "line 1: expected a JSON object"),
     ('\n{"type": "OPENED"}', "line 2: not an IncidentEvent"),
     ('{"incident_id": "x", "type": "OPENED", "first_seen": "yesterday", "last_seen": 1}', "not an RFC 3339")],
)  # fmt: skip
def test_unreadable_events_name_the_line(text: str, message: str) -> None:
    with pytest.raises(EventsError, match=message):
        parse_events(text)
