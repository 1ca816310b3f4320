"""Appending again what is already in the log (a retry after a lost commit) is answered with the stored copies.

The client of a store cannot tell whether an append committed when the connection drops during the commit; the
event writer then appends the same events again. Every backend runs these (the ``store`` fixture).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

import pytest

from detector.incidents import EventWriter
from detector.store import DuplicateEvent, IncidentStore, StoreError
from detector.types import EventType, IncidentEvent
from tests.store.factories import make_event


def test_a_repeated_append_returns_the_stored_copies_and_stores_nothing_new(store: IncidentStore) -> None:
    batch = [make_event("inc-1"), make_event("inc-1", type=EventType.UPDATED), make_event("inc-2")]
    first = store.append(batch)
    woken: list[int] = []
    store.subscribe_appends(woken.append)

    again = store.append(batch)

    assert again == first
    assert [e.sequence for e in again] == [1, 2, 3]
    assert store.last_sequence() == 3
    assert [e.event_id for e in store.read_events(0, 10)] == [e.event_id for e in batch]
    incident = store.get_incident("inc-1")
    assert incident is not None and incident.opened_count == 1, "the retried OPENED did not count again"
    assert woken == [], "nothing was committed, so no follower is woken"
    assert store.integrity_check() == []


def test_a_retry_with_events_added_since_stores_only_the_new_ones_after_the_log_end(store: IncidentStore) -> None:
    lost_commit = [make_event("inc-1"), make_event("inc-2")]
    store.append(lost_commit)
    store.append([make_event("inc-3")])  # another writer appended meanwhile
    later = make_event("inc-1", type=EventType.UPDATED)

    stored = store.append([*lost_commit, later])

    assert [(e.event_id, e.sequence) for e in stored] == [
        (lost_commit[0].event_id, 1),
        (lost_commit[1].event_id, 2),
        (later.event_id, 4),
    ]
    assert [e.sequence for e in store.read_events(0, 10)] == [1, 2, 3, 4]
    incident = store.get_incident("inc-1")
    assert incident is not None and incident.last_event == stored[2]


@pytest.mark.parametrize(
    "change",
    [{"label": "another label"}, {"confidence": 0.5}, {"type": EventType.CLEARED}, {"incident_id": "inc-9"}],
)
def test_an_event_id_reused_for_other_content_is_refused_and_the_batch_is_not_stored(
    store: IncidentStore, change: dict[str, object]
) -> None:
    (stored,) = store.append([make_event("inc-1")])
    fresh = make_event("inc-2")

    with pytest.raises(DuplicateEvent, match=stored.event_id):
        store.append([fresh, replace(stored, sequence=0, **change)])  # type: ignore[arg-type]

    assert store.last_sequence() == 1
    assert store.get_incident("inc-2") is None
    assert store.get_incident("inc-9") is None


def test_the_event_writer_retrying_a_commit_whose_answer_was_lost_stores_each_event_once(
    store: IncidentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = store.append
    answers_lost = [True]

    def append_then_lose_the_answer(events: Sequence[IncidentEvent]) -> list[IncidentEvent]:
        stored = commit(events)
        if answers_lost.pop(0) if answers_lost else False:
            raise StoreError("appending events: server closed the connection unexpectedly")
        return stored

    monkeypatch.setattr(store, "append", append_then_lose_the_answer)
    writable: list[bool] = []

    async def on_writable(value: bool) -> None:
        writable.append(value)

    async def go() -> EventWriter:
        writer = EventWriter(store, max_backlog=10, on_writable=on_writable)
        await writer.append([make_event("inc-1")])  # committed, but the writer is told it failed
        assert writer.backlog == 1
        await writer.append([make_event("inc-2")])  # the retry carries it again, with the next one
        return writer

    writer = asyncio.run(go())
    assert [e.incident_id for e in store.read_events(0, 10)] == ["inc-1", "inc-2"]
    assert (writer.backlog, writer.events_lost, writable) == (0, 0, [False, True])


def test_a_long_backlog_retried_at_once_is_recognised_whole(store: IncidentStore) -> None:
    backlog = [make_event(f"inc-{i % 50}", type=EventType.UPDATED) for i in range(1_200)]
    store.append(backlog[:700])  # the part that committed before the connection dropped
    stored = store.append(backlog)
    assert [e.sequence for e in stored] == list(range(1, 1_201))
    assert store.last_sequence() == 1_200
