"""One replica's leases: taking them, renewing them all every ``renew_every_s``, dropping the ones it could not
renew in time, releasing them on a clean stop, and "once per cluster" work (the delivery connectors) that runs
only while this replica holds its lease.

A lease counts as held locally until ``lease_s`` after the start of the last call that took or renewed it
(monotonic clock). The database's own expiry is ``lease_s`` after that call reached it, so it is never earlier:
a replica stops using a lease before any other replica can take it (as long as the clocks run at the same rate).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import psycopg

from detector.cluster.leases import Lease, LeaseTable
from detector.cluster.settings import ClusterSettings

log = logging.getLogger(__name__)

LossListener = Callable[[str], None]
"""Called (on the event loop) with a resource this replica no longer holds because it could not renew it."""


@dataclass
class _Held:
    epoch: int
    deadline: float  # monotonic seconds; past it the lease may have expired in the database


class Replica:
    """This replica's view of the lease table: ``acquire``, ``holds``, the renew loop (``start``/``close``)."""

    def __init__(
        self,
        table: LeaseTable,
        settings: ClusterSettings,
        replica_id: str,
        address: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = table
        self.settings = settings
        self.replica_id = replica_id
        self.address = address
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._listeners: list[LossListener] = []
        self._renewing: asyncio.Task[None] | None = None
        self._singletons: list[asyncio.Task[None]] = []

    def add_loss_listener(self, listener: LossListener) -> None:
        self._listeners.append(listener)

    @property
    def held(self) -> list[str]:
        return [resource for resource in list(self._held) if self.holds(resource)]

    def holds(self, resource: str) -> bool:
        """Held and renewed recently enough to be sure no other replica can have it; a lease past its local
        deadline is dropped here (and the listeners told)."""
        held = self._held.get(resource)
        if held is None:
            return False
        if self._clock() >= held.deadline:
            self._drop(resource, "not renewed in time")
            return False
        return True

    async def acquire(self, resource: str) -> Lease:
        """Take (or renew) ``resource``; raises ``LeaseHeld`` naming the live holder, ``psycopg.Error`` when the
        database cannot be reached."""
        started = self._clock()
        lease = await asyncio.to_thread(
            self.table.acquire, resource, self.replica_id, self.address, self.settings.lease_s
        )
        self._held[resource] = _Held(lease.epoch, started + self.settings.lease_s)
        if lease.fresh:
            log.info("lease taken", extra={"resource": resource, "epoch": lease.epoch, "replica": self.replica_id})
        return lease

    async def start(self) -> None:
        self._renewing = asyncio.create_task(self._renew_forever(), name="cluster:renew")

    def singleton(
        self, resource: str, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``start()`` whenever this replica takes ``resource`` (tried every ``renew_every_s``) and ``stop()``
        when it loses it or closes: work done once per cluster, by whichever replica holds the lease."""
        self._singletons.append(asyncio.create_task(self._run_singleton(resource, start, stop), name=resource))

    async def stop_singletons(self) -> None:
        """Stop the singletons' work (their ``stop()``); their leases are released by ``close``."""
        tasks, self._singletons = self._singletons, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self, release: bool = True) -> None:
        """Stop renewing; ``release``: expire this replica's leases now, so that others take them at once (a
        clean stop). Without it they expire ``lease_s`` after their last renewal, as if the process had died."""
        await self.stop_singletons()
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.gather(self._renewing, return_exceptions=True)
            self._renewing = None
        held = {resource: h.epoch for resource, h in self._held.items()}
        self._held.clear()
        try:
            if release and held:
                await asyncio.to_thread(self.table.release, held, self.replica_id)
                log.info("leases released", extra={"resources": sorted(held), "replica": self.replica_id})
        except psycopg.Error as exc:
            log.warning("leases not released (they expire by themselves): %s", exc)
        finally:
            await asyncio.to_thread(self.table.close)

    async def renew(self) -> None:
        """One renewal of every lease held; the ones the database did not renew, and the ones past their deadline
        when it cannot be reached, are dropped."""
        held = {resource: h.epoch for resource, h in self._held.items()}
        if not held:
            return
        started = self._clock()
        try:
            renewed = await asyncio.to_thread(self.table.renew, held, self.replica_id, self.settings.lease_s)
        except psycopg.Error as exc:
            log.warning("lease renewal failed: %s", exc, extra={"replica": self.replica_id})
            for resource in held:
                self.holds(resource)  # drops those past their deadline
            return
        for resource, epoch in held.items():
            current = self._held.get(resource)
            if current is None or current.epoch != epoch:
                continue  # dropped or taken again meanwhile
            if resource in renewed:
                current.deadline = started + self.settings.lease_s
            else:
                self._drop(resource, "expired or taken by another replica")

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.renew_interval_s)
            try:
                await self.renew()
            except Exception:  # one failed round must not end the renewals
                log.exception("lease renewal failed")

    def _drop(self, resource: str, reason: str) -> None:
        if self._held.pop(resource, None) is None:
            return
        log.warning("lease lost: %s", reason, extra={"resource": resource, "replica": self.replica_id})
        for listener in self._listeners:
            try:
                listener(resource)
            except Exception:
                log.exception("lease loss listener failed", extra={"resource": resource})

    async def _run_singleton(
        self, resource: str, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]
    ) -> None:
        running = False
        try:
            while True:
                if not running:
                    with contextlib.suppress(Exception):  # held elsewhere, or the database away: try later
                        await self.acquire(resource)
                if self.holds(resource) and not running:
                    log.info("running %s for the cluster", resource, extra={"replica": self.replica_id})
                    await start()
                    running = True
                elif running and not self.holds(resource):
                    log.warning("stopping %s: its lease was lost", resource, extra={"replica": self.replica_id})
                    running = False
                    await stop()
                await asyncio.sleep(self.settings.renew_interval_s)
        finally:
            if running:
                await stop()
