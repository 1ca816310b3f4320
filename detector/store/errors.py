"""Domain errors of the store. The gRPC edge maps them to statuses (e.g. StoreFull → RESOURCE_EXHAUSTED)."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store raises on purpose."""


class StoreFull(StoreError):
    """The disk under the data directory is full; free space or lower the retention limits."""


class StoreCorrupt(StoreError):
    """The database file is damaged; restore it from a backup or move it aside to start a new log."""


class StoreClosed(StoreError):
    """The store was closed; no further reads or writes are possible."""


class IncompatibleSchema(StoreError):
    """The database was written by a newer build than this one."""


class InvalidEvent(StoreError, ValueError):
    """An event handed to ``append`` cannot be stored as it is (wrong sequence, unknown severity, ...)."""


class DuplicateEvent(StoreError):
    """An event with this event_id is already in the log."""


class OffsetAheadOfLog(StoreError, ValueError):
    """A consumer acknowledged a sequence the log has not reached yet."""


class InvalidQuery(StoreError, ValueError):
    """A read asked for something malformed: a page token this store did not issue, a limit below 1, ..."""


class EvidenceMissing(StoreError):
    """No evidence file with this hash: never stored, or pruned by retention."""


class EvidenceCorrupt(StoreError):
    """The evidence file exists but its content does not match its sha256 (truncated or altered)."""
