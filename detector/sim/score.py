"""Score incident events against a scenario's ground truth, the way a city judges a service: was each violation
found (recall), reported once (duplicates), in the right place (metres), in time (seconds after it was first seen,
minus the dwell it must first satisfy), and how much else was reported (false alarms, precision).

Expected incidents: objects of a class that some incident category covers, seen (at ``min_visibility`` or more,
with a visible box of ``min_area_px`` or more); a dwell-rule object (stall, cart, goods on a fixed camera) must
also stay in a prohibited zone for ``dwell_s + dwell_margin_s``, and a confirm-rule object be seen in
``min_seen_s`` distinct seconds. Other objects of those classes are "don't care": an incident on one is neither a
hit nor a false alarm ("ignored"), e.g. a stall that leaves just before its dwell is up.

An incident matches an object of its category whose life overlaps the incident's, by place: within
``match_radius_m`` of the incident's location when it has one (or within twice the accuracy_m it states, its ~95 %
radius, when that is wider: a far, oblique drone fix is where it says it is), else by box overlap (IoU >=
``match_iou``) with the object's box in the truth frame nearest the opening. Each object takes its best incident
one to one first; further incidents on an object already taken are duplicates. Geo error and time to open are
those of an object's first incident, at its opening (what the city dispatched on).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field

from detector.geo.enu import offset_m
from detector.rules.config import default_categories
from detector.sim.events import IncidentSeen
from detector.sim.truth import Box, Truth, TruthObject


class ScoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dwell_s: float | None = Field(default=None, ge=0, description="Dwell of dwell-rule classes; None: the truth's")
    dwell_margin_s: float = Field(default=10.0, ge=0, description="Stay beyond the dwell needed to expect an incident")
    min_seen_s: float = Field(default=3.0, ge=0, description="Distinct seconds a confirm-rule object must be seen")
    min_visibility: float = Field(default=0.3, ge=0, le=1, description="Share of an object seen to count as seen")
    min_area_px: float = Field(default=64.0, ge=0, description="Least visible box area to count as seen, pixels")
    match_radius_m: float = Field(
        default=5.0, gt=0, description="Furthest an incident location may be from its object (or 2 x accuracy_m)"
    )
    match_iou: float = Field(default=0.3, gt=0, le=1, description="Least box overlap for incidents without location")
    time_slack_s: float = Field(default=10.0, ge=0, description="Allowed slack on the object's life when matching")
    late_after_s: float = Field(default=30.0, ge=0, description="An opening this long after expected counts as late")
    start_ts: float | None = Field(default=None, description="Capture time of frame 0; None: the truth's start_ts")
    source_id: str | None = Field(default=None, description="Score only this source's events; None: all")


@dataclass
class ObjectScore:
    id: int
    cls: str
    category: str
    expected: bool
    first_seen_s: float | None
    incidents: list[str] = field(default_factory=list)
    opened_s: float | None = None
    time_to_open_s: float | None = None
    geo_error_m: float | None = None
    accuracy_m: float | None = None


@dataclass
class IncidentScore:
    incident_id: str
    category: str
    opened_s: float
    object_id: int | None
    status: str  # "true", "duplicate", "false_alarm" or "ignored"


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p95": None, "max": None}
    arr = np.asarray(values, np.float64)
    return {"median": float(np.median(arr)), "p95": float(np.percentile(arr, 95)), "max": float(arr.max())}


@dataclass
class ScoreReport:
    scenario: str
    camera: str
    dwell_s: float
    objects: list[ObjectScore]
    incidents: list[IncidentScore]
    late_after_s: float
    warnings: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict[str, Any]:
        expected = [o for o in self.objects if o.expected]
        found = [o for o in expected if o.incidents]
        count = {s: sum(i.status == s for i in self.incidents) for s in ("true", "duplicate", "false_alarm", "ignored")}
        matched = count["true"] + count["duplicate"]
        scored = matched + count["false_alarm"]
        located = [o for o in found if o.geo_error_m is not None]
        inside = [o for o in located if o.accuracy_m is not None and o.geo_error_m <= o.accuracy_m]  # type: ignore[operator]
        delays = [o.time_to_open_s for o in found if o.time_to_open_s is not None]
        return {
            "expected": len(expected),
            "found": len(found),
            "recall": len(found) / len(expected) if expected else None,
            "incidents": scored + count["ignored"],
            "precision": matched / scored if scored else None,
            "duplicates": count["duplicate"],
            "duplicate_rate": count["duplicate"] / matched if matched else None,
            "false_alarms": count["false_alarm"],
            "ignored": count["ignored"],
            "missed": [o.id for o in expected if not o.incidents],
            "geo_error_m": {**_stats([o.geo_error_m for o in located if o.geo_error_m is not None]), "n": len(located)},
            "within_accuracy": len(inside) / len(located) if located else None,
            "time_to_open_s": {**_stats(delays), "n": len(delays)},
            "late": sum(d > self.late_after_s for d in delays),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "camera": self.camera,
            "dwell_s": self.dwell_s,
            "metrics": self.metrics,
            "objects": [asdict(o) for o in self.objects],
            "incidents": [asdict(i) for i in self.incidents],
            "warnings": list(self.warnings),
        }

    def text(self) -> str:
        m = self.metrics

        def num(value: float | None, fmt: str = ".2f", unit: str = "") -> str:
            return "-" if value is None else f"{value:{fmt}}{unit}"

        geo, ttl = m["geo_error_m"], m["time_to_open_s"]
        lines = [
            *(f"WARNING: {w}" for w in self.warnings),
            f"incident score: {self.scenario} ({self.camera} camera), {m['expected']} incidents expected, "
            f"{m['incidents']} opened",
            f"  recall {num(m['recall'])} ({m['found']}/{m['expected']})   precision {num(m['precision'])}   "
            f"duplicates {m['duplicates']} (rate {num(m['duplicate_rate'])})   false alarms {m['false_alarms']}   "
            f"ignored {m['ignored']}",
            f"  geo error: median {num(geo['median'], '.1f', ' m')}, p95 {num(geo['p95'], '.1f', ' m')} over "
            f"{geo['n']} located; true point inside the reported accuracy: {num(m['within_accuracy'], '.0%')}",
            f"  time to open (after first seen, minus dwell {self.dwell_s:g} s for dwell rules): median "
            f"{num(ttl['median'], '.1f', ' s')}, p95 {num(ttl['p95'], '.1f', ' s')}, max {num(ttl['max'], '.1f', ' s')}"
            f"; late (> {self.late_after_s:g} s): {m['late']}",
            f"  {'object':>6}  {'class':11} {'category':21} {'expected':8} {'seen at':>8} {'opened':>8} "
            f"{'to open':>8} {'geo err':>8} incidents",
        ]
        for o in self.objects:
            lines.append(
                f"  {o.id:>6}  {o.cls:11} {o.category:21} {'yes' if o.expected else 'no':8} "
                f"{num(o.first_seen_s, '.1f', ' s'):>8} {num(o.opened_s, '.1f', ' s'):>8} "
                f"{num(o.time_to_open_s, '.1f', ' s'):>8} {num(o.geo_error_m, '.1f', ' m'):>8} {len(o.incidents)}"
            )
        for i in self.incidents:
            if i.status in ("false_alarm", "duplicate"):
                on = f" (object {i.object_id})" if i.object_id is not None else ""
                lines.append(f"  {i.status.replace('_', ' ')}: {i.incident_id} {i.category} at {i.opened_s:.1f} s{on}")
        return "\n".join(lines)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _area(box: Box | None) -> float:
    return 0.0 if box is None else (box[2] - box[0]) * (box[3] - box[1])


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class Scorer:
    """Scores incidents against one truth; see the module docstring for the rules."""

    def __init__(self, truth: Truth, settings: ScoreSettings | None = None) -> None:
        self.truth = truth
        self.settings = settings or ScoreSettings()
        s = self.settings
        self.dwell_s = truth.dwell_s if s.dwell_s is None else s.dwell_s
        self.start_ts = truth.start_ts if s.start_ts is None else s.start_ts
        categories = default_categories()
        self._category = {cls: name for name, c in categories.items() for cls in c.classes}
        self._dwell_rule = {name for name, c in categories.items() if c.rule == "dwell" and truth.camera == "fixed"}
        self._zones = [shapely.Polygon(z["polygon_px"]) for z in truth.zones]
        self._frame_times = [f.t_s for f in truth.frames]

    def score(self, incidents: list[IncidentSeen]) -> ScoreReport:
        s = self.settings
        objects = {o.id: self._object_score(o) for o in self.truth.objects if o.cls in self._category}
        chosen = [i for i in incidents if s.source_id is None or i.source_id == s.source_id]
        costs = sorted(
            (cost, n, oid) for n, i in enumerate(chosen) for oid, cost in self._candidates(i, objects).items()
        )
        assigned: dict[int, int] = {}  # incident index -> object id
        taken: set[int] = set()
        for _, n, oid in costs:  # one to one first, best pairs first
            if n not in assigned and oid not in taken:
                assigned[n] = oid
                taken.add(oid)
        for _, n, oid in costs:  # then the rest go to their best object, as duplicates
            assigned.setdefault(n, oid)
        results = []
        for n, incident in sorted(enumerate(chosen), key=lambda p: p[1].opened_ts):
            match = assigned.get(n)
            opened = incident.opened_ts - self.start_ts
            if match is None:
                status = "false_alarm"
            elif not objects[match].expected:
                status = "ignored"
            else:
                status = "duplicate" if objects[match].incidents else "true"
                if status == "true":
                    self._record(objects[match], incident, opened)
                objects[match].incidents.append(incident.incident_id)
            results.append(IncidentScore(incident.incident_id, incident.category, opened, match, status))
        return ScoreReport(self.truth.scenario, self.truth.camera, self.dwell_s, list(objects.values()), results,
                           s.late_after_s, self.alignment_warnings(chosen))  # fmt: skip

    def alignment_warnings(self, incidents: list[IncidentSeen]) -> list[str]:
        """A warning when no incident falls in the truth's time window: the events' capture times (from the
        service) and the truth's clock (``start_ts``: the replay's first capture time) do not line up, and every
        incident would score as a false alarm or every object as missed."""
        t0 = self.start_ts
        t1 = t0 + self.truth.duration_s + self.settings.time_slack_s
        if not incidents or any(t0 <= i.opened_ts <= t1 or t0 <= i.first_seen_ts <= t1 for i in incidents):
            return []
        first = min(i.first_seen_ts for i in incidents)
        last = max(i.opened_ts for i in incidents)
        return [
            f"no event between {_when(t0)} and {_when(t1)} (the truth's {self.truth.duration_s:g} s from start "
            f"{t0:.3f}): was the replay's first capture time {t0:.3f} aligned with the truth's start? The "
            f"{len(incidents)} incident(s) were seen from {_when(first)} to {_when(last)}; pass --start-ts the "
            "first_capture_ts that `detector replay --json` printed (or --replay-summary its JSON)"
        ]

    def _object_score(self, o: TruthObject) -> ObjectScore:
        s = self.settings
        category = self._category[o.cls]
        seen = [
            (f, b) for f, b in self.truth.sightings(o.id, s.min_visibility) if _area(b.visible_box) >= s.min_area_px
        ]
        first = seen[0][0].t_s if seen else None
        if first is not None and o.appear_s is not None:
            first = max(first, o.appear_s)
        if category in self._dwell_rule:
            in_zone = [f.t_s for f, b in seen if self._in_zone(b.visible_box or b.box)]
            expected = bool(in_zone) and in_zone[-1] - in_zone[0] >= self.dwell_s + s.dwell_margin_s
        else:
            expected = len({math.floor(f.t_s) for f, _ in seen}) >= max(s.min_seen_s, 1)
        return ObjectScore(o.id, o.cls, category, expected, first)

    def _in_zone(self, box: Box) -> bool:
        if not self._zones:
            return True  # no zones in the truth: the whole view is prohibited
        point = shapely.Point((box[0] + box[2]) / 2, box[3])
        return any(zone.covers(point) for zone in self._zones)

    def _candidates(self, incident: IncidentSeen, objects: dict[int, ObjectScore]) -> dict[int, float]:
        """Object id -> matching cost (metres, or box misfit scaled to metres) for objects this incident can be."""
        s = self.settings
        opened = incident.opened_ts - self.start_ts
        first = incident.first_seen_ts - self.start_ts
        out = {}
        for oid, score in objects.items():
            o = self.truth.object(oid)
            if score.category != incident.category:
                continue
            if (o.leave_s is not None and first > o.leave_s + s.time_slack_s) or (
                o.appear_s is not None and opened < o.appear_s - s.time_slack_s
            ):
                continue
            if incident.location is not None:
                east, north = offset_m(o.lat, o.lon, incident.location.lat, incident.location.lon)
                distance = math.hypot(east, north)
                if distance <= max(s.match_radius_m, 2.0 * incident.location.accuracy_m):
                    out[oid] = distance
                continue
            overlap = self._box_overlap(oid, incident.box, opened)
            if overlap >= s.match_iou:
                out[oid] = (1.0 - overlap) * s.match_radius_m
        return out

    def _box_overlap(self, object_id: int, box: Box, t_s: float) -> float:
        if not self.truth.frames:
            return 0.0
        k = bisect.bisect_left(self._frame_times, t_s)
        nearest = [j for j in (k - 1, k) if 0 <= j < len(self._frame_times)]
        frame = self.truth.frames[min(nearest, key=lambda j: abs(self._frame_times[j] - t_s))]
        for b in frame.objects:
            if b.id == object_id:
                return max(iou(box, b.box), iou(box, b.visible_box) if b.visible_box else 0.0)
        return 0.0

    def _record(self, score: ObjectScore, incident: IncidentSeen, opened_s: float) -> None:
        score.opened_s = opened_s
        if score.first_seen_s is not None:
            dwell = self.dwell_s if score.category in self._dwell_rule else 0.0
            score.time_to_open_s = opened_s - score.first_seen_s - dwell
        if incident.location is not None:
            o = self.truth.object(score.id)
            east, north = offset_m(o.lat, o.lon, incident.location.lat, incident.location.lon)
            score.geo_error_m = math.hypot(east, north)
            score.accuracy_m = incident.location.accuracy_m
