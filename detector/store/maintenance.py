"""Retention and integrity rules, the same for every backend; each backend only runs the SQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from detector.store.codec import Row, decode_evidence

# The evidence named by the last event of each open incident is never pruned (rows have one column, evidence).
EVIDENCE_OF_OPEN_INCIDENTS = (
    "SELECT e.evidence FROM incidents AS i JOIN events AS e ON e.sequence = i.last_sequence WHERE i.state = 'open'"
)


def protected_evidence(rows: Iterable[Row]) -> set[str]:
    """The sha256 of each evidence reference in the ``EVIDENCE_OF_OPEN_INCIDENTS`` rows."""
    return {evidence.sha256 for row in rows for evidence in decode_evidence(row["evidence"])}


def evidence_to_prune(
    rows: Sequence[Row], protected: set[str], now_ts: float, max_age_s: float | None, max_bytes: int | None
) -> tuple[list[Row], int]:
    """The rows (``sha256``, ``size_bytes``, ``created_ts``; oldest first) to delete, and the bytes kept after.

    A row goes when it is older than ``max_age_s`` or while the total is over ``max_bytes``, unless protected.
    """
    total_bytes = sum(int(row["size_bytes"]) for row in rows)
    doomed: list[Row] = []
    for row in rows:
        expired = max_age_s is not None and row["created_ts"] < now_ts - max_age_s
        over_budget = max_bytes is not None and total_bytes > max_bytes
        if row["sha256"] in protected or not (expired or over_budget):
            continue
        doomed.append(row)
        total_bytes -= int(row["size_bytes"])
    return doomed, total_bytes


def event_log_problems(count: int, first: int | None, last: int | None, recorded_last: int) -> list[str]:
    """What is wrong with a log of ``count`` events spanning ``first``..``last`` (``EVENT_LOG_SPAN``) whose
    ``log_state`` says it ends at ``recorded_last``: it must hold exactly 1..recorded_last."""
    problems = []
    if count and (first != 1 or last != count):
        problems.append(f"event log: {count} events span sequences {first}..{last}; expected 1..{count}")
    if (last or 0) != recorded_last:
        problems.append(f"event log: last event is {last or 0}, log_state says {recorded_last}")
    return problems
