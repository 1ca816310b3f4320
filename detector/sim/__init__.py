"""Street-world simulator: drone and pole-camera footage with exact ground truth, and a scorer for incidents.

- ``render_scenario`` (runner.py): a named scenario to video.mp4, truth.json, flight.srt and preview.jpg.
- ``Scorer`` (score.py): incident events (``detector subscribe --json``) against a truth: recall, precision,
  duplicates, geo error, time to open.
- ``render_composites`` (composite.py): YOLO training composites; detector/train's ``SimRenderer``.

Cameras are detector/geo's ``PinholeCamera``: the simulator renders with the model the service projects with.
"""

from __future__ import annotations

from detector.sim.runner import RenderSummary, render_scenario
from detector.sim.scenarios import SCENARIOS
from detector.sim.score import Scorer, ScoreReport, ScoreSettings
from detector.sim.truth import Truth

__all__ = ["SCENARIOS", "RenderSummary", "ScoreReport", "ScoreSettings", "Scorer", "Truth", "render_scenario"]
