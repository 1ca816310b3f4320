from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest

from detector.rules import FixedCamera, MovingCamera, RulesConfig, RulesEngine, RulesError
from detector.types import Detections, EventType, GeoPoint, GroundFixes, IncidentEvent, Telemetry

from .helpers import (
    CLASS_NAMES,
    FRAME_SIZE,
    SOURCE,
    STALL_BOX,
    ZONE,
    GeoThenRules,
    Obj,
    make_detections,
    make_engine,
    of_type,
    play,
    timeline,
)

OPENED, UPDATED, CLEARED = EventType.OPENED, EventType.UPDATED, EventType.CLEARED


def test_acceptance_stall_150s_with_id_switch_and_occlusion_is_one_incident() -> None:
    """Dwell 120 s at 5 fps; the tracker switches id at 60 s; a bus hides it 90-100 s; it leaves at 150 s."""

    def objects_at(ts: float) -> list[Obj]:
        if ts >= 150.0 or 90.0 <= ts < 100.0:
            return []
        jitter = 3.0 * math.sin(ts)
        x1, y1, x2, y2 = STALL_BOX
        return [
            Obj(
                box=(x1 + jitter, y1 - jitter, x2 + jitter, y2 + jitter),
                conf=0.8 + 0.05 * math.sin(ts / 7.0),
                track_id=7 if ts < 60.0 else 12,
            )
        ]

    engine = make_engine(dwell_s=120.0)
    events = play(engine, timeline(fps=5, until_s=300.0, objects_at=objects_at))

    opened, cleared = of_type(events, OPENED), of_type(events, CLEARED)
    assert len(opened) == 1 and len(cleared) == 1
    assert {event.incident_id for event in events} == {opened[0].incident_id}
    assert set(of_type(events, UPDATED)) <= set(events)  # heartbeats allowed, nothing else
    assert {e.type for e in events} <= {OPENED, UPDATED, CLEARED}
    assert opened[0].last_seen_ts == 120.0 and opened[0].first_seen_ts == 0.0
    assert opened[0].category == "ROAD_OCCUPYING_STALL" and opened[0].case_code == "200501"
    assert opened[0].zone_id == "no-vending" and opened[0].rule == "dwell>=120s"
    assert cleared[0].last_seen_ts == pytest.approx(149.8)
    assert cleared[0].duration_s == pytest.approx(149.8)
    assert all(e.sequence == 0 and e.source_id == SOURCE and e.model_version == "test-model" for e in events)
    assert len({e.event_id for e in events}) == len(events)


@pytest.mark.parametrize(
    ("fps", "present_until_s", "opens"),
    [
        (10, 119.9, False),
        (10, 120.0, True),
        (30, 119.97, False),
        (30, 120.0, True),
        (5, 119.8, False),
        (5, 120.0, True),
    ],
)
def test_dwell_boundary(fps: int, present_until_s: float, opens: bool) -> None:
    events = play(make_engine(), timeline(fps, present_until_s, lambda ts: [Obj()]))
    assert [e.type for e in events] == ([OPENED] if opens else [])
    if opens:
        assert events[0].last_seen_ts == 120.0


@pytest.mark.parametrize("switch_at_s", [1.0, 60.0, 119.8])
def test_id_switch_mid_dwell_keeps_the_clock(switch_at_s: float) -> None:
    frames = timeline(5, 170.0, lambda ts: [Obj(track_id=1 if ts < switch_at_s else 2)])
    events = play(make_engine(), frames)
    assert [(e.type, e.last_seen_ts) for e in events] == [(OPENED, 120.0)]


