"""Dead letters: events a consumer (a delivery connector) gave up on, kept durably per consumer."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from detector.store import DeadLetter, IncidentStore, InvalidQuery, SqliteStore
from detector.store.sqlite import DB_FILENAME
from detector.store.sqlite_schema import MIGRATIONS
from tests.store.factories import STORE_FACTORIES, FakeClock, make_event


def test_dead_letters_are_kept_per_consumer_in_log_order(store: IncidentStore, clock: FakeClock) -> None:
    events = store.append([make_event(incident_id=f"inc-{i}") for i in range(3)])
    store.add_dead_letter("delivery:b", events[2].sequence, events[2].event_id, "HTTP 400", 10)
    store.add_dead_letter("delivery:b", events[0].sequence, events[0].event_id, "HTTP 422", 3)
    store.add_dead_letter("delivery:c", events[1].sequence, events[1].event_id, "too big", 1)
    assert store.dead_letters("delivery:b") == [
        DeadLetter("delivery:b", 1, events[0].event_id, "HTTP 422", 3, clock.now),
        DeadLetter("delivery:b", 3, events[2].event_id, "HTTP 400", 10, clock.now),
    ]
    assert [d.reason for d in store.dead_letters("delivery:c")] == ["too big"]
    assert store.dead_letters("nobody") == []


def test_recording_again_replaces_and_removing_forgets(store: IncidentStore) -> None:
    (event,) = store.append([make_event()])
    store.add_dead_letter("d", event.sequence, event.event_id, "HTTP 400", 2)
    store.add_dead_letter("d", event.sequence, event.event_id, "HTTP 410", 4)
    assert [(d.reason, d.attempts) for d in store.dead_letters("d")] == [("HTTP 410", 4)]
    assert store.remove_dead_letter("d", event.sequence) is True
    assert store.remove_dead_letter("d", event.sequence) is False
    assert store.dead_letters("d") == []
    with pytest.raises(InvalidQuery):
        store.add_dead_letter("", event.sequence, event.event_id, "x", 1)


@pytest.mark.parametrize("backend", sorted(STORE_FACTORIES))
def test_dead_letters_survive_a_reopen(backend: str, tmp_path: Path, clock: FakeClock) -> None:
    with STORE_FACTORIES[backend](tmp_path / "data", clock) as store:
        (event,) = store.append([make_event()])
        store.add_dead_letter("d", event.sequence, event.event_id, "HTTP 400", 2)
    with STORE_FACTORIES[backend](tmp_path / "data", clock) as store:
        assert [d.event_id for d in store.dead_letters("d")] == [event.event_id]


def test_a_database_from_before_dead_letters_opens_and_gains_them(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_FILENAME, isolation_level=None)  # as schema version 2 left it
    for statements in MIGRATIONS[:2]:
        for statement in statements:
            conn.execute(statement)
    conn.execute("CREATE TABLE schema_version (id INTEGER PRIMARY KEY, version INTEGER NOT NULL, migrated_ts REAL)")
    conn.execute("INSERT INTO schema_version VALUES (1, 2, 0)")
    conn.close()
    with SqliteStore(tmp_path) as store:
        (event,) = store.append([make_event()])
        assert store.last_sequence() == 1
        store.add_dead_letter("d", event.sequence, event.event_id, "HTTP 400", 2)
        assert len(store.dead_letters("d")) == 1
