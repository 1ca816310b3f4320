"""Render a named scenario to a folder: video.mp4, truth.json, flight.srt (drones), preview.jpg and service.yaml
(the service settings for its source: zones and calibration, or the drone's camera profile).

Example::

    summary = render_scenario("market-street", Path("out/market"), seed=3, minutes=4, fps=1)
    print(summary.text())
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import shapely
from tqdm import tqdm

from detector.geo.camera import PinholeCamera
from detector.geo.srt import SrtCue, write_srt
from detector.sim.effects import FrameEffects
from detector.sim.objects import COCO_CLASSES
from detector.sim.render import ObjectBox, Renderer, clip_near
from detector.sim.scenarios import SCENARIOS, Plan
from detector.sim.service_config import service_document, write_service_yaml
from detector.sim.sprites import SpriteBank
from detector.sim.truth import DistractorBox, Truth, TruthBox, TruthFrame, TruthObject, span_s
from detector.sim.video import Mp4Writer
from detector.sim.views import FlightSettings, telemetry_cues
from detector.types import ImageArray

ZONE_CLASSES = ["stall", "cart", "goods"]
_CUE_FIELDS = ("lat", "lon", "rel_alt_m", "gimbal_yaw_deg", "gimbal_pitch_deg", "aircraft_yaw_deg")


@dataclass
class RenderSummary:
    scenario: str
    out_dir: Path
    frames: int
    duration_s: float
    fps: float
    width: int
    height: int
    wall_s: float
    objects: dict[str, int]
    boxes: int
    files: list[str] = field(default_factory=list)
    script: list[str] = field(default_factory=list)

    def text(self) -> str:
        objects = ", ".join(f"{k} {v}" for k, v in sorted(self.objects.items()))
        speed = self.frames / self.wall_s if self.wall_s > 0 else 0.0
        lines = [
            f"{self.scenario}: {self.frames} frames ({self.duration_s:.0f} s at {self.fps:g} fps, "
            f"{self.width}x{self.height}) rendered in {self.wall_s:.1f} s ({speed:.1f} frames/s, "
            f"{self.duration_s / max(self.wall_s, 1e-9):.1f}x real time)",
            f"  labelled objects: {objects}; {self.boxes} boxes in all frames",
            *(f"  script: {line}" for line in self.script),
            *(f"  wrote {self.out_dir / name}" for name in self.files),
        ]
        return "\n".join(lines)


def _truth_objects(plan: Plan) -> list[TruthObject]:
    out = []
    for o in plan.world.objects:
        if o.label is None:
            continue
        lat, lon = plan.world.to_geo(o.east_m, o.north_m)
        appear, leave = span_s(o.appear_s, o.leave_s)
        bearing = (90.0 - np.degrees(o.angle_rad)) % 360.0
        m = o.model
        out.append(TruthObject(o.id, o.label, m.kind, lat, lon, round(o.east_m, 3), round(o.north_m, 3),
                               round(float(bearing), 2), round(2 * m.half_length_m, 2), round(2 * m.half_width_m, 2),
                               round(m.height_m, 2), appear, leave))  # fmt: skip
    return out


def _calibration(plan: Plan, camera: PinholeCamera) -> list[dict[str, float]]:
    """Control points: surveyed ground features (crossing corners, kerb points, tree pits) and their pixels."""
    w, h = camera.intrinsics.width_px, camera.intrinsics.height_px
    points = []
    for e, n in plan.control_points_en:
        pixels, in_front = camera.project([(e, n, 0.0)])
        u, v = pixels[0]
        if in_front[0] and 2 <= u <= w - 2 and 2 <= v <= h - 2:
            lat, lon = plan.world.to_geo(e, n)
            points.append({"x_px": round(float(u), 2), "y_px": round(float(v), 2), "lat": lat, "lon": lon})
    return points


def _zones(plan: Plan, camera: PinholeCamera) -> list[dict[str, object]]:
    """The no-vending ground polygon as the camera sees it, for the service's pixel zones."""
    if not plan.zone_en:
        return []
    ground = np.array([(e, n, 0.0) for e, n in plan.zone_en])
    clipped = clip_near(ground, (ground - camera.position_enu_m) @ camera.rotation[:, 2])
    pixels, _ = camera.project(clipped)
    w, h = camera.intrinsics.width_px, camera.intrinsics.height_px
    seen = shapely.Polygon(pixels).intersection(shapely.box(0, 0, w, h))
    if not isinstance(seen, shapely.Polygon) or seen.is_empty:
        return []
    polygon = [[round(x, 1), round(y, 1)] for x, y in list(seen.exterior.coords)[:-1]]
    return [{"id": "no-vending", "polygon_px": polygon, "prohibited_classes": ZONE_CLASSES}]


