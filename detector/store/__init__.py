"""Durable store: append-only incident event log, incidents, consumer offsets and evidence files.

Importing this package registers the built-in backends, so ``open_store("sqlite:///data")`` and
``open_store("postgresql://host/db")`` work.
"""

from __future__ import annotations

from detector.store.base import IncidentStore, open_store, register_store
from detector.store.config import StoreSettings
from detector.store.errors import (
    DuplicateEvent,
    EvidenceCorrupt,
    EvidenceMissing,
    IncompatibleSchema,
    InvalidEvent,
    InvalidQuery,
    OffsetAheadOfLog,
    StoreClosed,
    StoreCorrupt,
    StoreError,
    StoreFull,
)
from detector.store.follow import follow_events
from detector.store.model import (
    ANY_EVENT,
    SEVERITY_RANK,
    DeadLetter,
    EventFilter,
    IncidentPage,
    IncidentRecord,
    IncidentState,
    RetentionReport,
)
from detector.store.postgres import PostgresStore
from detector.store.sqlite import SqliteStore

__all__ = [
    "ANY_EVENT",
    "SEVERITY_RANK",
    "DeadLetter",
    "DuplicateEvent",
    "EventFilter",
    "EvidenceCorrupt",
    "EvidenceMissing",
    "IncidentPage",
    "IncidentRecord",
    "IncidentState",
    "IncidentStore",
    "IncompatibleSchema",
    "InvalidEvent",
    "InvalidQuery",
    "OffsetAheadOfLog",
    "PostgresStore",
    "RetentionReport",
    "SqliteStore",
    "StoreClosed",
    "StoreCorrupt",
    "StoreError",
    "StoreFull",
    "StoreSettings",
    "follow_events",
    "open_store",
    "register_store",
]
