"""Several processes append to one PostgreSQL log while a follower reads it live: no gap, ever.

Each writer is its own process (its own pool, connections and listener), as replicas of the service would be;
the follower in the test process wakes only through NOTIFY, since it appends nothing itself.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

from detector.store import PostgresStore
from detector.types import EventType as IncidentEventType
from tests.store.factories import make_event, postgres_url

WRITERS = 4
EVENTS_PER_WRITER = 200


def write(url: str, writer: int, start: EventType, results: Any) -> None:
    """Append EVENTS_PER_WRITER events in batches of 1-5; report (event_id, sequence) of each."""
    rng = random.Random(writer)
    stored: list[tuple[str, int]] = []
    with PostgresStore(url, pool_max_size=2) as store:
        start.wait()
        written = 0
        while written < EVENTS_PER_WRITER:
            size = min(rng.randint(1, 5), EVENTS_PER_WRITER - written)
            batch = [
                make_event(
                    f"w{writer}-inc-{(written + i) % 5}",
                    type=IncidentEventType.OPENED if written + i < 5 else IncidentEventType.UPDATED,
                    event_id=f"w{writer}-{written + i:04d}",
                )
                for i in range(size)
            ]
            stored += [(e.event_id, e.sequence) for e in store.append(batch)]
            written += size
    results.put((writer, stored))


def test_processes_append_gap_free_in_order_and_a_live_follower_never_sees_a_gap(tmp_path: Path) -> None:
    url = postgres_url(tmp_path)
    total = WRITERS * EVENTS_PER_WRITER
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    with PostgresStore(url) as follower:
        reads: list[list[int]] = []
        gaps: list[str] = []

        def follow() -> None:
            after = 0
            deadline = time.monotonic() + 120
            while after < total and time.monotonic() < deadline:
                follower.wait_for(after, timeout_s=1.0)
                log_end = follower.last_sequence()
                batch = [e.sequence for e in follower.read_events(after, 7)]
                reads.append(batch)
                # Each read must continue the prefix seen so far, and reach the end log_state reported (or fill
                # the limit): a later read filling a hole would mean a reader saw a gap.
                expected = list(range(after + 1, after + 1 + len(batch)))
                if batch != expected or (len(batch) < 7 and after + len(batch) < log_end):
                    gaps.append(f"after {after} (log end {log_end}) read {batch}")
                after += len(batch)

        reader = threading.Thread(target=follow)
        reader.start()
        procs = [ctx.Process(target=write, args=(url, w, start, results)) for w in range(WRITERS)]
        for proc in procs:
            proc.start()
        time.sleep(0.5)  # let the writers open their stores, so they append at the same time
        start.set()
        reported = dict(results.get(timeout=120) for _ in procs)
        for proc in procs:
            proc.join(timeout=60)
            assert proc.exitcode == 0
        reader.join(timeout=60)

        assert gaps == []
        assert sum(len(batch) for batch in reads) == total
        events = follower.read_events(0, total + 10)
        assert [e.sequence for e in events] == list(range(1, total + 1))
        by_sequence = {e.sequence: e.event_id for e in events}
        for writer, stored in reported.items():
            ids = [event_id for event_id, _ in stored]
            assert ids == [f"w{writer}-{i:04d}" for i in range(EVENTS_PER_WRITER)]
            sequences = [sequence for _, sequence in stored]
            assert sequences == sorted(sequences)  # each process's events in its own order
            assert all(by_sequence[sequence] == event_id for event_id, sequence in stored)
        # The writers' batches interleaved: the log is not one writer after another.
        assert len({e.event_id[:2] for e in events[: total // 2]}) == WRITERS
        assert follower.integrity_check() == []
        assert len(follower.open_incidents()) == WRITERS * 5