def _write_service_yaml(plan: Plan, truth: Truth, path: Path, imgsz: int | None) -> None:
    """The rules a city would configure for this source, loadable with ``detector serve --config``."""
    profile = None
    if plan.flight is not None:
        profile = plan.flight.settings.profile().model_dump(mode="json", exclude_defaults=True)
        if imgsz is None:
            from detector.inference.engine import ModelSettings, resolve_imgsz

            imgsz = resolve_imgsz(ModelSettings())
    described = {**truth.to_dict(), "frames": [], "objects": []}
    document = service_document([described], imgsz, camera_profile=profile)
    if plan.flight is not None:
        what = "a drone: camera: moving, its camera profile, and tiles of its frames sized for model.imgsz " + str(
            imgsz
        )
    else:
        what = (
            f"a pole camera: the no-vending zone over road and pavements as the camera sees it, dwell "
            f"{truth.dwell_s:g} s, and the ground calibration (ground points of the scenario and their pixels)"
        )
    header = (
        f"Service settings for the {plan.name} scenario's source {truth.source_id!r}, written by `detector sim "
        f"render`:\n{what}.\n\n  detector serve --config {path.name}\n  detector replay video.mp4 --source-id "
        f"{truth.source_id}{' --srt flight.srt' if plan.flight is not None else ''} --json   (note first_capture_ts)\n"
        "  detector sim score --truth truth.json --events events.jsonl --start-ts <first_capture_ts>"
    )
    write_service_yaml(path, document, header)


def _cue_dict(cue: SrtCue) -> dict[str, float | None]:
    return {name: getattr(cue, name) for name in _CUE_FIELDS}


