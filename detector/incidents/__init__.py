"""After the rules: evidence for each event, then the durable event log (with its bounded in-memory backlog)."""

from __future__ import annotations

from detector.incidents.evidence import EvidenceStage
from detector.incidents.writer import EventWriter

__all__ = ["EventWriter", "EvidenceStage"]
