"""Event log, offsets and incidents: the store contract, run against every backend."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from detector.store import (
    DuplicateEvent,
    EventFilter,
    IncidentState,
    IncidentStore,
    IncompatibleSchema,
    InvalidEvent,
    InvalidQuery,
    OffsetAheadOfLog,
    SqliteStore,
    StoreClosed,
    StoreFull,
)
from detector.store.sqlite import DB_FILENAME
from detector.types import EventType
from tests.store.factories import STORE_FACTORIES, FakeClock, make_event


def test_append_numbers_events_from_one_without_gaps(store: IncidentStore) -> None:
    first = store.append([make_event(), make_event(type=EventType.UPDATED)])
    second = store.append([make_event(type=EventType.UPDATED)])

    assert [e.sequence for e in first + second] == [1, 2, 3]
    assert store.last_sequence() == 3
    assert store.read_events(0, 10) == first + second


def test_append_of_nothing_is_a_no_op(store: IncidentStore) -> None:
    assert store.append([]) == []
    assert store.last_sequence() == 0


def test_events_round_trip_every_field(store: IncidentStore) -> None:
    event = make_event(location=None, evidence=())
    (stored,) = store.append([event, make_event()])[:1]
    assert stored == replace(event, sequence=1)
    assert store.read_events(0, 1) == [stored]


def test_concurrent_appends_get_unique_gap_free_sequences(store: IncidentStore) -> None:
    threads_n, appends_per_thread = 4, 25
    results: list[list[int]] = [[] for _ in range(threads_n)]
    start = threading.Barrier(threads_n)

    def writer(slot: int) -> None:
        start.wait()
        for i in range(appends_per_thread):
            batch = [make_event(incident_id=f"inc-{slot}") for _ in range(1 + i % 3)]
            results[slot].extend(e.sequence for e in store.append(batch))

    threads = [threading.Thread(target=writer, args=(slot,)) for slot in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    total = sum(len(r) for r in results)
    assert sorted(s for r in results for s in r) == list(range(1, total + 1))
    assert all(r == sorted(r) for r in results)
    assert [e.sequence for e in store.read_events(0, 1000)] == list(range(1, total + 1))


def test_sequence_continues_after_reopen(backend: str, tmp_path: Path, clock: FakeClock) -> None:
    with STORE_FACTORIES[backend](tmp_path, clock) as store:
        store.append([make_event() for _ in range(3)])
    with STORE_FACTORIES[backend](tmp_path, clock) as store:
        assert store.last_sequence() == 3
        assert [e.sequence for e in store.append([make_event()])] == [4]
        assert len(store.read_events(0, 10)) == 4


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sequence": 7}, "already has sequence 7"),
        ({"severity": "urgent"}, "unknown severity 'urgent'"),
        ({"incident_id": ""}, "need an event_id and an incident_id"),
    ],
)
def test_append_rejects_malformed_events(store: IncidentStore, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidEvent, match=message):
        store.append([make_event(), replace(make_event(), **overrides)])
    assert store.last_sequence() == 0


def test_duplicate_event_id_rolls_back_the_whole_batch(store: IncidentStore) -> None:
    (stored,) = store.append([make_event()])
    with pytest.raises(DuplicateEvent):
        store.append([make_event(incident_id="inc-2"), replace(stored, sequence=0, label="another label")])

    assert store.last_sequence() == 1
    assert store.get_incident("inc-2") is None
    assert [e.sequence for e in store.append([make_event()])] == [2]


def test_full_database_raises_store_full_and_loses_no_sequence(tmp_path: Path) -> None:
    with SqliteStore(tmp_path) as store:
        store.append([make_event()])
        # A page cap makes SQLite fail with SQLITE_FULL exactly as a full disk does.
        pages = store._writer.execute("PRAGMA page_count").fetchone()[0]
        store._writer.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StoreFull, match="disk full"):
            store.append([make_event(label="x" * 20_000)])
        assert store.last_sequence() == 1
        store._writer.execute("PRAGMA max_page_count = 1073741823")
        assert [e.sequence for e in store.append([make_event()])] == [2]


@pytest.mark.parametrize(
    ("event_filter", "expected_incidents"),
    [
        (EventFilter(), ["stall", "garbage", "pothole", "bin"]),
        (EventFilter(categories={"EXPOSED_GARBAGE", "ROAD_DAMAGE"}), ["garbage", "pothole"]),
        (EventFilter(source_ids={"drone-7"}), ["pothole", "bin"]),
        (EventFilter(min_severity="high"), ["pothole", "bin"]),
        (EventFilter(min_severity="critical"), ["bin"]),
        (EventFilter(min_severity="low"), ["stall", "garbage", "pothole", "bin"]),
        (EventFilter(categories={"ROAD_DAMAGE"}, source_ids={"cam-1"}), []),
    ],
)
def test_read_events_filters(store: IncidentStore, event_filter: EventFilter, expected_incidents: list[str]) -> None:
    store.append(
        [
            make_event("stall", category="ROAD_OCCUPYING_STALL", severity="medium", source_id="cam-1"),
            make_event("garbage", category="EXPOSED_GARBAGE", severity="low", source_id="cam-1"),
            make_event("pothole", category="ROAD_DAMAGE", severity="high", source_id="drone-7"),
            make_event("bin", category="OVERFLOWING_BIN", severity="critical", source_id="drone-7"),
        ]
    )
    assert [e.incident_id for e in store.read_events(0, 10, event_filter)] == expected_incidents
    assert [e.incident_id for e in store.list_incidents(event_filter).items] == expected_incidents[::-1]


def test_filter_rejects_unknown_severity() -> None:
    with pytest.raises(ValueError, match="unknown severity 'severe'"):
        EventFilter(min_severity="severe")


@pytest.mark.parametrize(("after", "limit", "expected"), [(0, 3, [1, 2, 3]), (3, 10, [4, 5]), (5, 10, []), (4, 1, [5])])
def test_read_events_pages_by_sequence(store: IncidentStore, after: int, limit: int, expected: list[int]) -> None:
    store.append([make_event() for _ in range(5)])
    assert [e.sequence for e in store.read_events(after, limit)] == expected


def test_read_events_rejects_a_zero_limit(store: IncidentStore) -> None:
    with pytest.raises(InvalidQuery, match="limit must be at least 1"):
        store.read_events(0, 0)


def test_incident_follows_its_lifecycle(store: IncidentStore) -> None:
    steps = [EventType.OPENED, EventType.UPDATED, EventType.CLEARED, EventType.OPENED]
    states = [IncidentState.OPEN, IncidentState.OPEN, IncidentState.CLEARED, IncidentState.OPEN]
    for opened, (step, state) in enumerate(zip(steps, states, strict=True)):
        (event,) = store.append([make_event(type=step, confidence=0.5 + opened / 10)])
        record = store.get_incident("inc-1")
        assert record is not None
        assert (record.state, record.last_event) == (state, event)
    assert record is not None
    assert record.opened_count == 2
    assert store.get_incident("unknown") is None


def test_open_incidents_lists_uncleared_ones_with_their_last_event(store: IncidentStore) -> None:
    store.append([make_event("a"), make_event("b"), make_event("c")])
    store.append([make_event("b", type=EventType.CLEARED)])
    (a_update,) = store.append([make_event("a", type=EventType.UPDATED, box_xyxy=(1.0, 2.0, 3.0, 4.0))])

    open_now = {r.incident_id: r for r in store.open_incidents()}
    assert sorted(open_now) == ["a", "c"]
    assert open_now["a"].last_event == a_update


def test_list_incidents_pages_newest_first(store: IncidentStore) -> None:
    store.append([make_event(f"inc-{i:02d}") for i in range(25)])
    store.append([make_event("inc-03", type=EventType.CLEARED)])

    seen: list[str] = []
    token = ""
    for expected_size in (10, 10, 5):
        page = store.list_incidents(page_size=10, page_token=token)
        assert len(page.items) == expected_size
        seen += [r.incident_id for r in page.items]
        token = page.next_page_token
    assert token == ""
    assert seen == [f"inc-{i:02d}" for i in reversed(range(25))]
    cleared = store.list_incidents(state=IncidentState.CLEARED)
    assert [r.incident_id for r in cleared.items] == ["inc-03"]


@pytest.mark.parametrize(
    ("page_size", "page_token", "message"),
    [
        (0, "", "page_size must be between"),
        (5000, "", "page_size must be between"),
        (10, "bogus!", "not issued"),
    ],
)
def test_list_incidents_rejects_bad_paging(store: IncidentStore, page_size: int, page_token: str, message: str) -> None:
    with pytest.raises(InvalidQuery, match=message):
        store.list_incidents(page_size=page_size, page_token=page_token)


@pytest.mark.parametrize(
    ("acks", "expected"),
    [
        ([3], 3),
        ([2, 5, 4], 5),  # an older ack after a newer one is a no-op
        ([5, 5], 5),
        ([0], 0),
    ],
)
def test_offsets_only_move_forward(store: IncidentStore, acks: list[int], expected: int) -> None:
    store.append([make_event() for _ in range(5)])
    committed = [store.commit_offset("dispatch", seq) for seq in acks]
    assert committed[-1] == expected
    assert store.get_offset("dispatch") == expected
    assert store.get_offset("someone-else") == 0


def test_offset_beyond_the_log_is_rejected(store: IncidentStore) -> None:
    store.append([make_event()])
    with pytest.raises(OffsetAheadOfLog, match="log ends at 1"):
        store.commit_offset("dispatch", 2)
    with pytest.raises(InvalidQuery):
        store.commit_offset("", 1)


def test_offsets_survive_reopen(backend: str, tmp_path: Path, clock: FakeClock) -> None:
    with STORE_FACTORIES[backend](tmp_path, clock) as store:
        store.append([make_event() for _ in range(4)])
        store.commit_offset("dispatch", 3)
    with STORE_FACTORIES[backend](tmp_path, clock) as store:
        assert store.get_offset("dispatch") == 3
        assert store.commit_offset("dispatch", 2) == 3


def test_closed_store_refuses_calls(store: IncidentStore) -> None:
    store.close()
    store.close()
    with pytest.raises(StoreClosed):
        store.append([make_event()])
    with pytest.raises(StoreClosed):
        store.last_sequence()


def test_store_reads_from_other_threads(store: IncidentStore) -> None:
    store.append([make_event() for _ in range(3)])
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.append(store.last_sequence()))
    reader.start()
    reader.join()
    assert seen == [3]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    SqliteStore(tmp_path).close()
    with sqlite3.connect(tmp_path / DB_FILENAME) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(IncompatibleSchema, match="schema version 99"):
        SqliteStore(tmp_path)


def test_event_log_rejects_updates_and_deletes(tmp_path: Path) -> None:
    with SqliteStore(tmp_path) as store:
        store.append([make_event()])
    with (
        sqlite3.connect(tmp_path / DB_FILENAME) as conn,
        pytest.raises(sqlite3.IntegrityError, match="append-only"),
    ):
        conn.execute("DELETE FROM events")