@pytest.mark.parametrize(
    ("gap_s", "opened_at_s"),
    [
        (10.0, 120.0),  # shorter than occlusion_s: the dwell clock runs on through the gap
        (29.8, 120.0),  # just inside occlusion_s (last seen 49.8, back at 79.8 → absent 30.0 s)
        (40.0, 90.0 + 120.0),  # longer: the candidate is forgotten and dwell starts again when it is back
    ],
)
def test_occlusion_before_open(gap_s: float, opened_at_s: float) -> None:
    def objects_at(ts: float) -> list[Obj]:
        return [] if 50.0 <= ts < 50.0 + gap_s else [Obj(track_id=1 if ts < 50 else 2)]

    events = play(make_engine(occlusion_s=30.0), timeline(5, 250.0, objects_at))
    opened = of_type(events, OPENED)
    assert len(opened) == 1 and events[0] is opened[0]
    assert opened[0].last_seen_ts == pytest.approx(opened_at_s)


def test_occlusion_of_an_open_incident_shorter_than_clear_after_changes_nothing() -> None:
    events = play(
        make_engine(clear_after_s=60.0, heartbeat_s=1000.0),
        timeline(5, 300.0, lambda ts: [] if 150.0 <= ts < 205.0 else [Obj()]),
    )
    assert [e.type for e in events] == [OPENED]


def test_two_stalls_side_by_side_are_two_incidents() -> None:
    left = Obj(box=(600.0, 600.0, 800.0, 800.0), track_id=1)
    right = Obj(box=(810.0, 600.0, 1010.0, 800.0), track_id=2)
    events = play(make_engine(), timeline(5, 130.0, lambda ts: [left, right]))
    opened = of_type(events, OPENED)
    assert len(opened) == 2
    assert {e.box_xyxy for e in opened} == {left.box, right.box}
    assert opened[0].incident_id != opened[1].incident_id


@pytest.mark.parametrize(
    ("second", "incidents"),
    [
        (Obj(box=(805.0, 610.0, 1005.0, 800.0), cls="stall", track_id=2), 1),  # the same stall found twice
        (Obj(box=(820.0, 650.0, 980.0, 800.0), cls="cart", track_id=2), 1),  # its cart: same category
        (Obj(box=(820.0, 650.0, 980.0, 800.0), cls="goods", track_id=2), 2),  # goods: another category
    ],
)
def test_duplicate_boxes_of_one_object_make_one_incident(second: Obj, incidents: int) -> None:
    events = play(make_engine(), timeline(5, 200.0, lambda ts: [Obj(track_id=1), second]))
    assert len(of_type(events, OPENED)) == incidents


