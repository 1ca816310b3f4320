"""Leases in the real PostgreSQL server (a schema per test): taken, renewed, refused to another owner while
live, taken over with a higher epoch once expired, released; and a replica that stops renewing loses them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from detector.cluster.leases import LeaseHeld, LeaseTable
from detector.cluster.replica import Replica
from detector.cluster.settings import ClusterSettings
from tests.store.factories import FakeClock, postgres_url


@pytest.fixture
def table(tmp_path: Path) -> LeaseTable:
    return LeaseTable(postgres_url(tmp_path))


def _wait_until_expired(table: LeaseTable, resource: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (holder := table.holder(resource)) is not None and holder.expires_in_s > 0:
        assert time.monotonic() < deadline, f"{resource} never expired: {holder}"
        time.sleep(min(holder.expires_in_s, 0.05))


def test_a_lease_is_taken_renewed_refused_to_others_and_released(table: LeaseTable) -> None:
    first = table.acquire("source:cam-1", "a", "10.0.0.1:50051", lease_s=30)
    assert (first.epoch, first.fresh) == (1, True)
    again = table.acquire("source:cam-1", "a", "10.0.0.1:50051", lease_s=30)
    assert (again.epoch, again.fresh) == (1, False)  # a renewal, not a new holder
    with pytest.raises(LeaseHeld) as refused:
        table.acquire("source:cam-1", "b", "10.0.0.2:50051", lease_s=30)
    assert (refused.value.owner, refused.value.address) == ("a", "10.0.0.1:50051")
    assert 25 < refused.value.expires_in_s <= 30
    assert table.renew({"source:cam-1": 1}, "a", lease_s=30) == {"source:cam-1"}
    assert table.renew({"source:cam-1": 1}, "b", lease_s=30) == set()  # only the holder renews
    table.release({"source:cam-1": 1}, "a")
    taken = table.acquire("source:cam-1", "b", "10.0.0.2:50051", lease_s=30)
    assert (taken.epoch, taken.fresh) == (2, True)


def test_an_expired_lease_is_taken_over_with_a_higher_epoch_and_the_old_holder_cannot_renew_it(
    table: LeaseTable,
) -> None:
    table.acquire("delivery", "a", "10.0.0.1:50051", lease_s=0.5)
    with pytest.raises(LeaseHeld):
        table.acquire("delivery", "b", "10.0.0.2:50051", lease_s=0.5)
    _wait_until_expired(table, "delivery")
    assert table.renew({"delivery": 1}, "a", lease_s=30) == set()  # expired: no renewal after the fact
    taken = table.acquire("delivery", "b", "10.0.0.2:50051", lease_s=30)
    assert (taken.epoch, taken.fresh) == (2, True)
    table.release({"delivery": 1}, "a")  # the old holder's release does not touch its successor's lease
    with pytest.raises(LeaseHeld) as refused:
        table.acquire("delivery", "a", "10.0.0.1:50051", lease_s=30)
    assert refused.value.owner == "b"


def test_two_owners_racing_for_a_free_lease_get_one_winner(table: LeaseTable, tmp_path: Path) -> None:
    other = LeaseTable(postgres_url(tmp_path))

    def take(t: LeaseTable, owner: str) -> str:
        try:
            t.acquire("source:cam-9", owner, owner, lease_s=30)
        except LeaseHeld:
            return "refused"
        return "won"

    async def race() -> list[str]:
        return list(await asyncio.gather(*(asyncio.to_thread(take, t, o) for t, o in ((table, "a"), (other, "b")))))

    assert sorted(asyncio.run(race())) == ["refused", "won"]
    other.close()


def test_a_replica_drops_a_lease_it_did_not_renew_in_time_and_another_takes_it_after_expiry(
    table: LeaseTable, tmp_path: Path
) -> None:
    settings = ClusterSettings(enabled=True, lease_s=1.0)
    clock = FakeClock()

    async def go() -> None:
        a = Replica(table, settings, "a", "127.0.0.1:1", clock=clock)
        b = Replica(LeaseTable(postgres_url(tmp_path)), settings, "b", "127.0.0.1:2")
        lost: list[str] = []
        a.add_loss_listener(lost.append)
        await a.acquire("source:cam-1")
        clock.advance(0.9)
        await a.renew()  # renewed at 0.9 s: held until 1.9 s on a's clock
        clock.advance(0.9)
        assert a.holds("source:cam-1") and not lost
        clock.advance(0.2)  # no renewal for lease_s: a stops using it, whatever the database says
        assert not a.holds("source:cam-1")
        assert lost == ["source:cam-1"]
        with pytest.raises(LeaseHeld) as refused:  # not expired in the database yet (its clock is the real one)
            await b.acquire("source:cam-1")
        assert refused.value.owner == "a"
        await asyncio.to_thread(_wait_until_expired, b.table, "source:cam-1")
        lease = await b.acquire("source:cam-1")
        assert (lease.epoch, lease.fresh) == (2, True)
        await b.close(release=True)  # a clean stop frees the lease at once
        holder = await asyncio.to_thread(table.holder, "source:cam-1")
        assert holder is not None and holder.owner == "b" and holder.expires_in_s == 0
        await a.close(release=False)

    asyncio.run(asyncio.wait_for(go(), 30))
