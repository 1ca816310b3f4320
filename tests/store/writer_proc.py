"""Writer for the kill -9 test: appends numbered events (and some evidence) until it is killed.

Prints ``committed <last_sequence>`` after each append returns, so the parent knows what must survive.
Usage: python -m tests.store.writer_proc DATA_DIR  (SQLite), or  python -m tests.store.writer_proc postgresql://...
"""

from __future__ import annotations

import sys
from pathlib import Path

from detector.store import IncidentStore, PostgresStore, SqliteStore
from detector.types import EventType
from tests.store.factories import make_event


def main(where: str) -> None:
    store: IncidentStore = PostgresStore(where) if where.startswith("postgresql:") else SqliteStore(Path(where))
    counter = store.last_sequence()
    while True:
        batch = []
        for _ in range(1 + counter % 3):
            incident = counter % 7
            step = (counter // 7) % 4  # each incident: OPENED, UPDATED, UPDATED, CLEARED, then reopens
            kind = [EventType.OPENED, EventType.UPDATED, EventType.UPDATED, EventType.CLEARED][step]
            evidence = (store.put_evidence("crop_jpeg", f"crop {counter}".encode() * 50),) if counter % 5 == 0 else ()
            batch.append(make_event(f"inc-{incident}", type=kind, event_id=f"evt-{counter}", evidence=evidence))
            counter += 1
        stored = store.append(batch)
        print(f"committed {stored[-1].sequence}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
