"""A CLEARED event carries the evidence of the incident's last photo, also when the incident was opened before
a restart (a fresh evidence stage reads it from the real SQLite store)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from detector.incidents import EvidenceStage
from detector.store import SqliteStore
from detector.types import EventType, Frame
from tests.store.factories import make_event


def _frame(seq: int) -> Frame:
    return Frame("cam-1", seq, 1.76e9 + seq, np.full((240, 320, 3), 90, dtype=np.uint8))


def test_cleared_events_carry_the_last_evidence_across_a_restart(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "data")
    try:

        async def go() -> None:
            stage = EvidenceStage(store)
            (opened,) = await stage.attach(_frame(1), [make_event("inc-1", evidence=())])
            assert opened.evidence and {e.kind.value for e in opened.evidence} == {"frame_jpeg", "crop_jpeg"}
            (cleared,) = await stage.attach(_frame(2), [make_event("inc-1", EventType.CLEARED, evidence=())])
            assert cleared.evidence == opened.evidence

            # Another incident opened before a restart: its OPENED event is in the store, the new stage has no memory.
            (before,) = await stage.attach(_frame(3), [make_event("inc-2", evidence=())])
            store.append([before])
            restarted = EvidenceStage(store)
            (after,) = await restarted.attach(_frame(4), [make_event("inc-2", EventType.CLEARED, evidence=())])
            assert after.evidence == before.evidence
            (never,) = await restarted.attach(_frame(5), [make_event("inc-3", EventType.CLEARED, evidence=())])
            assert never.evidence == (), "an incident that never had a photo clears without one"

        asyncio.run(go())
    finally:
        store.close()