def draw_boxes(image: ImageArray, boxes: list[TruthBox], classes: dict[int, str]) -> ImageArray:
    """A copy of the frame with ground-truth boxes: whole box thin, visible box thick, class and visibility."""
    out = image.copy()
    for b in boxes:
        x1, y1, x2, y2 = (round(v) for v in b.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (255, 255, 0), 1)
        if b.visible_box is not None:
            v1, w1, v2, w2 = (round(v) for v in b.visible_box)
            cv2.rectangle(out, (v1, w1), (v2, w2), (0, 255, 255), 2)
        label = f"{classes[b.id]} {b.visibility:.2f}"
        cv2.putText(out, label, (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1, cv2.LINE_AA)
    return out


def _truth_boxes(boxes: list[ObjectBox]) -> tuple[TruthBox, ...]:
    return tuple(TruthBox(b.object_id, b.box, b.visible_box, b.visibility, b.truncated) for b in boxes)


def _distractor_boxes(boxes: list[ObjectBox], kinds: dict[int, str]) -> tuple[DistractorBox, ...]:
    return tuple(
        DistractorBox(b.object_id, COCO_CLASSES[kinds[b.object_id]], kinds[b.object_id], b.box, b.visible_box,
                      b.visibility, b.truncated)
        for b in boxes
    )  # fmt: skip


def render_scenario(
    name: str,
    out_dir: Path,
    *,
    seed: int = 0,
    minutes: float | None = None,
    fps: float | None = None,
    width: int = 1280,
    height: int = 720,
    flight: FlightSettings | None = None,
    video: bool = True,
    progress: bool = True,
    service_imgsz: int | None = None,
    sprites: SpriteBank | None = None,
    max_frames: int | None = None,
    textures: bool = True,
) -> RenderSummary:
    """Render ``name`` into ``out_dir``; raises ValueError for an unknown scenario or impossible settings.

    ``service_imgsz``: the model input the service.yaml's drone tiles are sized for (default: the committed
    checkpoint's training size, what the service runs at by default). ``sprites``: photo cut-outs for people and
    vehicles (detector/sim/sprites.py); without a bank they are drawn as meshes. ``textures``: the road,
    pavements and roofs made of the bank's photo textures (detector/sim/textures.py) when it has them."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    plan = SCENARIOS[name](seed, minutes, flight)
    rate = fps or plan.fps
    if not 0.1 <= rate <= 60.0:
        raise ValueError(f"fps must be within 0.1..60, got {rate}")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    times = np.arange(int(plan.duration_s * rate))[:max_frames] / rate  # max_frames: the first frames only
    ground = plan.ground
    if ground is not None and textures and sprites is not None and sprites.textures.textures:
        ground = ground.textured(sprites.textures)
    renderer = Renderer(plan.world, ground, plan.look, static_camera=plan.pole is not None, distractors=True,
                        sprites=sprites, roofs=textures)  # fmt: skip
    kinds = {o.id: o.model.kind for o in plan.world.objects if o.label is None and o.model.kind in COCO_CLASSES}
    effects = FrameEffects(plan.look, width, height, seed)
    truth = Truth(plan.name, seed, plan.name, plan.camera, width, height, rate, float(len(times) / rate),
                  plan.start_ts, plan.dwell_s, plan.world.anchor_lat, plan.world.anchor_lon,
                  objects=_truth_objects(plan), script=plan.script)  # fmt: skip
    classes = {o.id: o.cls for o in truth.objects}
    files = ["truth.json", "preview.jpg", "service.yaml"]
    cues: list[SrtCue] = []
    if plan.flight is not None:
        cues = telemetry_cues(plan.flight, plan.world, times, 1.0 / rate, plan.start_local, seed)
        write_srt(cues, out_dir / "flight.srt")
        files.insert(0, "flight.srt")
        truth.files["srt"] = "flight.srt"
    else:
        assert plan.pole is not None  # every scenario has a pole camera or a flight
        camera = plan.pole.camera(width, height)
        truth.control_points = _calibration(plan, camera)
        truth.zones = _zones(plan, camera)
    writer = Mp4Writer(out_dir / "video.mp4", width, height, rate) if video else None
    if writer is not None:
        files.insert(0, "video.mp4")
        truth.files["video"] = "video.mp4"
    best: tuple[int, ImageArray, tuple[TruthBox, ...]] | None = None
    try:
        for i, t in enumerate(tqdm(times, desc=name, unit="frame", disable=not progress)):
            pose = None
            if plan.flight is not None:
                drone = plan.flight.pose(float(t))
                camera = plan.flight.camera(drone, width, height)
                lat, lon = plan.world.to_geo(drone.east_m, drone.north_m)
                pose = {"east_m": drone.east_m, "north_m": drone.north_m, "altitude_m": drone.altitude_m,
                        "lat": lat, "lon": lon, "yaw_deg": drone.yaw_deg,
                        "gimbal_pitch_deg": drone.gimbal_pitch_deg}  # fmt: skip
            view = renderer.render(camera, float(t))
            image = effects.apply(view.image, i)
            if writer is not None:
                writer.write(image)
            boxes = _truth_boxes(view.boxes)
            telemetry = _cue_dict(cues[i]) if cues else None
            others = _distractor_boxes(view.distractors, kinds)
            truth.frames.append(TruthFrame(i, float(t), boxes, pose, telemetry, others))
            if best is None or len(boxes) > len(best[2]):
                best = (i, image, boxes)
    finally:
        if writer is not None:
            writer.close()
    truth.save(out_dir / "truth.json")
    _write_service_yaml(plan, truth, out_dir / "service.yaml", service_imgsz)
    if best is not None:
        cv2.imwrite(str(out_dir / "preview.jpg"), draw_boxes(best[1], list(best[2]), classes))
    return RenderSummary(
        scenario=name,
        out_dir=out_dir,
        frames=len(times),
        duration_s=float(len(times) / rate),
        fps=rate,
        width=width,
        height=height,
        wall_s=time.perf_counter() - started,
        objects=dict(Counter(o.cls for o in truth.objects)),
        boxes=sum(len(f.objects) for f in truth.frames),
        files=files,
        script=plan.script,
    )
