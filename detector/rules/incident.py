"""One candidate or incident at one place, and its lifecycle: PENDING → OPEN → CLEARED (→ PENDING → OPEN …).

A candidate is PENDING until its opening rule (dwell or confirmation) is due. An OPEN incident is UPDATED only
on a meaningful change and CLEARED after ``clear_after_s`` of absence. A CLEARED incident is remembered for
``reopen_after_s``: the same object back at the same place becomes PENDING again under the same incident_id
and, once its rule is due again, OPENED again.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from detector.geo.dedup import GeoObservation, GeoSite, ground_distance_m
from detector.rules.associate import Box, Sighting
from detector.rules.config import CategoryConfig, MovingCamera, SourceRules
from detector.types import EventType, GeoPoint, IncidentEvent, Telemetry

_EPS = 1e-9


class OpeningRule(Protocol):
    """What makes a candidate an incident (:class:`~detector.rules.dwell.DwellClock`, ``KOfNSeconds``)."""

    @property
    def name(self) -> str: ...
    def observe(self, point: tuple[float, float], ts: float) -> None: ...
    def is_due(self, now: float) -> bool: ...


class Status(Enum):
    PENDING = "pending"
    OPEN = "open"
    CLEARED = "cleared"


@dataclass(frozen=True)
class TrackContext:
    """What every incident of one category on one source shares."""

    source_id: str
    category: CategoryConfig
    rules: SourceRules
    new_rule: Callable[[], OpeningRule]
    model_version: str = ""


@dataclass
class _Reported:
    """What the last event said, to judge whether a new one is worth sending."""

    ts: float
    confidence: float
    box: Box
    location: GeoPoint | None = None


class IncidentTrack:
    """A candidate or incident of one category at one place, fed with the sightings associated with it."""

    def __init__(self, sighting: Sighting, now: float, context: TrackContext) -> None:
        self.incident_id = str(uuid.uuid4())
        self.category = sighting.category
        self.status = Status.PENDING
        self.first_seen_ts = now
        self.last_seen_ts = now
        self.box = sighting.box
        self.track_id = sighting.track_id
        self.zone_id = sighting.zone_id
        self.location: GeoPoint | None = None
        self.location_note = ""
        self.source_pose: Telemetry | None = None
        self.confidence = sighting.confidence
        self.cleared_ts: float | None = None
        self._context = context
        self._rules = context.rules
        self._site: GeoSite | None = None  # moving cameras: every located sighting, for the robust mean
        self._absent_in_view_s = 0.0  # moving cameras: how long its place was in view without a sighting
        self._last_look_ts: float | None = None  # the previous frame, when it showed the place
        self._place(sighting, now)
        self._rule = context.new_rule()
        self._rule.observe(sighting.bottom_centre, now)
        self._reported: _Reported | None = None

    def observe(self, sighting: Sighting, now: float) -> None:
        """Take this frame's sighting of the object; a CLEARED incident seen again starts to qualify anew."""
        if self.status is Status.CLEARED:
            self.status = Status.PENDING
            self._rule = self._context.new_rule()
        tau = self._rules.confidence_smoothing_s
        weight = 1.0 if tau <= 0.0 else 1.0 - math.exp(-(now - self.last_seen_ts) / tau)
        self.confidence += weight * (sighting.confidence - self.confidence)
        self.last_seen_ts = now
        self.box = sighting.box
        self.track_id = sighting.track_id
        self.zone_id = sighting.zone_id or self.zone_id
        self._place(sighting, now)
        self._rule.observe(sighting.bottom_centre, now)

    def _place(self, sighting: Sighting, now: float) -> None:
        """Update the location: the latest for a fixed camera (it sees the object from one place), the robust
        mean of all sightings so far for a moving one (each sighting has its own pose error)."""
        self.source_pose = self.source_pose or sighting.pose  # the pose at first sight, once known
        if sighting.location is None:
            if self.location is None:
                self.location_note = sighting.location_note
            return
        self.location_note = sighting.location_note
        if not isinstance(self._rules, MovingCamera):
            self.location = sighting.location
            return
        observation = GeoObservation(now, sighting.location, sighting.category, sighting.confidence)
        if self._site is None:
            self._site = GeoSite.start(self.incident_id, observation)
        else:
            geo = self._rules.geo
            self._site.add(observation, pass_gap_s=geo.pass_gap_s, max_observations=geo.max_observations)
        self.location = self._site.location

    def step(self, now: float) -> IncidentEvent | None:
        """The event this frame calls for, if any. Call once per frame, after :meth:`observe`."""
        seen_now = self.last_seen_ts == now
        if self.status is Status.PENDING and seen_now and self._rule.is_due(now):
            self.status = Status.OPEN
            return self._event(EventType.OPENED, now)
        if self.status is Status.OPEN:
            if self._gone(now):
                self.status = Status.CLEARED
                self.cleared_ts = now
                return self._event(EventType.CLEARED, now)
            if seen_now and self._worth_updating(now):
                return self._event(EventType.UPDATED, now)
        return None

    def look(self, now: float, in_view: Callable[[GeoPoint], bool] | None) -> None:
        """Moving cameras, every frame: count the time the camera looked at the place and did not see it. A frame
        whose footprint is unknown (no telemetry) counts as looking elsewhere."""
        looking = in_view is not None and self.location is not None and in_view(self.location)
        if self.last_seen_ts == now:
            self._absent_in_view_s = 0.0
        elif looking and self._last_look_ts is not None:
            self._absent_in_view_s += now - self._last_look_ts  # only between two frames that both looked
        self._last_look_ts = now if looking else None

    def _gone(self, now: float) -> bool:
        if isinstance(self._rules, MovingCamera):
            return self._absent_in_view_s >= self._rules.geo.clear_after_in_view_s - _EPS
        return now - self.last_seen_ts >= self._rules.clear_after_s - _EPS

    def expire(self, now: float) -> bool:
        """True when this is to be forgotten: a candidate lost longer than occlusion_s, or a cleared incident
        past reopen_after_s. A lost candidate of a cleared incident falls back to CLEARED, keeping its window.
        """
        if self.status is Status.PENDING and now - self.last_seen_ts > self._rules.occlusion_s + _EPS:
            if self.cleared_ts is None:
                return True
            self.status = Status.CLEARED
        if self.status is Status.CLEARED:
            assert self.cleared_ts is not None
            return now - self.cleared_ts > self._rules.reopen_after_s + _EPS
        return False

    def restore(self, event: IncidentEvent) -> None:
        """Continue an incident that was open before a restart, as its last event left it."""
        self.incident_id = event.incident_id
        self.status = Status.OPEN
        self.first_seen_ts = event.first_seen_ts
        self.last_seen_ts = event.last_seen_ts
        self.confidence = event.confidence
        self.location = event.location
        self.location_note = event.location_note
        self.source_pose = event.source_pose
        self._absent_in_view_s = 0.0
        self._last_look_ts = None
        self._site = None
        if event.location is not None and isinstance(self._rules, MovingCamera):
            # The stored location stands for the sightings before the restart.
            observation = GeoObservation(event.last_seen_ts, event.location, event.category, event.confidence)
            self._site = GeoSite.start(event.incident_id, observation)
        self._reported = _Reported(event.last_seen_ts, event.confidence, event.box_xyxy, event.location)

    def _worth_updating(self, now: float) -> bool:
        reported = self._reported
        assert reported is not None
        since_s = now - reported.ts
        if since_s < self._rules.min_update_interval_s - _EPS:
            return False
        return (
            since_s >= self._rules.heartbeat_s - _EPS
            or abs(self.confidence - reported.confidence) >= self._rules.confidence_step - _EPS
            or self._moved(reported)
        )

    def _moved(self, reported: _Reported) -> bool:
        """A fixed camera's box moved; a moving camera's box always moves, so there the place estimate must
        have moved by more than its accuracy (or been found at all)."""
        if not isinstance(self._rules, MovingCamera):
            moved_px = max(abs(a - b) for a, b in zip(self.box, reported.box, strict=True))
            return moved_px > self._rules.box_move_tolerance_px
        if self.location is None or reported.location is None:
            return self.location is not None
        return ground_distance_m(self.location, reported.location) > self.location.accuracy_m

    def _event(self, kind: EventType, now: float) -> IncidentEvent:
        # Box and confidence are those of ``now``'s frame, except CLEARED, which reports the last sighting:
        # the server builds evidence from this box on the current frame (for CLEARED: the place, now empty).
        self._reported = _Reported(now, self.confidence, self.box, self.location)
        return self.describe(kind)

    def describe(self, kind: EventType, note: str = "") -> IncidentEvent:
        """The incident as it stands, as an event of ``kind``, changing nothing: the next update, heartbeat and
        clear come as if it had not been sent (e.g. an UPDATED saying that the source is down)."""
        category = self._context.category
        return IncidentEvent(
            event_id=str(uuid.uuid4()),
            incident_id=self.incident_id,
            type=kind,
            category=self.category,
            case_code=category.case_code,
            label=category.label,
            severity=category.severity,
            confidence=round(self.confidence, 4),
            source_id=self._context.source_id,
            first_seen_ts=self.first_seen_ts,
            last_seen_ts=self.last_seen_ts,
            box_xyxy=self.box,
            zone_id=self.zone_id,
            rule=self._rule.name,
            model_version=self._context.model_version,
            location=self.location,
            source_pose=self.source_pose,
            location_note=self.location_note,
            note=note,
        )
