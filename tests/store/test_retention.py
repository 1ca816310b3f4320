"""Retention prunes evidence and long-cleared incidents, never the event log."""

from __future__ import annotations

import pytest

from detector.store import EvidenceMissing, IncidentStore
from detector.types import EventType
from tests.store.factories import FakeClock, make_event


def test_evidence_older_than_max_age_is_deleted(store: IncidentStore, clock: FakeClock) -> None:
    old = store.put_evidence("crop_jpeg", b"old" * 100)
    clock.advance(100)
    new = store.put_evidence("crop_jpeg", b"new" * 100)
    clock.advance(50)

    report = store.apply_retention(max_age_s=120, max_bytes=None)

    assert (report.evidence_deleted, report.evidence_bytes_freed, report.evidence_bytes_kept) == (1, 300, 300)
    with pytest.raises(EvidenceMissing):
        store.open_evidence(old.sha256)
    assert store.open_evidence(new.sha256).read() == b"new" * 100


@pytest.mark.parametrize(
    ("max_bytes", "survivors"),
    [(10_000, [0, 1, 2, 3]), (2_500, [2, 3]), (2_000, [2, 3]), (1_999, [3]), (0, [])],
)
def test_evidence_beyond_max_bytes_goes_oldest_first(
    store: IncidentStore, clock: FakeClock, max_bytes: int, survivors: list[int]
) -> None:
    stored = []
    for i in range(4):
        stored.append(store.put_evidence("frame_jpeg", bytes([i]) * 1000))
        clock.advance(1)

    report = store.apply_retention(max_age_s=None, max_bytes=max_bytes)

    assert report.evidence_bytes_kept == 1000 * len(survivors)
    for i, evidence in enumerate(stored):
        if i in survivors:
            store.open_evidence(evidence.sha256)
        else:
            with pytest.raises(EvidenceMissing):
                store.open_evidence(evidence.sha256)


def test_evidence_of_open_incidents_is_kept(store: IncidentStore, clock: FakeClock) -> None:
    kept = store.put_evidence("crop_jpeg", b"open incident")
    dropped = store.put_evidence("crop_jpeg", b"cleared incident")
    store.append([make_event("open", evidence=(kept,)), make_event("gone", evidence=(dropped,))])
    store.append([make_event("gone", type=EventType.CLEARED, evidence=(dropped,))])
    clock.advance(10_000)

    report = store.apply_retention(max_age_s=60, max_bytes=0)

    assert report.evidence_deleted == 1
    assert store.open_evidence(kept.sha256).read() == b"open incident"


def test_long_cleared_incidents_are_pruned_but_the_log_stays(store: IncidentStore, clock: FakeClock) -> None:
    store.append([make_event("old"), make_event("recent"), make_event("ongoing")])
    store.append([make_event("old", type=EventType.CLEARED)])
    clock.advance(1_000)
    store.append([make_event("recent", type=EventType.CLEARED)])
    clock.advance(100)

    report = store.apply_retention(max_age_s=500, max_bytes=None)

    assert report.incidents_pruned == 1
    assert store.get_incident("old") is None
    assert store.get_incident("recent") is not None
    assert [r.incident_id for r in store.open_incidents()] == ["ongoing"]
    assert [e.sequence for e in store.read_events(0, 100)] == [1, 2, 3, 4, 5]
    assert [e.sequence for e in store.append([make_event("old")])] == [6]
    assert store.integrity_check() == []
