"""One incident per stall across replicas: two rules engines (two replicas, each with its drone) on one PostgreSQL
schema, flying over the same stall, raise one incident; without the shared lookup they raise two."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.incidents import SharedIncidents
from detector.rules import RulesConfig, RulesEngine
from detector.store import IncidentStore, PostgresStore
from detector.types import EventType, GeoPoint, GroundFixes, IncidentEvent, LocationMethod
from tests.rules.helpers import CLASS_NAMES, FRAME_SIZE, Obj, make_detections
from tests.store.factories import drop_postgres_schemas, make_event, postgres_url

LAT, LON = 39.9042, 116.4074
CONFIG = RulesConfig.model_validate(
    {"sources": {name: {"camera": "moving"} for name in ("drone-a", "drone-b", "drone-c")}}
)


@pytest.fixture(autouse=True)
def _drop_schemas() -> Iterator[None]:
    yield
    drop_postgres_schemas()


def stall_at(north_m: float, east_m: float) -> GeoPoint:
    return GeoPoint(
        LAT + north_m / 111_000.0,
        LON + east_m / (111_000.0 * math.cos(math.radians(LAT))),
        2.0,
        LocationMethod.DRONE_PROJECTION,
    )


async def fly_over(
    rules: RulesEngine, shared: SharedIncidents | None, store: IncidentStore, source_id: str, offset_m: float
) -> list[IncidentEvent]:
    """Twenty seconds over the stall at 2 fps, each frame's events appended as the pipeline does."""
    stored: list[IncidentEvent] = []
    for i in range(40):
        fixes = GroundFixes(locations=[stall_at(offset_m, 0.0)], notes=[""])
        events = rules.update(source_id, i / 2.0, make_detections([Obj()]), FRAME_SIZE, fixes)
        if events and shared is not None:
            events = await shared.join(source_id, events)
        if events:
            stored += await asyncio.to_thread(store.append, events)
    return stored


@pytest.mark.parametrize("share", [True, False])
def test_drones_of_two_replicas_over_one_stall_raise_one_incident(tmp_path: Path, share: bool) -> None:
    url = postgres_url(tmp_path)

    async def scenario(
        replica_a: PostgresStore, replica_b: PostgresStore
    ) -> tuple[list[IncidentEvent], list[IncidentEvent], list[IncidentEvent], int]:
        rules_a, rules_b = RulesEngine(CONFIG, CLASS_NAMES), RulesEngine(CONFIG, CLASS_NAMES)
        shared_a = SharedIncidents(replica_a, rules_a) if share else None
        shared_b = SharedIncidents(replica_b, rules_b) if share else None
        by_a = await fly_over(rules_a, shared_a, replica_a, "drone-a", 0.0)
        by_b = await fly_over(rules_b, shared_b, replica_b, "drone-b", 3.0)  # its projection is 3 m off
        # What drone-b's replica says next about its incident (its stream dropping here) names the shared one.
        later_b = rules_b.source_down("drone-b", 20.0)
        return by_a, by_b, later_b, 0 if shared_b is None else shared_b.joined

    with PostgresStore(url) as replica_a, PostgresStore(url) as replica_b:
        by_a, by_b, later_b, joined = asyncio.run(scenario(replica_a, replica_b))
        incidents = replica_a.list_incidents().items

    assert [e.type for e in by_a][:1] == [EventType.OPENED]
    if not share:
        assert len(incidents) == 2, "without the shared lookup each replica opens its own"
        return
    assert len(incidents) == 1
    (incident,) = incidents
    assert {e.incident_id for e in (*by_a, *by_b)} == {incident.incident_id}
    assert EventType.OPENED not in {e.type for e in by_b}, "drone-b's OPENED became an UPDATED"
    assert by_b[0].note == "also seen by drone-b"
    assert (joined, incident.opened_count) == (1, 1)
    assert [e.incident_id for e in later_b] == [incident.incident_id], "drone-b's later events continue it"


def test_an_incident_farther_than_the_association_radius_is_not_joined(tmp_path: Path) -> None:
    radius_m = CONFIG.for_source("drone-c").geo.dedup_radius_m  # type: ignore[union-attr]

    async def scenario(store: PostgresStore) -> list[IncidentEvent]:
        store.append([make_event("elsewhere", source_id="drone-x", location=stall_at(radius_m + 2.0, 0.0))])
        rules = RulesEngine(CONFIG, CLASS_NAMES)
        return await fly_over(rules, SharedIncidents(store, rules), store, "drone-c", 0.0)

    with PostgresStore(postgres_url(tmp_path)) as store:
        events = asyncio.run(scenario(store))
    assert events[0].type is EventType.OPENED and events[0].incident_id != "elsewhere"


def test_a_store_that_cannot_answer_leaves_the_opened_event_as_it_is(tmp_path: Path) -> None:
    store = PostgresStore(postgres_url(tmp_path))
    store.close()  # every query now raises StoreClosed, a StoreError
    rules = RulesEngine(CONFIG, CLASS_NAMES)
    shared = SharedIncidents(store, rules)

    async def scenario() -> list[IncidentEvent]:
        raised: list[IncidentEvent] = []
        for i in range(40):
            fixes = GroundFixes(locations=[stall_at(0.0, 0.0)], notes=[""])
            events = rules.update("drone-a", i / 2.0, make_detections([Obj()]), FRAME_SIZE, fixes)
            raised += await shared.join("drone-a", events)
        return raised

    events = asyncio.run(scenario())
    assert events and events[0].type is EventType.OPENED
    assert shared.joined == 0
