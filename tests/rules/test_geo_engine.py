"""The rules engine with geotagging: drones associate by ground distance and confirm across passes, incidents sit
at the robust mean of their sightings, zones may be lat/lon areas, and events carry the pose at first sight."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest

from detector.geo.enu import shifted
from detector.geo.stage import GeoStage
from detector.rules import RulesConfig, RulesEngine
from detector.types import Detections, EventType, Frame, GeoPoint, GroundFixes, IncidentEvent, Telemetry
from tests.geo.synthetic import (
    DRONE_PROFILE,
    FIXED_SIZE,
    LAT,
    LON,
    control_points,
    distance_m,
    drone_pixel,
    drone_telemetry,
    fixed_pixel,
    geo_square,
)

from .helpers import CLASS_NAMES, GeoThenRules, Obj, make_detections, of_type

OPENED, UPDATED, CLEARED = EventType.OPENED, EventType.UPDATED, EventType.CLEARED
DRONE = "drone-1"
# Drone rules that keep a candidate through a whole patrol: passes are minutes apart.
PATROL = {"camera": "moving", "occlusion_s": 300, "clear_after_s": 300}


def drone_engine(geo: dict[str, Any] | None = None, **rules: Any) -> tuple[GeoThenRules, list[Telemetry | None]]:
    """An engine whose drone source is located by ``NoisyGround`` (set per frame through the returned list)."""
    config = RulesConfig.model_validate({"sources": {DRONE: {**PATROL, **rules, "geo": geo or {}}}})
    return GeoThenRules(RulesEngine(config, CLASS_NAMES), GROUND.locate), []


class NoisyGround:
    """A stand-in for the projection: each object of a frame is at a known place plus noise.

    The noise per axis has sigma ``noise_m``; half its variance is a bias shared by the whole pass (the pose
    error of that pass), half is per frame.
    """

    def __init__(self) -> None:
        self.places: list[tuple[float, float] | None] = []
        self.rng = np.random.default_rng(0)
        self.noise_m = 2.0
        self.bias = np.zeros(2)
        self.pose: Telemetry | None = None

    def new_pass(self) -> None:
        self.bias = self.rng.normal(0.0, self.noise_m / math.sqrt(2), 2)

    def locate(
        self, source_id: str, dets: Detections, size: tuple[int, int], telemetry: Telemetry | None
    ) -> GroundFixes:
        locations: list[GeoPoint | None] = []
        for place in self.places[: len(dets)]:
            if place is None:
                locations.append(None)
                continue
            east, north = np.array(place) + self.bias + self.rng.normal(0.0, self.noise_m / math.sqrt(2), 2)
            lat, lon = shifted(LAT, LON, float(east), float(north))
            locations.append(GeoPoint(lat, lon, self.noise_m, "DRONE_PROJECTION"))
        notes = ["" if loc else "frame has no telemetry" for loc in locations]
        return GroundFixes(locations, notes, self.pose)


GROUND = NoisyGround()


@pytest.fixture(autouse=True)
def fresh_ground() -> None:
    GROUND.__init__()  # type: ignore[misc]


def fly(
    engine: RulesEngine,
    passes: Sequence[float],
    objects: Sequence[tuple[tuple[float, float] | None, str]],
    seconds: float = 3.0,
    fps: float = 10.0,
) -> list[IncidentEvent]:
    """Each pass starts at the given time and sees every object for ``seconds``; boxes sweep down the image as
    the drone flies on, and the tracker gives every pass new ids."""
    events: list[IncidentEvent] = []
    for p, start in enumerate(passes):
        GROUND.new_pass()
        for i in range(int(seconds * fps)):
            ts = start + i / fps
            GROUND.pose = Telemetry(lat=LAT, lon=LON, altitude_agl_m=40.0 + p, gimbal_pitch_deg=-90.0)
            GROUND.places = [place for place, _ in objects]
            y = 20.0 + 6.0 * i
            boxes = [
                Obj(box=(20.0 + 60 * k, y, 60.0 + 60 * k, y + 30), cls=cls, track_id=100 * p + k)
                for k, (_, cls) in enumerate(objects)
            ]
            events += engine.update(DRONE, ts, make_detections(boxes), (320, 240))
    return events


@pytest.mark.parametrize("seed", range(10))
def test_one_stall_on_three_passes_with_2m_noise_is_one_incident_at_the_right_spot(seed: int) -> None:
    engine, _ = drone_engine()
    GROUND.rng = np.random.default_rng(seed)
    events = fly(engine, passes=[0.0, 60.0, 120.0], objects=[((5.0, -3.0), "stall")])
    assert len({e.incident_id for e in events}) == 1
    assert [e.type for e in of_type(events, OPENED)] == [OPENED] and not of_type(events, CLEARED)
    assert len(of_type(events, UPDATED)) <= 2, "updates come when the estimate moves (a pass), not per frame"
    last = events[-1].location
    assert last is not None and last.method == "DRONE_PROJECTION"
    assert distance_m(last.lat, last.lon, 5.0, -3.0) < 3.0
    single_sighting_drms_m = GROUND.noise_m * math.sqrt(2)
    assert last.accuracy_m < single_sighting_drms_m, "passes narrow the estimate below one sighting's scatter"


@pytest.mark.parametrize("seed", range(10))
def test_two_stalls_15m_apart_are_two_incidents(seed: int) -> None:
    engine, _ = drone_engine()
    GROUND.rng = np.random.default_rng(100 + seed)
    events = fly(engine, passes=[0.0, 60.0, 120.0], objects=[((0.0, 0.0), "stall"), ((15.0, 0.0), "stall")])
    incidents = {e.incident_id: e for e in events}  # the last event of each
    assert len(incidents) == 2
    assert len(of_type(events, OPENED)) == 2
    places = sorted((distance_m(e.location.lat, e.location.lon, 0.0, 0.0), e) for e in incidents.values() if e.location)
    assert places[0][0] < 3.0
    far = places[1][1].location
    assert far is not None and distance_m(far.lat, far.lon, 15.0, 0.0) < 3.0


def test_the_same_place_in_another_category_is_another_incident() -> None:
    engine, _ = drone_engine()
    events = fly(engine, passes=[0.0], objects=[((0.0, 0.0), "stall"), ((0.5, 0.0), "garbage")])
    assert sorted(e.category for e in of_type(events, OPENED)) == ["EXPOSED_GARBAGE", "ROAD_OCCUPYING_STALL"]


@pytest.mark.parametrize(("confirm_passes", "opened"), [(2, True), (None, False)])
def test_glimpses_on_two_passes_confirm_a_stall(confirm_passes: int | None, opened: bool) -> None:
    # Half a second per pass is one second-bin: never 2 of 3 s within a pass.
    engine, _ = drone_engine(geo={"confirm_passes": confirm_passes})
    events = fly(engine, passes=[0.0, 60.0], objects=[((0.0, 0.0), "stall")], seconds=0.5)
    assert [(e.type, e.rule) for e in events] == ([(OPENED, "confirm>=2of3s|2passes")] if opened else [])
    if opened:
        assert events[0].first_seen_ts == 0.0 and events[0].last_seen_ts == 60.0


def test_events_carry_the_pose_at_first_sight() -> None:
    engine, _ = drone_engine()
    events = fly(engine, passes=[0.0, 60.0], objects=[((0.0, 0.0), "stall")])
    first_pose = Telemetry(lat=LAT, lon=LON, altitude_agl_m=40.0, gimbal_pitch_deg=-90.0)
    assert len(events) >= 2 and all(e.source_pose == first_pose for e in events)


def test_a_drone_frame_without_telemetry_falls_back_to_the_tracker_and_says_why() -> None:
    engine, _ = drone_engine()
    events = fly(engine, passes=[0.0], objects=[(None, "stall")])
    opened = of_type(events, OPENED)
    assert len(opened) == 1 and len({e.incident_id for e in events}) == 1
    assert opened[0].location is None and opened[0].location_note == "frame has no telemetry"


@pytest.mark.parametrize(("place", "opens"), [((0.0, 0.0), True), ((30.0, 0.0), False)])
def test_a_drone_with_geo_zones_reports_restricted_classes_only_inside_them(
    place: tuple[float, float], opens: bool
) -> None:
    zone = {"id": "old-town", "geometry": geo_square(0.0, 0.0, 10.0), "prohibited_classes": ["stall"]}
    engine, _ = drone_engine(geo={"zones": [zone]})
    events = fly(engine, passes=[0.0], objects=[(place, "stall"), ((30.0, 30.0), "garbage")])
    opened = {e.category: e.zone_id for e in of_type(events, OPENED)}
    expected = {"EXPOSED_GARBAGE": ""} | ({"ROAD_OCCUPYING_STALL": "old-town"} if opens else {})
    assert opened == expected, "garbage is no zone's business, so it opens anywhere"


def test_restore_keeps_location_pose_and_note_and_continues_by_ground_distance() -> None:
    engine, _ = drone_engine()
    events = fly(engine, passes=[0.0], objects=[((0.0, 0.0), "stall")])
    last = events[-1]
    restarted, _ = drone_engine()
    restarted.restore([last])
    later = fly(restarted, passes=[60.0], objects=[((0.0, 0.0), "stall")])
    assert later and {e.incident_id for e in later} == {last.incident_id}
    assert all(e.source_pose == last.source_pose for e in later)


def fixed_engine(geo_zone: dict[str, Any]) -> tuple[GeoThenRules, Callable[[float, float], Obj]]:
    geo = {
        "calibration": {"control_points": control_points()},
        "position": {"lat": LAT, "lon": LON},
        "zones": [geo_zone],
    }
    config = RulesConfig.model_validate({"sources": {"cam-9": {"dwell_s": 30, "geo": geo}}})
    engine = GeoThenRules(RulesEngine(config, CLASS_NAMES), GeoStage(config).locate_at)

    def standing_at(east_m: float, north_m: float) -> Obj:
        x, y = fixed_pixel(east_m, north_m)
        return Obj(box=(x - 8, y - 20, x + 8, y))

    return engine, standing_at


@pytest.mark.parametrize(("east_m", "north_m", "opens"), [(0.0, 15.0, True), (7.0, 28.0, False)])
def test_a_fixed_camera_dwells_in_a_lat_lon_zone(east_m: float, north_m: float, opens: bool) -> None:
    zone = {"id": "crossing", "geometry": geo_square(0.0, 15.0, 4.0), "prohibited_classes": ["stall"]}
    engine, standing_at = fixed_engine(zone)
    events = []
    for ts in range(40):
        events += engine.update("cam-9", float(ts), make_detections([standing_at(east_m, north_m)]), FIXED_SIZE)
    opened = of_type(events, OPENED)
    assert len(opened) == (1 if opens else 0)
    if opens:
        event = opened[0]
        assert (event.zone_id, event.last_seen_ts) == ("crossing", 30.0)
        assert event.location is not None and event.location.method == "HOMOGRAPHY"
        assert distance_m(event.location.lat, event.location.lon, east_m, north_m) < 0.05
        assert event.source_pose == Telemetry(lat=LAT, lon=LON)


def drone_frames(
    engine: GeoThenRules, start_s: float, seconds: float, north_at: Callable[[float], float], stall: bool
) -> list[tuple[float, IncidentEvent]]:
    """The drone over the line 0.3 m east, 40 m up, camera 60 deg down looking north, at 5 fps; the stall at
    (0, 0) is detected where the camera model puts it while ``stall`` is there. Returns (frame time, event)."""
    events: list[tuple[float, IncidentEvent]] = []
    for i in range(int(seconds * 5)):
        t = start_s + i / 5
        telemetry = drone_telemetry(0.3, north_at(t), gimbal_pitch_deg=-60.0, gimbal_yaw_deg=0.0)
        pixel = drone_pixel(telemetry, 0.0, 0.0)
        objects = [Obj(box=(pixel[0] - 6, pixel[1] - 12, pixel[0] + 6, pixel[1]))] if stall and pixel else []
        frame = Frame(DRONE, i, t, np.zeros((240, 320, 3), np.uint8), telemetry)
        events += [(t, e) for e in engine.update(DRONE, t, make_detections(objects), (320, 240), frame)]
    return events


def test_a_drone_clears_an_incident_only_after_looking_at_its_place_and_not_seeing_it() -> None:
    drone = {"camera": "moving", "geo": {"camera_profile": DRONE_PROFILE}}
    config = RulesConfig.model_validate({"sources": {DRONE: drone}})
    engine = GeoThenRules(RulesEngine(config, CLASS_NAMES), GeoStage(config).locate_at)
    # Pass 1 flies north over the stall; then 10 minutes elsewhere (2 km north: the stall is out of view).
    events = drone_frames(engine, 0.0, 8.0, lambda t: -22.0 + 5.0 * t, stall=True)
    events += drone_frames(engine, 10.0, 600.0, lambda t: 2000.0, stall=True)
    assert [e.type for _, e in events] == [OPENED], "flying elsewhere far longer than clear_after_s clears nothing"
    # Pass 2 looks at the place from 22 m south (the image centre) at 700 s, and the stall has gone.
    events += drone_frames(engine, 700.0, 8.0, lambda t: -22.0 + 5.0 * (t - 700.0), stall=False)
    cleared = [(t, e) for t, e in events if e.type is CLEARED]
    assert len(cleared) == 1 and cleared[0][1].incident_id == events[0][1].incident_id
    assert cleared[0][0] == pytest.approx(703.0), "after geo.clear_after_in_view_s (3 s) of looking"
