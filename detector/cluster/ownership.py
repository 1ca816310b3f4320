"""Source ownership, a stage of the frame pipeline in a cluster: a replica processes a source only while it holds
the lease ``source:<id>``.

The first frame of a source on a replica takes the lease (one round trip to the database; later frames only look
at the local copy). Taken afresh (it was free, released, or its holder died and let it expire), the source's open
incidents are resumed from the store before its first frame reaches the rules (``take_resume``), so an incident
the previous holder opened goes on (UPDATED, CLEARED on the same id) and is never opened twice. Held by another
live replica: :class:`SourceOwnedElsewhere`, which the gRPC edge turns into FAILED_PRECONDITION naming the owner.
"""

from __future__ import annotations

import asyncio

import psycopg

from detector.cluster.leases import LeaseHeld
from detector.cluster.replica import Replica
from detector.ingest.decode import FrameRejected, RejectCode

SOURCE_PREFIX = "source:"


def source_resource(source_id: str) -> str:
    return SOURCE_PREFIX + source_id


class SourceOwnedElsewhere(Exception):
    """Another replica holds the source's lease: its frames go to ``address``."""

    def __init__(self, source_id: str, owner: str, address: str) -> None:
        super().__init__(
            f"source {source_id!r} is processed by replica {owner} at {address}; send its frames there "
            "(the address is in the trailing metadata 'streetwatch-owner')"
        )
        self.source_id = source_id
        self.owner = owner
        self.address = address


class SourceOwnership:
    """Which sources this replica processes, kept in ``source:<id>`` leases of ``replica``."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self._locks: dict[str, asyncio.Lock] = {}
        self._to_resume: set[str] = set()

    async def claim(self, source_id: str) -> None:
        """Return when this replica holds the source's lease (taking it if free); ``SourceOwnedElsewhere``
        otherwise; a per-frame INTERNAL error (``FrameRejected``) when the lease table cannot be reached. Frames
        of one source wait for one acquisition, never race for it."""
        resource = source_resource(source_id)
        if self.replica.holds(resource):
            return
        lock = self._locks.setdefault(source_id, asyncio.Lock())
        async with lock:
            if self.replica.holds(resource):
                return
            try:
                lease = await self.replica.acquire(resource)
            except LeaseHeld as held:
                raise SourceOwnedElsewhere(source_id, held.owner, held.address) from None
            except psycopg.Error as exc:
                raise FrameRejected(RejectCode.INTERNAL, f"cannot take the source's lease: {exc}") from None
            if lease.fresh:
                self._to_resume.add(source_id)

    def take_resume(self, source_id: str) -> bool:
        """True once after the lease was taken afresh: the caller resumes the source's open incidents now."""
        if source_id in self._to_resume:
            self._to_resume.discard(source_id)
            return True
        return False

    def lost(self, resource: str) -> str | None:
        """The source id of a lost lease (None for another resource); its pending resume is forgotten."""
        if not resource.startswith(SOURCE_PREFIX):
            return None
        source_id = resource.removeprefix(SOURCE_PREFIX)
        self._to_resume.discard(source_id)
        return source_id
