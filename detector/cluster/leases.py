"""Leases in PostgreSQL: which replica holds a resource (``source:<id>``, ``delivery``) and until when.

One row per resource in ``cluster_leases`` (created here, ``CREATE TABLE IF NOT EXISTS``, in the first schema of
the URL's search_path, beside the store's tables). Every time is the database's clock (``now()``), so replicas
with skewed clocks agree on who holds what. A lease is taken in one statement (``INSERT ... ON CONFLICT DO
UPDATE ... WHERE`` the row is this owner's or expired), so two replicas racing for a free resource cannot both
win. Each change of holder (or a lease taken again after it expired) raises ``epoch``; renewals and releases
name the epoch they hold, so a replica whose lease lapsed cannot renew or release its successor's.

Example::

    table = LeaseTable("postgresql://streetwatch@db/streetwatch")
    lease = table.acquire("source:cam-7", "replica-a", "10.0.0.5:50051", lease_s=10)   # or raises LeaseHeld
    table.renew({"source:cam-7": lease.epoch}, "replica-a", lease_s=10)                # the ones still held
    table.release({"source:cam-7": lease.epoch}, "replica-a")
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg.rows import DictRow, dict_row

Connection = psycopg.Connection[DictRow]

_CREATE = """
CREATE TABLE IF NOT EXISTS cluster_leases (
    resource    TEXT PRIMARY KEY,
    owner       TEXT NOT NULL,
    address     TEXT NOT NULL,
    epoch       BIGINT NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    renewed_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
)
"""
# Replicas starting together must not race on CREATE TABLE (two would collide on the catalog's unique index).
_CREATE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('streetwatch.cluster_leases'))"

_ACQUIRE = """
INSERT INTO cluster_leases AS l (resource, owner, address, epoch, acquired_at, renewed_at, expires_at)
VALUES (%(resource)s, %(owner)s, %(address)s, 1, now(), now(), now() + make_interval(secs => %(lease_s)s))
ON CONFLICT (resource) DO UPDATE SET
    owner = EXCLUDED.owner,
    address = EXCLUDED.address,
    epoch = CASE WHEN l.owner = EXCLUDED.owner AND l.expires_at > now() THEN l.epoch ELSE l.epoch + 1 END,
    acquired_at = CASE WHEN l.owner = EXCLUDED.owner AND l.expires_at > now() THEN l.acquired_at ELSE now() END,
    renewed_at = now(),
    expires_at = EXCLUDED.expires_at
WHERE l.owner = EXCLUDED.owner OR l.expires_at <= now()
RETURNING epoch, acquired_at = now() AS fresh
"""
_HOLDER = """
SELECT owner, address, epoch, GREATEST(EXTRACT(EPOCH FROM expires_at - now()), 0)::float8 AS expires_in_s
FROM cluster_leases WHERE resource = %(resource)s
"""
_RENEW = """
UPDATE cluster_leases AS l
SET renewed_at = now(), expires_at = now() + make_interval(secs => %(lease_s)s)
FROM unnest(%(resources)s::text[], %(epochs)s::bigint[]) AS held(resource, epoch)
WHERE l.resource = held.resource AND l.epoch = held.epoch AND l.owner = %(owner)s AND l.expires_at > now()
RETURNING l.resource
"""
# Released leases keep their row (and epoch), expired now, so that the next holder's epoch is higher.
_RELEASE = """
UPDATE cluster_leases AS l SET expires_at = now()
FROM unnest(%(resources)s::text[], %(epochs)s::bigint[]) AS held(resource, epoch)
WHERE l.resource = held.resource AND l.epoch = held.epoch AND l.owner = %(owner)s
"""


@dataclass(frozen=True)
class Lease:
    """A lease this owner holds now. ``fresh``: taken by this call (it was free, expired or someone else's),
    not a renewal of a live lease of the same owner."""

    resource: str
    owner: str
    epoch: int
    fresh: bool


class LeaseHeld(Exception):
    """Another owner's live lease holds the resource; ``address`` is where that owner is reached."""

    def __init__(self, resource: str, owner: str, address: str, epoch: int, expires_in_s: float) -> None:
        super().__init__(f"{resource} is held by {owner} at {address} (expires in {expires_in_s:.1f} s unless renewed)")
        self.resource = resource
        self.owner = owner
        self.address = address
        self.epoch = epoch
        self.expires_in_s = expires_in_s


class LeaseTable:
    """The ``cluster_leases`` table over one connection of its own (apart from the store's pool, so that a busy
    store never holds up a renewal). Thread-safe; each call is one round trip (``acquire`` two when refused).
    A broken connection is reopened by the next call; errors are ``psycopg.Error``."""

    def __init__(self, url: str, statement_timeout_s: float = 5.0) -> None:
        self._url = url
        self._timeout_ms = max(1, round(statement_timeout_s * 1000))
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        with self._connection() as conn, conn.transaction():
            conn.execute(_CREATE_LOCK)
            conn.execute(_CREATE)

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(
                    self._url, autocommit=True, row_factory=dict_row, connect_timeout=max(1, self._timeout_ms // 1000)
                )
                self._conn.execute(f"SET statement_timeout = {self._timeout_ms}")
            try:
                yield self._conn
            except psycopg.OperationalError:
                self._conn.close()  # reopened by the next call
                raise

    def acquire(self, resource: str, owner: str, address: str, lease_s: float) -> Lease:
        """Take or renew ``resource`` for ``lease_s``; ``LeaseHeld`` when another owner's live lease holds it."""
        params = {"resource": resource, "owner": owner, "address": address, "lease_s": lease_s}
        with self._connection() as conn:
            row = conn.execute(_ACQUIRE, params).fetchone()
            if row is not None:
                return Lease(resource, owner, int(row["epoch"]), bool(row["fresh"]))
            holder = conn.execute(_HOLDER, params).fetchone()
        if holder is None:  # released and deleted between the two statements: try again
            return self.acquire(resource, owner, address, lease_s)
        raise LeaseHeld(resource, holder["owner"], holder["address"], int(holder["epoch"]), holder["expires_in_s"])

    def renew(self, held: Mapping[str, int], owner: str, lease_s: float) -> set[str]:
        """Extend the live leases in ``held`` (resource -> epoch) by ``lease_s`` from now; returns the resources
        renewed. One missing was lost: it expired, or was released."""
        if not held:
            return set()
        params = {"resources": list(held), "epochs": list(held.values()), "owner": owner, "lease_s": lease_s}
        with self._connection() as conn:
            return {row["resource"] for row in conn.execute(_RENEW, params).fetchall()}

    def release(self, held: Mapping[str, int], owner: str) -> None:
        """Expire the leases in ``held`` now, so another replica may take them at once."""
        if not held:
            return
        with self._connection() as conn:
            conn.execute(_RELEASE, {"resources": list(held), "epochs": list(held.values()), "owner": owner})

    def holder(self, resource: str) -> LeaseHeld | None:
        """Who holds ``resource`` (live or expired; ``expires_in_s`` 0 when expired); None if never leased."""
        with self._connection() as conn:
            row = conn.execute(_HOLDER, {"resource": resource}).fetchone()
        if row is None:
            return None
        return LeaseHeld(resource, row["owner"], row["address"], int(row["epoch"]), row["expires_in_s"])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
