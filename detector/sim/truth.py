"""Ground truth of a rendered scenario, as JSON.

Layout (times are scenario seconds: 0 is the first frame, whose capture time is ``start_ts``)::

    {"scenario": "market-street", "seed": 0, "source_id": "market-street", "camera": "fixed",
     "width": 1280, "height": 720, "fps": 2.0, "duration_s": 600.0, "start_ts": 1748914200.0, "dwell_s": 120.0,
     "anchor": {"lat": .., "lon": ..}, "files": {"video": "video.mp4", "srt": null},
     "calibration": {"control_points": [{"x_px": .., "y_px": .., "lat": .., "lon": ..}]},
     "zones": [{"id": "no-vending", "polygon_px": [[x, y], ..], "prohibited_classes": ["stall", "cart", "goods"]}],
     "script": ["..."],
     "objects": [{"id": 7, "class": "stall", "kind": "stall", "lat": .., "lon": .., "east_m": .., "north_m": ..,
                  "bearing_deg": .., "length_m": .., "width_m": .., "height_m": ..,
                  "appear_s": 18.0, "leave_s": 218.0}],       # null: there before the start / still there at the end
     "frames": [{"index": 0, "t_s": 0.0, "pose": {..} | null, "telemetry": {..} | null,
                 "objects": [{"id": 7, "box": [x1, y1, x2, y2], "visible_box": [..] | null, "visibility": 0.93,
                              "truncated": false}],
                 "distractors": [{"id": 412, "class": "car", "kind": "van", "box": [..], "visible_box": [..],
                                  "visibility": 0.71, "truncated": false}]}]}

``box`` bounds the whole object inside the image as if unoccluded; ``visible_box`` what is actually seen. A drone
frame's ``pose`` is the true camera pose (ENU metres around the anchor, DJI angles); ``telemetry`` is what the
.SRT says for that frame, errors included.

``distractors`` are the unlabelled things in the frame that a COCO detector has a class for (cars and vans as
``car``, trucks as ``truck``, pedestrians and vendors as ``person``; see ``detector.sim.objects.COCO_CLASSES``),
measured on the same id buffer as the violations. They are not violations: the scorer and export ignore them;
``detector sim realism`` uses them. Files written before they existed have none (an empty tuple).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class TruthObject:
    id: int
    cls: str
    kind: str
    lat: float
    lon: float
    east_m: float
    north_m: float
    bearing_deg: float
    length_m: float
    width_m: float
    height_m: float
    appear_s: float | None  # None: there before the footage starts
    leave_s: float | None  # None: still there when it ends

    def present(self, t_s: float) -> bool:
        return (self.appear_s is None or self.appear_s <= t_s) and (self.leave_s is None or t_s < self.leave_s)


@dataclass(frozen=True)
class TruthBox:
    id: int
    box: Box
    visible_box: Box | None
    visibility: float
    truncated: bool


@dataclass(frozen=True)
class DistractorBox:
    """An unlabelled object in one frame with the COCO class a real detector would give it."""

    id: int
    cls: str  # COCO class name: car, truck, person
    kind: str  # the simulator's model kind: car, van, truck, pedestrian
    box: Box
    visible_box: Box | None
    visibility: float
    truncated: bool


@dataclass(frozen=True)
class TruthFrame:
    index: int
    t_s: float
    objects: tuple[TruthBox, ...]
    pose: dict[str, float] | None = None
    telemetry: dict[str, float | None] | None = None
    distractors: tuple[DistractorBox, ...] = ()


@dataclass
class Truth:
    scenario: str
    seed: int
    source_id: str
    camera: str  # "fixed" or "moving"
    width: int
    height: int
    fps: float
    duration_s: float
    start_ts: float
    dwell_s: float
    anchor_lat: float
    anchor_lon: float
    objects: list[TruthObject] = field(default_factory=list)
    frames: list[TruthFrame] = field(default_factory=list)
    control_points: list[dict[str, float]] = field(default_factory=list)
    zones: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, str | None] = field(default_factory=dict)
    script: list[str] = field(default_factory=list)

    def object(self, object_id: int) -> TruthObject:
        for o in self.objects:
            if o.id == object_id:
                return o
        raise KeyError(f"no object {object_id} in the truth of {self.scenario}")

    def sightings(self, object_id: int, min_visibility: float = 0.0) -> list[tuple[TruthFrame, TruthBox]]:
        """The frames in which an object is seen at least ``min_visibility``, in time order."""
        return [(f, b) for f in self.frames for b in f.objects if b.id == object_id and b.visibility >= min_visibility]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "seed": self.seed,
            "source_id": self.source_id,
            "camera": self.camera,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "duration_s": self.duration_s,
            "start_ts": self.start_ts,
            "dwell_s": self.dwell_s,
            "anchor": {"lat": self.anchor_lat, "lon": self.anchor_lon},
            "files": self.files,
            "calibration": {"control_points": self.control_points},
            "zones": self.zones,
            "script": self.script,
            "objects": [_object_dict(o) for o in self.objects],
            "frames": [_frame_dict(f) for f in self.frames],
        }

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Truth:
        objects = [TruthObject(**{("cls" if k == "class" else k): v for k, v in o.items()}) for o in data["objects"]]
        frames = [
            TruthFrame(
                index=int(f["index"]),
                t_s=float(f["t_s"]),
                objects=tuple(
                    TruthBox(
                        int(b["id"]),
                        _box(b["box"]),
                        _box(b["visible_box"]) if b.get("visible_box") else None,
                        float(b["visibility"]),
                        bool(b.get("truncated", False)),
                    )
                    for b in f["objects"]
                ),
                pose=f.get("pose"),
                telemetry=f.get("telemetry"),
                distractors=tuple(
                    DistractorBox(
                        int(d["id"]),
                        str(d["class"]),
                        str(d.get("kind", d["class"])),
                        _box(d["box"]),
                        _box(d["visible_box"]) if d.get("visible_box") else None,
                        float(d["visibility"]),
                        bool(d.get("truncated", False)),
                    )
                    for d in f.get("distractors", [])
                ),
            )
            for f in data["frames"]
        ]
        return cls(
            scenario=data["scenario"],
            seed=int(data["seed"]),
            source_id=data["source_id"],
            camera=data["camera"],
            width=int(data["width"]),
            height=int(data["height"]),
            fps=float(data["fps"]),
            duration_s=float(data["duration_s"]),
            start_ts=float(data["start_ts"]),
            dwell_s=float(data["dwell_s"]),
            anchor_lat=float(data["anchor"]["lat"]),
            anchor_lon=float(data["anchor"]["lon"]),
            objects=objects,
            frames=frames,
            control_points=list(data.get("calibration", {}).get("control_points", [])),
            zones=list(data.get("zones", [])),
            files=dict(data.get("files", {})),
            script=list(data.get("script", [])),
        )

    @classmethod
    def load(cls, path: Path) -> Truth:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read ground truth {path}: {exc}") from exc
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path} is not a simulator ground-truth file: {exc!r}") from exc


def _box(values: Any) -> Box:
    x1, y1, x2, y2 = (float(v) for v in values)
    return x1, y1, x2, y2


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _object_dict(o: TruthObject) -> dict[str, Any]:
    data = asdict(o)
    data["class"] = data.pop("cls")
    return {"id": data.pop("id"), "class": data.pop("class"), **data}


def _frame_dict(f: TruthFrame) -> dict[str, Any]:
    return {
        "index": f.index,
        "t_s": round(f.t_s, 4),
        "pose": f.pose,
        "telemetry": f.telemetry,
        "objects": [_seen_dict(b) for b in f.objects],
        "distractors": [{"id": d.id, "class": d.cls, "kind": d.kind, **_seen_dict(d)} for d in f.distractors],
    }


def _seen_dict(b: TruthBox | DistractorBox) -> dict[str, Any]:
    """Where an object is seen in one frame: its box, visible box, visibility and whether the frame cuts it."""
    return {
        **({"id": b.id} if isinstance(b, TruthBox) else {}),
        "box": [round(v, 1) for v in b.box],
        "visible_box": [round(v, 1) for v in b.visible_box] if b.visible_box else None,
        "visibility": round(b.visibility, 3),
        "truncated": b.truncated,
    }


def span_s(appear_s: float, leave_s: float) -> tuple[float | None, float | None]:
    """An object's life as written to the truth: infinite ends become None."""
    return _finite_or_none(appear_s), _finite_or_none(leave_s)
