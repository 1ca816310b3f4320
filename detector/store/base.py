"""The store interface and its backend registry.

A backend is a subclass of ``IncidentStore`` registered under a name::

    @register_store("sqlite")
    class SqliteStore(IncidentStore): ...

    store = open_store("sqlite:///var/lib/streetwatch")
    store = open_store("postgresql://streetwatch@db.internal/streetwatch")  # shared by several replicas

All methods are synchronous and thread-safe; asyncio callers use ``asyncio.to_thread`` for reads and writes,
and ``wait_for_async`` (which holds no thread) to follow the log.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import BinaryIO, Self, TypeVar

from detector.store.config import StoreSettings
from detector.store.model import (
    ANY_EVENT,
    DeadLetter,
    EventFilter,
    IncidentPage,
    IncidentRecord,
    IncidentState,
    RetentionReport,
)
from detector.store.notify import AppendCallback, AppendNotifier
from detector.types import CaseState, Evidence, EvidenceKind, IncidentEvent


class IncidentStore(ABC):
    """Append-only event log with gap-free sequences, incidents, consumer offsets and evidence files."""

    def __init__(self, last_sequence: int) -> None:
        self._appends = AppendNotifier(last_sequence)

    @classmethod
    @abstractmethod
    def from_config(cls, config: StoreSettings) -> IncidentStore: ...

    # -- event log ------------------------------------------------------------------------------------------

    @abstractmethod
    def append(self, events: Sequence[IncidentEvent]) -> list[IncidentEvent]:
        """Persist ``events`` and their incidents in one transaction, numbered on from the log's end.

        Events must come with ``sequence == 0``; the returned copies carry the assigned sequence. Either all
        of them are stored or none is.

        Idempotent: an event already in the log with the same content (a retry of an append whose outcome
        was lost, e.g. the connection dropped while it committed) is not stored again; its stored copy, with
        its sequence, is returned in its place, and the batch's new events are numbered on from the log's end.
        An event_id already in the log with other content raises ``DuplicateEvent`` and stores nothing.
        """

    @abstractmethod
    def read_events(
        self, after_sequence: int, limit: int, event_filter: EventFilter = ANY_EVENT
    ) -> list[IncidentEvent]:
        """Up to ``limit`` matching events with sequence > ``after_sequence``, in sequence order."""

    @abstractmethod
    def last_sequence(self) -> int:
        """Sequence of the newest committed event; 0 for an empty log."""

    # -- consumers ------------------------------------------------------------------------------------------

    @abstractmethod
    def commit_offset(self, consumer: str, sequence: int) -> int:
        """Durably record that ``consumer`` processed the log through ``sequence``; returns the stored offset.

        Offsets only move forward: acknowledging an older sequence keeps the newer one. A sequence beyond
        ``last_sequence()`` raises ``OffsetAheadOfLog``.
        """

    @abstractmethod
    def get_offset(self, consumer: str) -> int:
        """The consumer's committed offset; 0 for a consumer never seen."""

    # -- dead letters ---------------------------------------------------------------------------------------

    @abstractmethod
    def add_dead_letter(self, consumer: str, event_sequence: int, event_id: str, reason: str, attempts: int) -> None:
        """Durably record that ``consumer`` gave up on an event; recording it again replaces reason and attempts."""

    @abstractmethod
    def dead_letters(self, consumer: str) -> list[DeadLetter]:
        """The consumer's dead letters, in log order."""

    @abstractmethod
    def remove_dead_letter(self, consumer: str, event_sequence: int) -> bool:
        """Forget one (after it was redelivered or dealt with); False when there was none."""

    # -- incidents ------------------------------------------------------------------------------------------

    @abstractmethod
    def get_incident(self, incident_id: str) -> IncidentRecord | None: ...

    @abstractmethod
    def list_incidents(
        self,
        event_filter: EventFilter = ANY_EVENT,
        state: IncidentState | None = None,
        page_size: int = 100,
        page_token: str = "",
    ) -> IncidentPage:
        """Newest incidents first; pass ``next_page_token`` back to get the following page."""

    @abstractmethod
    def open_incidents(self) -> list[IncidentRecord]:
        """Every incident not cleared, with its last event, so the rules can resume them after a restart."""

    @abstractmethod
    def open_incidents_near(self, category: str, lat: float, lon: float, radius_m: float) -> list[IncidentRecord]:
        """Open incidents of ``category`` whose last location lies within ``radius_m`` on the ground of
        (``lat``, ``lon``), nearest first; incidents without a location are never near.

        This is how a replica finds the incident another replica (or drone) already opened for the stall it
        sees, e.g. ``store.open_incidents_near("ROAD_OCCUPYING_STALL", 39.9042, 116.4074, 15.0)``. An index
        answers it, so it stays cheap however many incidents the store holds. ``radius_m`` must be above 0 and
        at most 100 km (else ``InvalidQuery``).
        """

    @abstractmethod
    def incidents_with_case_state(self, state: CaseState, updated_after_ts: float) -> list[IncidentRecord]:
        """Incidents whose latest verdict is ``state``, given after ``updated_after_ts`` (wall-clock seconds, as
        the store recorded it), oldest verdict first; e.g. recent REJECTED ones, to suppress after a restart."""

    # -- evidence -------------------------------------------------------------------------------------------

    @abstractmethod
    def put_evidence(self, kind: EvidenceKind, data: bytes) -> Evidence:
        """Store ``data`` under its sha256 (idempotent) and return the reference to put in an event; a kind
        that is no ``EvidenceKind`` (text from an untyped caller) raises ``InvalidQuery``."""

    @abstractmethod
    def open_evidence(self, sha256: str) -> BinaryIO:
        """The stored bytes, verified against the hash; else ``EvidenceMissing`` or ``EvidenceCorrupt``."""

    # -- maintenance ----------------------------------------------------------------------------------------

    @abstractmethod
    def apply_retention(self, max_age_s: float | None, max_bytes: int | None) -> RetentionReport:
        """Prune evidence older than ``max_age_s`` or beyond ``max_bytes`` (oldest first), and incidents
        cleared more than ``max_age_s`` ago. Evidence of open incidents and the event log itself are never
        pruned, so sequences are never re-used.
        """

    @abstractmethod
    def integrity_check(self) -> list[str]:
        """Problems found in the database and in a sample of evidence files; empty when healthy."""

    @abstractmethod
    def schema_version(self) -> int:
        """The database's schema version; once the store is open, the latest this build knows (opening
        migrates an older database and refuses a newer one with ``IncompatibleSchema``)."""

    @abstractmethod
    def close(self) -> None:
        """Release the database; wakes every waiting follower. Further calls raise ``StoreClosed``."""

    # -- live followers -------------------------------------------------------------------------------------

    def wait_for(self, after_sequence: int, timeout_s: float | None) -> bool:
        """Block until an event with sequence > ``after_sequence`` is committed; False on timeout or close."""
        return self._appends.wait_for(after_sequence, timeout_s)

    async def wait_for_async(self, after_sequence: int, timeout_s: float | None) -> bool:
        """``wait_for`` for coroutines; holds no thread while waiting."""
        return await self._appends.wait_for_async(after_sequence, timeout_s)

    def subscribe_appends(self, callback: AppendCallback) -> Callable[[], None]:
        """Call ``callback(last_sequence)`` after each commit, on the writer's thread; returns an undo."""
        return self._appends.subscribe(callback)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


StoreClass = TypeVar("StoreClass", bound=type[IncidentStore])

_BACKENDS: dict[str, type[IncidentStore]] = {}


def register_store(name: str) -> Callable[[StoreClass], StoreClass]:
    """Class decorator that makes a backend available to ``open_store`` under ``name``."""

    def register(cls: StoreClass) -> StoreClass:
        if name in _BACKENDS and _BACKENDS[name] is not cls:
            raise ValueError(f"store backend {name!r} is already registered by {_BACKENDS[name].__qualname__}")
        _BACKENDS[name] = cls
        return cls

    return register


def open_store(url_or_config: str | StoreSettings) -> IncidentStore:
    """Open the store named by a URL (``sqlite:///var/lib/streetwatch``) or a ``StoreSettings``."""
    config = StoreSettings.from_url(url_or_config) if isinstance(url_or_config, str) else url_or_config
    try:
        backend = _BACKENDS[config.backend]
    except KeyError:
        known = ", ".join(sorted(_BACKENDS)) or "none"
        raise ValueError(f"unknown store backend {config.backend!r}; registered backends: {known}") from None
    return backend.from_config(config)
