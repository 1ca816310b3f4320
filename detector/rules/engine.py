"""RulesEngine: one frame's tracked detections in, incident events out, with state per source.

Each call to :meth:`RulesEngine.update` evaluates one frame of one source:

1. Detections become :class:`Sighting` s: the class maps to a category, the confidence reaches the class's
   threshold, and a dwell class stands (bottom-centre) in a zone that prohibits it (a fixed camera with no zones
   at all has its whole view as one, ``no_zones: whole_view``). The rest are ignored.
2. Sightings are associated with the source's open incidents and candidates by place (``Associator``), then
   with recently cleared incidents (reopen). A sighting overlapping a place already seen in this frame is a
   duplicate (e.g. a stall and its cart); any other starts a new candidate, unless it stands on a place the case
   system rejected (:meth:`RulesEngine.apply_verdict`, :mod:`detector.rules.suppress`).
3. Each candidate or incident decides on its event (see :mod:`detector.rules.incident`).

Events come out with ``sequence`` 0; the store assigns sequences. Evidence: every event belongs to the frame
of the ``update`` call that returned it. OPENED and UPDATED are only emitted on a frame where the object is
seen, so ``event.box_xyxy`` is that frame's box; CLEARED carries the last box seen, and the current frame
shows the place empty. The server builds evidence from ``event.box_xyxy`` on the frame it just passed in.

Sources with capture clocks of their own never mix: time is compared only within a source. A source that stops
sending keeps its incidents open (a camera going offline is not a stall leaving); feed it empty detections to
let time run.

Geotagging (``fixes``, from the geo stage, :mod:`detector.geo.stage`): each sighting gets a ground location, a
note, and the source's pose; zones in lat/lon (``geo.zones``) test that location. Moving cameras (drones)
associate by ground distance and category (:mod:`detector.rules.geo_place`), open by confirmation across seconds
or passes, and place an incident at the robust mean of its sightings. A drone that flies on has not seen a stall
leave: its incidents clear only after their place was in view for ``geo.clear_after_in_view_s`` without a
sighting.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

import numpy as np

from detector.rules.associate import Associator, PixelPlaceAssociator, Sighting, match_greedy
from detector.rules.config import FixedCamera, MovingCamera, RuleKind, RulesConfig, SourceRules
from detector.rules.confirm import KOfNSeconds, KOfNSecondsOrPasses
from detector.rules.dwell import DwellClock
from detector.rules.geo_place import place_associator
from detector.rules.incident import IncidentTrack, OpeningRule, Status, TrackContext
from detector.rules.suppress import RejectedPlace, Suppressions
from detector.rules.zones import (
    GeoAreaZone,
    Zone,
    build_geo_zones,
    build_zones,
    dwell_classes,
    prohibiting_geo_zone,
    prohibiting_zone,
)
from detector.types import STREAM_HEALTH, CaseState, Detections, EventType, GroundFixes, IncidentEvent

log = logging.getLogger(__name__)

AssociatorFactory = Callable[[SourceRules], Associator]
SuppressedCallback = Callable[[str, str], None]
"""(source_id, category): a sighting at a rejected place was kept from opening a candidate."""


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class RulesError(Exception):
    """The engine was handed something it cannot evaluate; the message says what to fix."""


@dataclass
class _SourceState:
    rules: SourceRules
    associator: Associator
    duplicates: PixelPlaceAssociator  # two boxes on one object in one frame overlap, whatever the camera
    geo_zones: list[GeoAreaZone]
    tracks: list[IncidentTrack] = field(default_factory=list)
    zones: list[Zone] = field(default_factory=list)
    frame_size: tuple[int, int] | None = None
    last_ts: float = float("-inf")

    @property
    def zoned_classes(self) -> frozenset[str]:
        """Classes that some zone of this source prohibits."""
        classes: set[str] = set()
        zones: list[Zone | GeoAreaZone] = [*self.zones, *self.geo_zones]
        for zone in zones:
            classes |= zone.prohibited
        return frozenset(classes)


class RulesEngine:
    """Zones, dwell, confirmation, dedup and incident lifecycle for every source.

    ``class_names[class_id]`` names the model's classes. ``associator_for`` picks each source's association; the
    default compares boxes in pixels for fixed cameras and ground distance for moving ones.
    """

    def __init__(
        self,
        config: RulesConfig,
        class_names: Sequence[str],
        *,
        model_version: str = "",
        associator_for: AssociatorFactory = place_associator,
        clock: Callable[[], float] = time.time,
        on_suppressed: SuppressedCallback | None = None,
    ) -> None:
        self.config = config
        self._clock = clock  # wall clock: rejected places expire by it (see detector.rules.suppress)
        self._on_suppressed = on_suppressed
        self._suppressions = Suppressions(config.rejected_suppress_iou, config.rejected_suppress_radius_m)
        self._class_names = list(class_names)
        self._category_of = config.category_of()
        self._dwell_classes = dwell_classes(config)
        self._model_version = model_version
        self._associator_for = associator_for
        self._sources: dict[str, _SourceState] = {}
        self._contexts: dict[tuple[str, str], TrackContext] = {}

    def update(
        self,
        source_id: str,
        capture_ts: float,
        detections: Detections,
        frame_size: tuple[int, int],
        fixes: GroundFixes | None = None,
    ) -> list[IncidentEvent]:
        """Evaluate one frame. ``frame_size`` is (width, height); ``fixes`` are the geo stage's ground positions
        of the detections (None: not located).

        Late frames (``capture_ts`` before the source's latest) count at the latest time.
        """
        state = self._state(source_id)
        if state.frame_size != frame_size:
            state.zones = (
                build_zones(state.rules, frame_size, self._dwell_classes)
                if isinstance(state.rules, FixedCamera)
                else []
            )
            state.frame_size = frame_size
        now = max(capture_ts, state.last_ts)
        state.last_ts = now
        if fixes is None:
            fixes = GroundFixes.unlocated(len(detections))
        if not len(fixes.locations) == len(fixes.notes) == len(detections):
            raise RulesError(f"{len(fixes.locations)} ground fixes for {len(detections)} detections")
        self._associate(source_id, state, self._sightings(state, detections, fixes), now)
        if isinstance(state.rules, MovingCamera):
            for track in state.tracks:
                track.look(now, fixes.in_view)
        events = [event for track in state.tracks if (event := track.step(now)) is not None]
        state.tracks = [track for track in state.tracks if not track.expire(now)]
        return events

    def restore(self, open_incidents: Iterable[IncidentEvent]) -> None:
        """Continue incidents that were open before a restart, from the last event of each.

        Their objects are then associated by place as if the service had never stopped; an object gone for
        ``clear_after_s`` by the first frame after the restart clears its incident. ``STREAM_HEALTH`` incidents
        (a source down or degraded) are the stream-health monitor's, not the rules': they are skipped.
        """
        for event in open_incidents:
            if event.category == STREAM_HEALTH:
                continue
            if event.type is EventType.CLEARED:
                raise RulesError(f"incident {event.incident_id} is cleared; restore() takes open incidents only")
            category = self.config.categories.get(event.category)
            if category is None:
                raise RulesError(
                    f"incident {event.incident_id} has category {event.category!r}, which the rules do not "
                    f"define; known: {', '.join(sorted(self.config.categories))}"
                )
            state = self._state(event.source_id)
            state.tracks = [track for track in state.tracks if track.incident_id != event.incident_id]
            class_name = category.classes[0]
            sighting = Sighting(
                index=-1,
                class_name=class_name,
                category=event.category,
                box=event.box_xyxy,
                confidence=event.confidence,
                track_id=-1,
                zone_id=event.zone_id,
                location=event.location,
                location_note=event.location_note,
                pose=event.source_pose,
            )
            track = IncidentTrack(sighting, event.last_seen_ts, self._context(event.source_id, class_name))
            track.restore(event)
            state.tracks.append(track)

    def forget(self, source_id: str) -> None:
        """Drop a source's incidents and candidates (another replica of a cluster goes on with them); rejected
        places stay in force."""
        self._sources.pop(source_id, None)

    def association_radius_m(self, source_id: str) -> float | None:
        """How far on the ground a sighting of ``source_id`` is still the same object (``geo.dedup_radius_m``);
        None for a fixed camera, which associates by box instead."""
        rules = self._state(source_id).rules
        return rules.geo.dedup_radius_m if isinstance(rules, MovingCamera) else None

    def adopt(self, source_id: str, incident_id: str, shared: IncidentEvent) -> IncidentEvent | None:
        """Make the incident ``incident_id`` that ``source_id`` just OPENED continue ``shared.incident_id``
        instead: another source (a drone of another replica) opened that one for the same object already.

        Returns the UPDATED event that replaces the OPENED one; None (nothing changes) when the source has no
        such incident or follows ``shared``'s incident already. Call it before the next ``update`` of the
        source, from the thread that calls ``update``.
        """
        state = self._sources.get(source_id)
        if state is None or any(track.incident_id == shared.incident_id for track in state.tracks):
            return None
        track = next((track for track in state.tracks if track.incident_id == incident_id), None)
        if track is None or track.status is not Status.OPEN:
            return None
        track.incident_id = shared.incident_id
        log.info(
            "incident joined one opened by another source",
            extra={"incident_id": shared.incident_id, "source_id": source_id, "opened_by": shared.source_id},
        )
        return track.describe(EventType.UPDATED, f"also seen by {source_id}")

    def source_down(self, source_id: str, since_ts: float) -> list[IncidentEvent]:
        """An UPDATED event for each open incident of ``source_id``, noting that the source is down since
        ``since_ts`` (the capture time of its last frame). Nothing changes: the incidents keep their dwell and
        clear as if no event had been sent, and clear only on frames that show their place empty."""
        return self._note_open(source_id, f"source down since {_rfc3339(since_ts)}")

    def source_back(self, source_id: str, at_ts: float) -> list[IncidentEvent]:
        """An UPDATED event for each incident of ``source_id`` still open when its frames are back (``at_ts``:
        the capture time of the first frame back); like :meth:`source_down`, it changes nothing."""
        return self._note_open(source_id, f"source back at {_rfc3339(at_ts)}")

    def _note_open(self, source_id: str, note: str) -> list[IncidentEvent]:
        state = self._sources.get(source_id)
        if state is None:
            return []
        return [track.describe(EventType.UPDATED, note) for track in state.tracks if track.status is Status.OPEN]

    def apply_verdict(self, event: IncidentEvent, verdict_ts: float | None = None) -> None:
        """Learn the case system's verdict, a FEEDBACK event (``verdict_ts``: its wall-clock time; None: now).

        RESOLVED and REJECTED close the incident: it is forgotten, so it raises no more events (the store shows it
        cleared already), and its object seen again later is a new candidate, hence a new incident. REJECTED also
        keeps new candidates of its category off its place for ``rejected_suppress_s`` after the verdict.
        Synchronous, like :meth:`update`: call both from one thread (the pipeline's event loop), so a verdict
        falls between two frames' steps, never inside one.
        """
        if event.case_state is None or not CaseState(event.case_state).closes:
            return
        state = self._sources.get(event.source_id)
        if state is not None:
            state.tracks = [track for track in state.tracks if track.incident_id != event.incident_id]
        if CaseState(event.case_state) is not CaseState.REJECTED or self.config.rejected_suppress_s <= 0:
            return
        rules = self.config.for_source(event.source_id)
        until_ts = (self._clock() if verdict_ts is None else verdict_ts) + self.config.rejected_suppress_s
        if until_ts <= self._clock():
            return
        place = RejectedPlace(
            event.incident_id,
            event.category,
            event.source_id,
            event.box_xyxy,
            event.location,
            isinstance(rules, MovingCamera),
            until_ts,
        )
        self._suppressions.add(place)
        log.info(
            "rejected place suppressed",
            extra={
                "incident_id": event.incident_id,
                "category": event.category,
                "source_id": event.source_id,
                "until_ts": round(until_ts, 3),
            },
        )

    def _state(self, source_id: str) -> _SourceState:
        state = self._sources.get(source_id)
        if state is None:
            rules = self.config.for_source(source_id)
            state = _SourceState(
                rules, self._associator_for(rules), PixelPlaceAssociator(rules.match_iou), build_geo_zones(rules)
            )
            self._sources[source_id] = state
        return state

    def _kind(self, rules: SourceRules, category: str) -> RuleKind:
        return "confirm" if isinstance(rules, MovingCamera) else self.config.categories[category].rule

    def _context(self, source_id: str, class_name: str) -> TrackContext:
        key = (source_id, class_name)
        context = self._contexts.get(key)
        if context is None:
            rules = self._state(source_id).rules
            category = self._category_of[class_name]
            new_rule: Callable[[], OpeningRule]
            if self._kind(rules, category) == "dwell":
                new_rule = partial(DwellClock, rules.dwell_s, rules.stationary_tolerance_px)
            elif isinstance(rules, MovingCamera):
                confirm, geo = rules.confirm[class_name], rules.geo
                new_rule = partial(KOfNSecondsOrPasses, confirm.k, confirm.n_s, geo.confirm_passes, geo.pass_gap_s)
            else:
                confirm = rules.confirm[class_name]
                new_rule = partial(KOfNSeconds, confirm.k, confirm.n_s)
            context = TrackContext(source_id, self.config.categories[category], rules, new_rule, self._model_version)
            self._contexts[key] = context
        return context

    def _class_name(self, class_id: int) -> str:
        if not 0 <= class_id < len(self._class_names):
            raise RulesError(
                f"class_id {class_id} is outside the {len(self._class_names)} class names the rules engine "
                "was given; construct it with the model's class names"
            )
        return self._class_names[class_id]

    def _sightings(self, state: _SourceState, detections: Detections, fixes: GroundFixes) -> list[Sighting]:
        n = len(detections)
        if n == 0:
            return []
        names = [self._class_name(int(c)) for c in detections.class_id]
        track_ids = detections.track_id if detections.track_id is not None else np.full(n, -1, np.int64)
        pixel_zones = prohibiting_zone(state.zones, names, detections.bottom_centres())
        geo_zones = prohibiting_geo_zone(state.geo_zones, names, fixes.locations)
        zone_ids = [pixel or geo for pixel, geo in zip(pixel_zones, geo_zones, strict=True)]
        rules = state.rules
        zoned = state.zoned_classes if isinstance(rules, MovingCamera) else frozenset()
        sightings = []
        for i, name in enumerate(names):
            category = self._category_of.get(name)
            if category is None:
                continue
            kind = self._kind(rules, category)
            threshold = rules.confirm[name].min_confidence if kind == "confirm" else rules.dwell_min_confidence
            confidence = float(detections.confidence[i])
            # Dwell needs a zone to dwell in; on a drone, a class that zones restrict counts only inside one.
            needs_zone = kind == "dwell" or name in zoned
            if confidence < threshold or (needs_zone and zone_ids[i] is None):
                continue
            x1, y1, x2, y2 = (float(v) for v in detections.xyxy[i])
            sightings.append(
                Sighting(
                    i,
                    name,
                    category,
                    (x1, y1, x2, y2),
                    confidence,
                    int(track_ids[i]),
                    zone_ids[i] or "",
                    fixes.locations[i],
                    fixes.notes[i],
                    fixes.pose,
                )
            )
        return sightings

    def _associate(self, source_id: str, state: _SourceState, sightings: list[Sighting], now: float) -> None:
        associator = state.associator
        left = list(sightings)
        for status in (Status.OPEN, Status.PENDING, Status.CLEARED):
            tracks = [track for track in state.tracks if track.status is status]
            pairs = match_greedy(associator, tracks, left)
            for p, s in pairs:
                tracks[p].observe(left[s], now)
            taken = {s for _, s in pairs}
            left = [sighting for s, sighting in enumerate(left) if s not in taken]
        moving = isinstance(state.rules, MovingCamera)
        wall_ts = self._clock() if left and len(self._suppressions) else None
        for sighting in sorted(left, key=lambda s: -s.confidence):
            if wall_ts is not None and self._suppressed(source_id, moving, sighting, wall_ts):
                continue
            seen = (track for track in state.tracks if track.last_seen_ts == now)
            if any(state.duplicates.similarity(track, sighting) is not None for track in seen):
                continue  # a second box on a place already seen in this frame
            state.tracks.append(IncidentTrack(sighting, now, self._context(source_id, sighting.class_name)))

    def _suppressed(self, source_id: str, moving: bool, sighting: Sighting, wall_ts: float) -> bool:
        """Whether ``sighting`` stands on a rejected place; counted, and logged the first time per place."""
        place = self._suppressions.covering(source_id, moving, sighting, wall_ts)
        if place is None:
            return False
        place.suppressed += 1
        if place.suppressed == 1:
            log.info(
                "candidate suppressed at a rejected place",
                extra={"incident_id": place.incident_id, "category": sighting.category, "source_id": source_id},
            )
        if self._on_suppressed is not None:
            self._on_suppressed(source_id, sighting.category)
        return True
