from __future__ import annotations

import json

import pytest

from detector.cluster.demo_audit import LoggedEvent, Observation, Takeover, audit, takeovers
from detector.types import STREAM_HEALTH, EventType

OPENED, UPDATED, CLEARED = EventType.OPENED, EventType.UPDATED, EventType.CLEARED


def make_log(*events: tuple[int, str, EventType], source_id: str = "market-street") -> list[LoggedEvent]:
    """(sequence, incident_id, type) -> LoggedEvents with event ids derived from the sequence."""
    return [LoggedEvent(seq, f"ev-{seq}", inc, kind, source_id, "STALL") for seq, inc, kind in events]


CLEAN = make_log((1, "a", OPENED), (2, "b", OPENED), (3, "a", UPDATED), (4, "a", CLEARED), (5, "a", OPENED))
MOVES = (Takeover("market-street", "replica-1", "replica-2"),)


def seen_all(log: list[LoggedEvent], replica: str = "replica-2", survived: bool = True) -> Observation:
    received = tuple((e.sequence, e.event_id) for e in log)
    return Observation(f"case-{replica}", replica, survived, received, max((e.sequence for e in log), default=0))


def run_audit(
    log: list[LoggedEvent],
    observations: list[Observation] | None = None,
    matches: dict[str, dict[str, int]] | None = None,
    moves: tuple[Takeover, ...] = MOVES,
) -> dict[str, bool]:
    report = audit(
        log,
        [seen_all(log)] if observations is None else observations,
        {"market-street": {"a": 1, "b": 2}} if matches is None else matches,
        moves,
        "replica-1",
    )
    return {c.name: c.passed for c in report.checks}


def test_a_clean_log_passes() -> None:
    report = audit(
        CLEAN,
        [seen_all(CLEAN), seen_all(CLEAN[:2], "replica-1", survived=False)],
        {"market-street": {"a": 1, "b": 2}},
        MOVES,
        "replica-1",
    )
    assert report.passed, report.text()
    assert "PASSED" in report.text()
    assert "market-street: replica-1 -> replica-2" in report.text()
    assert json.loads(json.dumps(report.to_dict()))["passed"] is True


@pytest.mark.parametrize(
    ("log", "failing"),
    [
        (make_log((1, "a", OPENED), (3, "b", OPENED)), "gap_free"),  # sequence 2 missing
        (make_log((1, "a", OPENED), (2, "b", OPENED), (2, "b", UPDATED)), "gap_free"),  # 2 stored twice
        (make_log((0, "a", OPENED), (1, "b", OPENED)), "gap_free"),
        (make_log((1, "a", OPENED), (2, "a", UPDATED), (3, "a", OPENED)), "opened_once"),  # reopened while open
    ],
)
def test_a_broken_log_fails(log: list[LoggedEvent], failing: str) -> None:
    assert run_audit(log)[failing] is False


def test_the_same_event_under_two_sequences_fails() -> None:
    log = make_log((1, "a", OPENED), (2, "a", UPDATED))
    log[1] = LoggedEvent(2, "ev-1", "a", UPDATED, "market-street", "STALL")
    assert run_audit(log)["event_ids_unique"] is False


def test_a_reopen_after_clear_is_not_a_second_opening() -> None:
    assert run_audit(CLEAN)["opened_once"] is True


def test_stream_health_outages_are_not_judged_as_incidents() -> None:
    log = [LoggedEvent(1, "ev-1", "down", EventType.SOURCE_DOWN, "cam", STREAM_HEALTH)]
    log.append(LoggedEvent(2, "ev-2", "down", EventType.OPENED, "cam", STREAM_HEALTH))
    assert run_audit(log)["opened_once"] is True


def test_a_duplicate_incident_fails() -> None:
    result = run_audit(CLEAN, matches={"market-street": {"a": 1, "b": 1}})
    assert result["no_duplicate_incident"] is False
    assert [name for name, ok in result.items() if not ok] == ["no_duplicate_incident"]


def test_the_same_object_id_in_two_scenarios_is_not_a_duplicate() -> None:
    assert run_audit(CLEAN, matches={"market-street": {"a": 1}, "drone-patrol": {"b": 1}})["no_duplicate_incident"]


@pytest.mark.parametrize(
    "received",
    [
        ((1, "ev-1"), (6, "ev-6")),  # a sequence the log does not have
        ((1, "ev-1"), (2, "ev-other")),  # a different event at that sequence
    ],
)
def test_an_observed_event_missing_from_the_log_fails(received: tuple[tuple[int, str], ...]) -> None:
    dead = Observation("case-replica-1", "replica-1", False, received)
    assert run_audit(CLEAN, observations=[seen_all(CLEAN), dead])["observed_in_log"] is False


def test_a_live_subscriber_that_missed_an_event_fails() -> None:
    partial = Observation("case-replica-3", "replica-3", True, ((1, "ev-1"), (2, "ev-2")), caught_up_to=5)
    result = run_audit(CLEAN, observations=[seen_all(CLEAN), partial])
    assert result["survivors_saw_all"] is False
    assert result["observed_in_log"] is True


def test_events_appended_after_a_subscriber_stopped_are_not_missed_by_it() -> None:
    stopped_early = Observation("case-replica-3", "replica-3", True, ((1, "ev-1"), (2, "ev-2")), caught_up_to=2)
    assert run_audit(CLEAN, observations=[stopped_early])["survivors_saw_all"] is True


def test_a_killed_subscriber_may_stop_early() -> None:
    dead = Observation("case-replica-1", "replica-1", False, ((1, "ev-1"),))
    assert run_audit(CLEAN, observations=[seen_all(CLEAN), dead])["survivors_saw_all"] is True


@pytest.mark.parametrize(
    ("moves", "ok"),
    [
        (MOVES, True),
        ((Takeover("market-street", "replica-1", None),), False),
        ((Takeover("market-street", "replica-1", "replica-1"),), False),
        ((), False),  # the killed replica owned nothing: no takeover was tested
    ],
)
def test_the_killed_replicas_sources_must_be_taken_over(moves: tuple[Takeover, ...], ok: bool) -> None:
    assert run_audit(CLEAN, moves=moves)["taken_over"] is ok


def test_takeovers_pair_the_owner_before_the_kill_with_the_owner_after() -> None:
    before = {"market-street": "replica-1", "drone-patrol": "replica-2"}
    after = {"market-street": "replica-3", "drone-patrol": "replica-2"}
    assert takeovers(before, after, "replica-1") == (Takeover("market-street", "replica-1", "replica-3"),)
    assert takeovers(before, {}, "replica-1") == (Takeover("market-street", "replica-1", None),)
