"""The audit `make cluster-demo` runs on the shared event log after a replica was killed mid-run.

Pure: it judges values read beforehand (the whole log as the store holds it, what each case-system subscriber
received, which incidents the scorer matched to which truth object, who owned each source before the kill and
at the end) and returns an ``AuditReport``. Checks:

- ``gap_free``: the log's sequences are exactly 1..N, each once.
- ``event_ids_unique``: no event stored twice under two sequences (a redelivered append).
- ``observed_in_log``: every event any subscriber received (on a surviving replica or on the killed one before
  it died) is in the log at the same sequence with the same ``event_id``: nothing a case system was shown is lost.
- ``survivors_saw_all``: each subscriber on a surviving replica received every event of the log up to the
  sequence the log had reached when the subscriber was stopped (a source-health event the service appends later
  is no loss).
- ``opened_once``: no incident is OPENED while it is already open (an incident resumed by the replica that took
  its source over continues with UPDATED/CLEARED; OPENED again only after a CLEARED, the rules' reopen).
- ``no_duplicate_incident``: no truth object matched by two incidents (the scorer's matching, per scenario).
- ``taken_over``: every source the killed replica owned is owned by a surviving replica at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from detector.types import STREAM_HEALTH, EventType, IncidentEvent

MAX_PROBLEMS = 10  # per check, in the report; the count says how many there were


@dataclass(frozen=True)
class LoggedEvent:
    """The fields of one stored event the audit needs."""

    sequence: int
    event_id: str
    incident_id: str
    type: EventType
    source_id: str = ""
    category: str = ""

    @classmethod
    def of(cls, event: IncidentEvent) -> LoggedEvent:
        return cls(event.sequence, event.event_id, event.incident_id, event.type, event.source_id, event.category)


@dataclass(frozen=True)
class Observation:
    """What one subscriber received: (sequence, event_id) in arrival order."""

    consumer: str
    replica: str
    survived: bool  # its replica was still up at the end (a subscriber of the killed one stops when it dies)
    received: tuple[tuple[int, str], ...]
    caught_up_to: int = 0  # the log's last sequence when the subscriber was stopped


@dataclass(frozen=True)
class Takeover:
    """A source the killed replica owned, and who owned it at the end (None: nobody)."""

    source_id: str
    from_replica: str
    to_replica: str | None


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    problems: tuple[str, ...] = ()
    problem_count: int = 0


@dataclass(frozen=True)
class AuditReport:
    events: int
    killed_replica: str
    takeovers: tuple[Takeover, ...]
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, **asdict(self)}

    def text(self) -> str:
        lines = [f"log audit: {'PASSED' if self.passed else 'FAILED'} ({self.events} events in the log)"]
        for c in self.checks:
            lines.append(f"  [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.detail}")
            lines += [f"         - {p}" for p in c.problems]
            if c.problem_count > len(c.problems):
                lines.append(f"         ... and {c.problem_count - len(c.problems)} more")
        lines.append(f"  takeovers after {self.killed_replica} was killed:")
        lines += [f"    {t.source_id}: {t.from_replica} -> {t.to_replica or 'nobody'}" for t in self.takeovers] or [
            "    none: it owned no source"
        ]
        return "\n".join(lines)


def takeovers(before: Mapping[str, str], after: Mapping[str, str], killed_replica: str) -> tuple[Takeover, ...]:
    """The sources ``killed_replica`` owned in ``before`` (source -> owner), with their owner in ``after``."""
    return tuple(
        Takeover(source, killed_replica, after.get(source))
        for source, owner in sorted(before.items())
        if owner == killed_replica
    )


def _check(name: str, ok_detail: str, problems: Sequence[str], fail_detail: str) -> Check:
    return Check(
        name,
        not problems,
        ok_detail if not problems else fail_detail,
        tuple(problems[:MAX_PROBLEMS]),
        len(problems),
    )


def check_gap_free(log: Sequence[LoggedEvent]) -> Check:
    sequences = sorted(e.sequence for e in log)
    problems = []
    seen: set[int] = set()
    for s in sequences:
        if s in seen:
            problems.append(f"sequence {s} stored twice")
        seen.add(s)
    top = max(sequences, default=0)
    missing = sorted(set(range(1, top + 1)) - seen)
    problems += [f"sequence {s} missing" for s in missing]
    problems += [f"sequence {s} out of range" for s in sorted(seen) if s < 1]
    return _check("gap_free", f"sequences 1..{top}, each once", problems, f"{len(problems)} problem(s) in 1..{top}")


def check_event_ids_unique(log: Sequence[LoggedEvent]) -> Check:
    first: dict[str, int] = {}
    problems = []
    for e in sorted(log, key=lambda e: e.sequence):
        if e.event_id in first:
            problems.append(f"event {e.event_id} at sequences {first[e.event_id]} and {e.sequence}")
        else:
            first[e.event_id] = e.sequence
    return _check("event_ids_unique", f"{len(first)} distinct event ids", problems, "an event was stored twice")


def check_observed_in_log(log: Sequence[LoggedEvent], observations: Sequence[Observation]) -> Check:
    by_sequence = {e.sequence: e.event_id for e in log}
    problems = []
    total = 0
    for o in observations:
        for sequence, event_id in o.received:
            total += 1
            stored = by_sequence.get(sequence)
            if stored is None:
                problems.append(f"{o.consumer} (on {o.replica}) received sequence {sequence}, not in the log")
            elif stored != event_id:
                problems.append(
                    f"{o.consumer} (on {o.replica}) received {event_id} at sequence {sequence}; the log has {stored}"
                )
    return _check(
        "observed_in_log",
        f"all {total} deliveries to {len(observations)} subscriber(s) are in the log",
        problems,
        "a subscriber was shown an event the log does not hold",
    )


def check_survivors_saw_all(log: Sequence[LoggedEvent], observations: Sequence[Observation]) -> Check:
    everything = {e.sequence for e in log}
    survivors = [o for o in observations if o.survived]
    problems = []
    for o in survivors:
        missed = sorted({s for s in everything if s <= o.caught_up_to} - {s for s, _ in o.received})
        if missed:
            shown = ", ".join(map(str, missed[:20])) + (" ..." if len(missed) > 20 else "")
            problems.append(f"{o.consumer} (on {o.replica}) missed {len(missed)} event(s): sequences {shown}")
    if not survivors:
        problems.append("no subscriber on a surviving replica")
    return _check(
        "survivors_saw_all",
        f"{len(survivors)} subscriber(s) on surviving replicas received every event up to sequence "
        f"{min((o.caught_up_to for o in survivors), default=0)}",
        problems,
        "an event did not reach a live subscriber",
    )


_OPENING = {EventType.OPENED}
_CLOSING = {EventType.CLEARED}


def check_opened_once(log: Sequence[LoggedEvent]) -> Check:
    """Incident lifecycles (STREAM_HEALTH outages aside): OPENED first, and again only after a CLEARED."""
    open_now: dict[str, int] = {}
    seen: set[str] = set()
    problems = []
    for e in sorted(log, key=lambda e: e.sequence):
        if e.category == STREAM_HEALTH:
            continue
        if e.type in _OPENING:
            if e.incident_id in open_now:
                problems.append(
                    f"incident {e.incident_id} ({e.source_id}) OPENED at sequence {e.sequence} while open since "
                    f"sequence {open_now[e.incident_id]}"
                )
            open_now[e.incident_id] = e.sequence
            seen.add(e.incident_id)
        elif e.type in _CLOSING:
            open_now.pop(e.incident_id, None)
    detail = f"{len(seen)} incident(s), none opened while open"
    return _check("opened_once", detail, problems, "an incident opened twice")


def check_no_duplicate_incident(matches: Mapping[str, Mapping[str, int]]) -> Check:
    """``matches``: scenario -> incident_id -> truth object id, for the incidents the scorer counted as true or
    duplicate (objects it expects an incident on)."""
    problems = []
    for scenario, by_incident in sorted(matches.items()):
        by_object: dict[int, list[str]] = {}
        for incident_id, object_id in by_incident.items():
            by_object.setdefault(object_id, []).append(incident_id)
        problems += [
            f"{scenario}: object {object_id} matched by {len(ids)} incidents: {', '.join(sorted(ids))}"
            for object_id, ids in sorted(by_object.items())
            if len(ids) > 1
        ]
    matched = sum(len(m) for m in matches.values())
    return _check(
        "no_duplicate_incident",
        f"{matched} matched incident(s), each on its own truth object",
        problems,
        "a truth object has two incidents",
    )


def check_taken_over(moves: Iterable[Takeover], killed_replica: str) -> Check:
    moves = list(moves)
    problems = [
        f"{t.source_id}: still owned by {t.to_replica or 'nobody'} at the end"
        for t in moves
        if t.to_replica is None or t.to_replica == killed_replica
    ]
    if not moves:
        problems.append(f"{killed_replica} owned no source when it was killed: the kill tested no takeover")
    return _check(
        "taken_over",
        f"{len(moves)} source(s) of {killed_replica} taken over by surviving replicas",
        problems,
        "a source of the killed replica was not taken over",
    )


def audit(
    log: Sequence[LoggedEvent],
    observations: Sequence[Observation],
    matches: Mapping[str, Mapping[str, int]],
    moves: Sequence[Takeover],
    killed_replica: str,
) -> AuditReport:
    """Every check of the module docstring, on the log as the store holds it after the run."""
    checks = (
        check_gap_free(log),
        check_event_ids_unique(log),
        check_observed_in_log(log, observations),
        check_survivors_saw_all(log, observations),
        check_opened_once(log),
        check_no_duplicate_incident(matches),
        check_taken_over(moves, killed_replica),
    )
    return AuditReport(len(log), killed_replica, tuple(moves), checks)
