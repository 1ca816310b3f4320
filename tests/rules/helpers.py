"""Scripted detection sequences for rules tests: no model, exact timestamps (i / fps)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from detector.rules import FixedCamera, RulesConfig, RulesEngine, ZoneConfig
from detector.types import Detections, EventType, Frame, GroundFixes, IncidentEvent, Telemetry

CLASS_NAMES = ["stall", "cart", "goods", "garbage", "overflow", "pothole", "garbage_bin", "person"]
FRAME_SIZE = (1920, 1080)
SOURCE = "cam-1"
# Road and pavement below y=500 are a no-vending zone.
ZONE = ZoneConfig(
    id="no-vending",
    polygon_px=[(0, 500), (1920, 500), (1920, 1080), (0, 1080)],
    prohibited_classes=["stall", "cart", "goods"],
)
STALL_BOX = (800.0, 600.0, 1000.0, 800.0)
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Obj:
    """One object in one scripted frame."""

    box: Box = STALL_BOX
    cls: str = "stall"
    conf: float = 0.9
    track_id: int = 1


def make_detections(objects: Sequence[Obj] = ()) -> Detections:
    return Detections(
        xyxy=np.array([o.box for o in objects], dtype=np.float32).reshape(-1, 4),
        confidence=np.array([o.conf for o in objects], dtype=np.float32),
        class_id=np.array([CLASS_NAMES.index(o.cls) for o in objects], dtype=np.int64),
        track_id=np.array([o.track_id for o in objects], dtype=np.int64),
    )


def make_engine(source_id: str = SOURCE, **overrides: Any) -> RulesEngine:
    """An engine whose ``source_id`` has the no-vending zone and the given SourceRules overrides."""
    rules = FixedCamera.model_validate({"zones": [ZONE], **overrides})
    return RulesEngine(RulesConfig(sources={source_id: rules}), CLASS_NAMES, model_version="test-model")


Locate = Callable[[str, Detections, tuple[int, int], Telemetry | None], GroundFixes]
"""(source_id, detections, frame size, telemetry) -> ground fixes: the geo stage's ``locate_at`` or a stand-in."""


class GeoThenRules:
    """The geo stage, then the rules engine, as the frame pipeline runs them, for tests that feed detections."""

    def __init__(self, rules: RulesEngine, locate: Locate) -> None:
        self.rules = rules
        self.locate = locate

    def update(
        self,
        source_id: str,
        ts: float,
        detections: Detections,
        size: tuple[int, int],
        frame: Frame | None = None,
    ) -> list[IncidentEvent]:
        fixes = self.locate(source_id, detections, size, None if frame is None else frame.telemetry)
        return self.rules.update(source_id, ts, detections, size, fixes)

    def restore(self, open_incidents: Iterable[IncidentEvent]) -> None:
        self.rules.restore(open_incidents)


def timeline(
    fps: float, until_s: float, objects_at: Callable[[float], Sequence[Obj]], start_s: float = 0.0
) -> Iterator[tuple[float, Sequence[Obj]]]:
    """Frames at ts = i / fps for start_s <= ts <= until_s, each with ``objects_at(ts)``."""
    i = round(start_s * fps)
    while (ts := i / fps) <= until_s + 1e-9:
        yield ts, objects_at(ts)
        i += 1


def play(
    engine: RulesEngine | GeoThenRules, frames: Iterable[tuple[float, Sequence[Obj]]], source_id: str = SOURCE
) -> list[IncidentEvent]:
    events: list[IncidentEvent] = []
    for ts, objects in frames:
        events.extend(engine.update(source_id, ts, make_detections(objects), FRAME_SIZE))
    return events


def of_type(events: Iterable[IncidentEvent], kind: EventType) -> list[IncidentEvent]:
    return [event for event in events if event.type is kind]
