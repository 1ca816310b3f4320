"""After the rules: a drone's new incident joined to one already open at its place (``SharedIncidents``), evidence
for each event, then the durable event log (with its bounded in-memory backlog)."""

from __future__ import annotations

from detector.incidents.evidence import EvidenceStage
from detector.incidents.shared import SharedIncidents
from detector.incidents.writer import EventWriter

__all__ = ["EventWriter", "EvidenceStage", "SharedIncidents"]
