"""The rules learn the case system's verdicts: a REJECTED place stays quiet for rules.rejected_suppress_s (wall clock
of the verdict, injected here), a RESOLVED incident is forgotten so its object seen again is a new incident, and
the rejected places are rebuilt from the store after a restart. Capture times are exact (i / fps); no sleeps."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from detector.incidents.feedback import record_case_update
from detector.incidents.feedback_watch import FeedbackWatcher
from detector.rules import RulesConfig, RulesEngine
from detector.store import SqliteStore
from detector.types import CaseState, EventType, GeoPoint, GroundFixes, IncidentEvent
from tests.store.factories import FakeClock

from .helpers import CLASS_NAMES, FRAME_SIZE, STALL_BOX, ZONE, Obj, make_detections, of_type, play, timeline

OPENED, UPDATED, CLEARED = EventType.OPENED, EventType.UPDATED, EventType.CLEARED
SUPPRESS_S = 3600.0
CAM, OTHER_CAM, DRONE, OTHER_DRONE = "cam-1", "cam-2", "drone-1", "drone-2"
ELSEWHERE_BOX = (100.0, 600.0, 300.0, 800.0)  # in the zone, no overlap with STALL_BOX
LAT, LON = 39.9042, 116.4074


class Suppressed:
    """The engine's on_suppressed callback: (source_id, category) per sighting kept from opening."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, source_id: str, category: str) -> None:
        self.calls.append((source_id, category))


def _engine(clock: FakeClock, suppressed: Suppressed | None = None) -> RulesEngine:
    fixed = {"zones": [ZONE.model_dump()], "dwell_s": 10.0}
    moving = {"camera": "moving", "occlusion_s": 300, "clear_after_s": 300}
    config = RulesConfig.model_validate(
        {
            "sources": {CAM: fixed, OTHER_CAM: fixed, DRONE: moving, OTHER_DRONE: moving},
            "rejected_suppress_s": SUPPRESS_S,
            "rejected_suppress_radius_m": 15.0,
        }
    )
    return RulesEngine(config, CLASS_NAMES, model_version="test-model", clock=clock, on_suppressed=suppressed)


def _verdict(event: IncidentEvent, state: CaseState) -> IncidentEvent:
    """The FEEDBACK event record_case_update appends: the incident's last event with the verdict."""
    return replace(event, event_id=str(uuid.uuid4()), type=EventType.FEEDBACK, case_state=state, note="checked")


def _open_stall(engine: RulesEngine, source_id: str = CAM) -> IncidentEvent:
    """A stall standing at STALL_BOX from 0 s opens at 10 s (dwell 10 s, 1 fps)."""
    [opened] = play(engine, timeline(1, 10.0, lambda ts: [Obj()]), source_id)
    assert opened.type is OPENED and opened.last_seen_ts == 10.0
    return opened


@pytest.mark.parametrize(
    ("source_id", "objects", "opens"),
    [
        # The rejected stall keeps standing there: nothing, ever (no UPDATED heartbeat, no new incident).
        (CAM, [Obj()], []),
        # A pothole where the stall stands is another category: it opens.
        (CAM, [Obj(), Obj(cls="pothole", track_id=2)], [("ROAD_DAMAGE", STALL_BOX)]),
        # A stall elsewhere in the same view opens.
        (CAM, [Obj(), Obj(box=ELSEWHERE_BOX, track_id=2)], [("ROAD_OCCUPYING_STALL", ELSEWHERE_BOX)]),
        # The same pixels of another fixed camera are another place.
        (OTHER_CAM, [Obj()], [("ROAD_OCCUPYING_STALL", STALL_BOX)]),
    ],
    ids=["rejected-object-stays", "other-category-same-place", "same-category-elsewhere", "other-camera"],
)
def test_rejected_place_stays_quiet_and_nothing_else_does(
    source_id: str, objects: Sequence[Obj], opens: list[tuple[str, tuple[float, ...]]]
) -> None:
    clock, suppressed = FakeClock(1e6), Suppressed()
    engine = _engine(clock, suppressed)
    rejected = _open_stall(engine)
    engine.apply_verdict(_verdict(rejected, CaseState.REJECTED))

    events = play(engine, timeline(1, 300.0, lambda ts: objects, start_s=11.0), source_id)
    events += play(engine, timeline(1, 700.0, lambda ts: [], start_s=301.0), source_id)  # everything leaves

    assert all(e.incident_id != rejected.incident_id for e in events), "the rejected incident raises nothing more"
    assert [(e.category, e.box_xyxy) for e in of_type(events, OPENED)] == opens
    assert len(of_type(events, CLEARED)) == len(opens), "what opened clears; the rejected one does not"
    if source_id == CAM:
        assert suppressed.calls == [(CAM, "ROAD_OCCUPYING_STALL")] * 290, "every suppressed sighting is counted"
    else:
        assert suppressed.calls == []


