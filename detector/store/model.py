"""Values the store hands across its boundary: filters, incident records, pages, retention reports."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from detector.types import CaseState, IncidentEvent, Severity

# The store ranks severities so that "at least high" is one comparison (the rank is a column beside the text).
SEVERITY_RANK: dict[Severity, int] = {severity: rank for rank, severity in enumerate(Severity)}


def parse_severity(severity: str) -> Severity:
    """``severity`` as a ``Severity`` (its text, e.g. "high", or the enum); ValueError naming the known ones."""
    try:
        return Severity(severity)
    except ValueError:
        raise ValueError(f"unknown severity {severity!r}; expected one of {', '.join(Severity)}") from None


def severity_rank(severity: str) -> int:
    """0 for low up to 3 for critical; ValueError on an unknown severity."""
    return SEVERITY_RANK[parse_severity(severity)]


class IncidentState(Enum):
    OPEN = "open"
    CLEARED = "cleared"


@dataclass(frozen=True)
class EventFilter:
    """Which events (or incidents) a reader wants; an empty set means "any".

    Example: ``EventFilter(categories={"ROAD_DAMAGE"}, min_severity=Severity.HIGH)``; a severity given as text
    ("high") is parsed, and an unknown one raises ValueError.
    """

    categories: frozenset[str] = field(default_factory=frozenset)
    source_ids: frozenset[str] = field(default_factory=frozenset)
    min_severity: Severity | None = None

    def __init__(
        self,
        categories: Iterable[str] = (),
        source_ids: Iterable[str] = (),
        min_severity: Severity | str | None = None,
    ) -> None:
        object.__setattr__(self, "categories", frozenset(categories))
        object.__setattr__(self, "source_ids", frozenset(source_ids))
        object.__setattr__(self, "min_severity", None if min_severity is None else parse_severity(min_severity))

    @property
    def min_severity_rank(self) -> int | None:
        return None if self.min_severity is None else SEVERITY_RANK[self.min_severity]


ANY_EVENT = EventFilter()


@dataclass(frozen=True)
class IncidentRecord:
    """An incident as the store knows it: its state and the last event that changed it."""

    incident_id: str
    state: IncidentState
    opened_count: int  # 1 for a fresh incident, +1 each time the same incident reopens
    last_event: IncidentEvent
    case_state: CaseState | None = None  # the case system's latest verdict (kept across later events)
    case_id: str = ""  # the case system's id for the case, once it gave one
    case_updated_ts: float | None = None  # wall-clock seconds the store recorded the latest verdict


@dataclass(frozen=True)
class IncidentPage:
    items: list[IncidentRecord]
    next_page_token: str  # "" when this is the last page


@dataclass(frozen=True)
class DeadLetter:
    """An event a consumer (a delivery connector) gave up on, with the last reason and how often it tried."""

    consumer: str
    event_sequence: int
    event_id: str
    reason: str
    attempts: int
    created_ts: float


@dataclass(frozen=True)
class RetentionReport:
    """What one ``apply_retention`` pass removed (the event log itself is never pruned)."""

    evidence_deleted: int
    evidence_bytes_freed: int
    evidence_bytes_kept: int
    incidents_pruned: int