def test_open_incident_is_not_opened_twice_while_it_stays() -> None:
    events = play(make_engine(), timeline(5, 600.0, lambda ts: [Obj(track_id=int(ts // 50))]))
    assert len(of_type(events, OPENED)) == 1
    assert not of_type(events, CLEARED)


@pytest.mark.parametrize(
    ("back_at_s", "box", "same_incident"),
    [
        (200.0, STALL_BOX, True),  # 10 s after clearing, same place
        (480.0, STALL_BOX, True),  # 290 s after clearing, inside reopen_after_s=300
        (500.0, STALL_BOX, False),  # 310 s after clearing: a new incident
        (200.0, (100.0, 600.0, 300.0, 800.0), False),  # same time, another place
    ],
)
def test_clear_then_reopen(back_at_s: float, box: tuple[float, float, float, float], same_incident: bool) -> None:
    def objects_at(ts: float) -> list[Obj]:
        if ts < 130.0:
            return [Obj(track_id=1)]
        return [Obj(box=box, track_id=2)] if ts >= back_at_s else []

    events = play(make_engine(clear_after_s=60.0, reopen_after_s=300.0), timeline(5, back_at_s + 125.0, objects_at))
    opened, cleared = of_type(events, OPENED), of_type(events, CLEARED)
    assert len(opened) == 2 and len(cleared) == 1
    assert cleared[0].last_seen_ts == pytest.approx(129.8)
    assert events.index(cleared[0]) == 1
    assert cleared[0].incident_id == opened[0].incident_id
    assert opened[1].last_seen_ts == pytest.approx(back_at_s + 120.0)  # it has to qualify again
    assert (opened[1].incident_id == opened[0].incident_id) is same_incident
    if same_incident:
        assert opened[1].first_seen_ts == 0.0


CONFIRM = {"garbage": {"k": 3, "n_s": 5, "min_confidence": 0.4}}


@pytest.mark.parametrize(
    ("cls", "seconds", "conf", "fps", "opened_at_s"),
    [
        ("garbage", [0, 1, 2], 0.9, 5, 2.0),
        ("garbage", [0, 2, 4], 0.9, 5, 4.0),
        ("garbage", [0, 5, 10, 15], 0.9, 5, None),  # never 3 of any 5 seconds
        ("garbage", [0], 0.9, 30, None),  # 30 frames in one second are one second
        ("garbage", [0, 1, 2, 3], 0.39, 5, None),  # below the class threshold
        ("garbage_bin", [0, 1, 2, 3, 4], 0.9, 5, None),  # no category: never an incident
        ("pothole", [10, 11, 12], 0.9, 5, 12.0),
    ],
)
def test_hazard_confirmation_k_of_n_seconds(
    cls: str, seconds: list[int], conf: float, fps: int, opened_at_s: float | None
) -> None:
    box = (100.0, 100.0, 200.0, 200.0)  # outside every zone: hazards need none

    def objects_at(ts: float) -> list[Obj]:
        return [Obj(box=box, cls=cls, conf=conf)] if math.floor(ts) in seconds else []

    engine = make_engine(confirm={**FixedCamera().confirm, **CONFIRM})
    events = play(engine, timeline(fps, 30.0, objects_at))
    opened = of_type(events, OPENED)
    if opened_at_s is None:
        assert opened == []
    else:
        assert [(e.last_seen_ts, e.zone_id) for e in opened] == [(opened_at_s, "")]


@pytest.mark.parametrize("heartbeat_s", [30.0, 60.0])
def test_heartbeat_is_the_only_update_of_a_steady_stall(heartbeat_s: float) -> None:
    events = play(make_engine(heartbeat_s=heartbeat_s), timeline(5, 400.0, lambda ts: [Obj()]))
    updates = [e.last_seen_ts for e in of_type(events, UPDATED)]
    expected = [120.0 + heartbeat_s * i for i in range(1, int((400.0 - 120.0) // heartbeat_s) + 1)]
    assert updates == pytest.approx(expected)


@pytest.mark.parametrize(
    ("after", "first_update_within_s", "updates"),
    [
        (Obj(conf=0.95), 5.0, 2),  # 0.6 → 0.95, smoothed over 5 s; min_update_interval_s merges steps
        (Obj(box=(900.0, 600.0, 1100.0, 800.0), conf=0.6), 0.0, 1),  # moved 100 px
        (Obj(box=(810.0, 600.0, 1010.0, 800.0), conf=0.65), None, 0),  # within tolerances: nothing
    ],
)
def test_update_on_meaningful_change(after: Obj, first_update_within_s: float | None, updates: int) -> None:
    before = Obj(conf=0.6)
    frames = timeline(5, 170.0, lambda ts: [before if ts < 150.0 else after])
    updated = of_type(play(make_engine(heartbeat_s=600.0, confidence_step=0.1), frames), UPDATED)
    assert len(updated) == updates
    if first_update_within_s is not None:
        assert 150.0 <= updated[0].last_seen_ts <= 150.0 + first_update_within_s


def test_updates_are_rate_limited_by_min_update_interval() -> None:
    def objects_at(ts: float) -> list[Obj]:
        shift = 100.0 * (int(ts * 5) % 2)  # jumps back and forth every frame
        return [Obj(box=(800.0 + shift, 600.0, 1000.0 + shift, 800.0))]

    events = play(
        make_engine(heartbeat_s=600.0, min_update_interval_s=5.0, match_iou=0.3),
        timeline(5, 200.0, objects_at),
    )
    times = [e.last_seen_ts for e in events if e.type is not CLEARED]
    assert all(b - a >= 5.0 - 1e-9 for a, b in itertools.pairwise(times))


def test_restore_continues_open_incidents_after_a_restart() -> None:
    before = play(make_engine(), timeline(5, 125.0, lambda ts: [Obj(track_id=3)]))
    last = before[-1]
    assert last.type is OPENED

    engine = make_engine()
    engine.restore([last])
    after = play(engine, timeline(5, 400.0, lambda ts: [Obj(track_id=1)] if ts < 200.0 else [], start_s=140.0))
    assert of_type(after, OPENED) == []
    cleared = of_type(after, CLEARED)
    assert [e.incident_id for e in cleared] == [last.incident_id]
    assert cleared[0].first_seen_ts == 0.0


def test_restore_then_absence_clears_on_first_frames() -> None:
    last = of_type(play(make_engine(), timeline(5, 121.0, lambda ts: [Obj()])), OPENED)[0]
    engine = make_engine(clear_after_s=60.0)
    engine.restore([last])
    events = play(engine, [(500.0, [])])
    assert [(e.type, e.incident_id) for e in events] == [(CLEARED, last.incident_id)]


def test_restore_rejects_cleared_and_unknown_category() -> None:
    events = play(make_engine(), timeline(5, 300.0, lambda ts: [Obj()] if ts < 130 else []))
    cleared = of_type(events, CLEARED)[0]
    engine = make_engine()
    with pytest.raises(RulesError, match="open incidents only"):
        engine.restore([cleared])
    opened = of_type(events, OPENED)[0]
    with pytest.raises(RulesError, match="category 'NOPE'"):
        engine.restore([IncidentEvent(**{**opened.__dict__, "category": "NOPE"})])


def test_sources_do_not_interfere() -> None:
    config = RulesConfig(
        sources={
            "a": FixedCamera.model_validate({"zones": [ZONE]}),
            "b": FixedCamera.model_validate({"zones": [ZONE], "dwell_s": 60.0}),
        }
    )
    engine = RulesEngine(config, CLASS_NAMES)
    events_a: list[IncidentEvent] = []
    events_b: list[IncidentEvent] = []
    for ts, objects in timeline(5, 130.0, lambda ts: [Obj()]):
        events_a += play(engine, [(ts, objects)], source_id="a")
        events_b += play(engine, [(ts, objects)], source_id="b")
    assert [(e.type, e.last_seen_ts, e.source_id) for e in events_a] == [(OPENED, 120.0, "a")]
    assert [(e.type, e.last_seen_ts, e.source_id) for e in events_b][:1] == [(OPENED, 60.0, "b")]
    assert events_a[0].incident_id != events_b[0].incident_id


def test_a_source_without_zones_and_no_zones_off_opens_only_hazards() -> None:
    config = RulesConfig(
        sources={"configured": FixedCamera.model_validate({"zones": [ZONE]})},
        default_source=FixedCamera.model_validate({"no_zones": "off"}),
    )
    engine = RulesEngine(config, CLASS_NAMES)
    garbage = Obj(box=(100.0, 100.0, 200.0, 200.0), cls="garbage", track_id=2)
    events = play(engine, timeline(5, 200.0, lambda ts: [Obj(), garbage]), source_id="elsewhere")
    assert [e.category for e in of_type(events, OPENED)] == ["EXPOSED_GARBAGE"]


def test_a_source_without_zones_has_its_whole_view_as_one_zone_by_default() -> None:
    engine = RulesEngine(RulesConfig(), CLASS_NAMES)  # the embedded default: no zones anywhere
    garbage = Obj(box=(100.0, 100.0, 200.0, 200.0), cls="garbage", track_id=2)
    corner = Obj(box=(0.0, 0.0, 120.0, 90.0), cls="goods", track_id=3)  # top-left corner: still in view
    events = play(engine, timeline(5, 200.0, lambda ts: [Obj(), garbage, corner]), source_id="anywhere")
    opened = {e.category: e for e in of_type(events, OPENED)}
    assert set(opened) == {"EXPOSED_GARBAGE", "ROAD_OCCUPYING_STALL", "OUTSIDE_SHOP_TRADING"}
    assert opened["ROAD_OCCUPYING_STALL"].zone_id == opened["OUTSIDE_SHOP_TRADING"].zone_id == "whole-view"
    assert opened["ROAD_OCCUPYING_STALL"].last_seen_ts == 120.0, "the whole view still waits dwell_s"
    assert opened["EXPOSED_GARBAGE"].zone_id == ""


def test_stall_outside_the_zone_never_opens() -> None:
    events = play(make_engine(), timeline(5, 200.0, lambda ts: [Obj(box=(800.0, 100.0, 1000.0, 300.0))]))
    assert events == []


def test_zones_drawn_at_another_resolution_are_scaled() -> None:
    engine = make_engine(zones_frame_size_px=(3840, 2160))  # zone covers y >= 250 of a 1080p stream
    events = play(engine, timeline(5, 125.0, lambda ts: [Obj(box=(800.0, 100.0, 1000.0, 300.0))]))
    assert [e.type for e in events] == [OPENED]


def test_ground_fixes_put_location_note_and_pose_on_events() -> None:
    seen: list[tuple[str, int, tuple[int, int], Telemetry | None]] = []
    pose = Telemetry(lat=39.9, lon=116.4, altitude_agl_m=6.0)

    def locate(source_id: str, dets: Detections, size: tuple[int, int], telemetry: Telemetry | None) -> GroundFixes:
        seen.append((source_id, len(dets), size, telemetry))
        return GroundFixes([GeoPoint(39.9, 116.4, 3.0, "HOMOGRAPHY")] * len(dets), ["a note"] * len(dets), pose)

    config = RulesConfig(sources={SOURCE: FixedCamera.model_validate({"zones": [ZONE]})})
    engine = GeoThenRules(RulesEngine(config, CLASS_NAMES), locate)
    events = play(engine, timeline(5, 121.0, lambda ts: [Obj()]))
    assert events[0].location == GeoPoint(39.9, 116.4, 3.0, "HOMOGRAPHY")
    assert (events[0].location_note, events[0].source_pose) == ("a note", pose)
    assert seen[0] == (SOURCE, 1, FRAME_SIZE, None)


def test_ground_fixes_of_the_wrong_count_are_a_readable_error() -> None:
    engine = RulesEngine(RulesConfig(), CLASS_NAMES)
    with pytest.raises(RulesError, match="2 ground fixes for 1 detections"):
        engine.update(SOURCE, 0.0, make_detections([Obj(cls="garbage")]), FRAME_SIZE, GroundFixes.unlocated(2))


def test_moving_camera_confirms_stalls_instead_of_dwelling() -> None:
    config = RulesConfig(sources={"drone": MovingCamera(camera="moving")})
    engine = RulesEngine(config, CLASS_NAMES)
    events = play(engine, timeline(5, 10.0, lambda ts: [Obj(box=(800.0, 100.0, 1000.0, 300.0))]), source_id="drone")
    assert [(e.type, e.last_seen_ts, e.rule) for e in events] == [(OPENED, 1.0, "confirm>=2of3s|2passes")]


def test_bad_class_id_is_a_readable_error() -> None:
    engine = RulesEngine(RulesConfig(), ["stall"])
    with pytest.raises(RulesError, match="class_id 7 is outside the 1 class names"):
        engine.update(SOURCE, 0.0, make_detections([Obj(cls="person")]), FRAME_SIZE)


def test_untracked_detections_and_late_frames_are_accepted() -> None:
    engine = make_engine()
    dets = replace(make_detections([Obj()]), track_id=None)  # no tracker ran
    events = []
    for ts in [*range(0, 121), 60.0]:  # a late frame at the end counts at the latest time
        events += engine.update(SOURCE, float(ts), dets, FRAME_SIZE)
    assert [(e.type, e.last_seen_ts) for e in events] == [(OPENED, 120.0)]