def test_suppression_expires_after_rejected_suppress_s_of_wall_clock() -> None:
    clock = FakeClock(1e6)
    engine = _engine(clock)
    rejected = _open_stall(engine)
    engine.apply_verdict(_verdict(rejected, CaseState.REJECTED))  # at wall clock 1e6

    clock.advance(SUPPRESS_S - 1.0)
    assert play(engine, timeline(1, 100.0, lambda ts: [Obj()], start_s=11.0), CAM) == []
    clock.advance(1.0)  # exactly rejected_suppress_s after the verdict
    events = play(engine, timeline(1, 140.0, lambda ts: [Obj()], start_s=101.0), CAM)

    [opened] = of_type(events, OPENED)
    assert opened.incident_id != rejected.incident_id
    assert (opened.first_seen_ts, opened.last_seen_ts) == (101.0, 111.0), "a fresh candidate, the usual dwell"


@pytest.mark.parametrize("back_at_s", [21.0, 60.0], ids=["never-left", "left-and-came-back-within-reopen"])
def test_resolved_then_seen_again_is_a_new_incident_after_the_usual_dwell(back_at_s: float) -> None:
    engine = _engine(FakeClock(1e6))
    resolved = _open_stall(engine)
    assert play(engine, timeline(1, 20.0, lambda ts: [Obj()], start_s=11.0), CAM) == []
    engine.apply_verdict(_verdict(resolved, CaseState.RESOLVED))

    events = play(engine, timeline(1, 200.0, lambda ts: [Obj()] if ts >= back_at_s else [], start_s=21.0), CAM)

    assert all(e.incident_id != resolved.incident_id for e in events), "no UPDATED, CLEARED or reopening of it"
    [opened] = of_type(events, OPENED)
    assert opened.incident_id != resolved.incident_id
    assert (opened.first_seen_ts, opened.last_seen_ts) == (back_at_s, back_at_s + 10.0)


@pytest.mark.parametrize("state", [CaseState.FILED, CaseState.ACCEPTED, CaseState.DISPATCHED])
def test_a_verdict_that_does_not_close_changes_nothing(state: CaseState) -> None:
    engine = _engine(FakeClock(1e6))
    opened = _open_stall(engine)
    engine.apply_verdict(_verdict(opened, state))
    events = play(engine, timeline(1, 200.0, lambda ts: [Obj()] if ts < 100.0 else [], start_s=11.0), CAM)
    assert {e.incident_id for e in events} == {opened.incident_id}
    assert [e.type for e in events if e.type is not UPDATED] == [CLEARED]


def _at(east_m: float) -> GeoPoint:
    return GeoPoint(LAT, LON + east_m / (111_320.0 * math.cos(math.radians(LAT))), 2.0, "DRONE_PROJECTION")


def _fly(engine: RulesEngine, source_id: str, east_m: float, start_s: float, until_s: float) -> list[IncidentEvent]:
    """A stall seen by a drone at ``east_m`` metres east of the reference point, 1 frame per second."""
    events = []
    for ts, objects in timeline(1, until_s, lambda ts: [Obj()], start_s=start_s):
        fixes = GroundFixes([_at(east_m)], [""])
        events += engine.update(source_id, ts, make_detections(objects), FRAME_SIZE, fixes)
    return events


@pytest.mark.parametrize(
    ("source_id", "east_m", "opens"),
    [(DRONE, 0.0, False), (OTHER_DRONE, 8.0, False), (OTHER_DRONE, 14.0, False), (OTHER_DRONE, 30.0, True)],
)
def test_moving_cameras_suppress_by_ground_distance_on_any_drone(source_id: str, east_m: float, opens: bool) -> None:
    engine = _engine(FakeClock(1e6))
    [rejected] = of_type(_fly(engine, DRONE, 0.0, 0.0, 5.0), OPENED)
    assert rejected.location is not None
    engine.apply_verdict(_verdict(rejected, CaseState.REJECTED))

    events = _fly(engine, source_id, east_m, 6.0, 30.0)

    assert all(e.incident_id != rejected.incident_id for e in events)
    assert len(of_type(events, OPENED)) == (1 if opens else 0)


@pytest.mark.parametrize(("restart_after_s", "rebuilt"), [(60.0, 1), (SUPPRESS_S + 1.0, 0)])
def test_rejected_places_are_rebuilt_from_the_store_after_a_restart(
    tmp_path: Path, restart_after_s: float, rebuilt: int
) -> None:
    clock = FakeClock(1e6)
    with SqliteStore(tmp_path / "data", clock=clock) as store:
        before = _engine(clock)
        opened = _open_stall(before)
        store.append([opened])
        record_case_update(store, opened.incident_id, CaseState.REJECTED, case_id="SR-7", note="a parked cart")
        clock.advance(restart_after_s)

        after = _engine(clock)  # the restarted service: a fresh engine, restored from the store
        after.restore([r.last_event for r in store.open_incidents()])
        watcher = FeedbackWatcher(store, after, clock=clock)

        async def start() -> int:
            count = await watcher.start()
            await watcher.stop()
            return count

        assert asyncio.run(start()) == rebuilt
        events = play(after, timeline(1, 100.0, lambda ts: [Obj()], start_s=11.0), CAM)

    assert all(e.incident_id != opened.incident_id for e in events)
    if rebuilt:
        assert events == [], "the rejected stall still standing there does not reopen after the restart"
    else:
        [new] = of_type(events, OPENED)
        assert new.first_seen_ts == 11.0, "past rejected_suppress_s the place is no longer suppressed"
