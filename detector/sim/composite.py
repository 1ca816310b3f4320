"""Training composites for the stall classes: YOLO image/label pairs from rendered views.

Implements detector/train's ``SimRenderer`` (see ``detector.train.dataset``): ``render_composites(source,
classes, out)`` writes ``out/images/*.jpg`` and ``out/labels/*.txt`` and returns the labelled images.

Without backgrounds every composite is a rendered street seen from a random pole or drone camera. With
``source.backgrounds`` (folders of real photos, e.g. ../shared/datasets/city-garbage/images/train) only the
objects are rendered, over a photo resized to the composite's size; the photo's own YOLO labels are kept where the
dataset's class names are in the unified list, and dropped where a rendered object covers most of them. The photos
stay where they are (CC BY 4.0: composites made from them carry the attribution written to ATTRIBUTION.txt).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from tqdm import tqdm

from detector.geo.camera import Attitude, Intrinsics, PinholeCamera
from detector.sim import objects
from detector.sim.effects import FrameEffects, Look
from detector.sim.ground import GroundMap
from detector.sim.render import Renderer
from detector.sim.scenery import furnish, make_room, place, traffic
from detector.sim.sprites import SpriteBank
from detector.sim.world import SimObject, Street, World
from detector.train.config import SimSource
from detector.train.dataset import IMAGE_SUFFIXES, LabelledImage, label_path_of, read_yolo_label

YoloBox = tuple[int, float, float, float, float]
IMAGES_PER_WORLD = 8  # composites share a world (and its look) in groups; cameras and traffic differ
MIN_VISIBILITY = 0.25
MIN_SIDE_PX = 6.0


@dataclass(frozen=True)
class Background:
    image: Path
    labels: list[YoloBox]


def _names_of(folder: Path) -> dict[int, str]:
    """Class names from the nearest data.yaml above a folder of images ({} when there is none)."""
    for parent in [folder, *folder.parents][:4]:
        data = parent / "data.yaml"
        if data.is_file():
            names = yaml.safe_load(data.read_text()).get("names", {})
            return dict(names) if isinstance(names, dict) else dict(enumerate(names))
    return {}


def list_backgrounds(
    folders: list[Path], classes: list[str], exclude: frozenset[Path] = frozenset()
) -> list[Background]:
    out = []
    for folder in folders:
        if not folder.is_dir():
            raise ValueError(f"background folder {folder} does not exist")
        class_map = {i: classes.index(n) for i, n in _names_of(folder).items() if n in classes}
        for image in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
            if image.resolve() in exclude:
                continue
            out.append(Background(image, read_yolo_label(label_path_of(image), class_map)))
    if folders and not out:
        raise ValueError(f"no images in the background folders {[str(f) for f in folders]}")
    return out


def _world(rng: np.random.Generator, draw: list[str], with_ground: bool) -> tuple[World, list[SimObject]]:
    street = Street(length_m=60.0, bearing_deg=float(rng.uniform(0, 360)), lanes=int(rng.choice([2, 4])),
                    parking_m=float(rng.choice([0.0, 2.3])), pavement_m=float(rng.uniform(3.0, 6.0)))  # fmt: skip
    world = World(39.9, 116.4, street)
    right_kerb, left_kerb = street.kerbs
    right_line, left_line = street.building_lines
    targets = []
    for s in np.sort(rng.uniform(5.0, 55.0, int(rng.integers(4, 10)))):
        kind = str(rng.choice(draw))
        if kind == "pothole":
            d = float(rng.uniform(right_kerb + 0.5, left_kerb - 0.5))
        else:
            side = float(rng.choice([-1.0, 1.0]))
            kerb, line = (left_kerb, left_line) if side > 0 else (right_kerb, right_line)
            # On the pavement, short of the building line; carts may also stand at the road's edge.
            lo, hi = sorted((kerb - side * (1.0 if kind == "cart" else 0.0), line - side * 0.8))
            d = float(rng.uniform(lo, hi))
        model = objects.BUILDERS[kind](rng)
        targets.append(place(world, model, float(s), d, turn_rad=float(rng.normal(0, 0.15)), label=kind))
    if with_ground:
        bins = furnish(world, rng).bins
        if "garbage_bin" not in draw:  # an unlabelled bin would teach the model that bins are background
            world.objects = [o for o in world.objects if o not in bins]
        make_room(world, targets)
        traffic(world, rng, 0.0, 60.0, vehicles_per_min=10.0, pedestrians_per_min=30.0,
                lane_d={"forward": -street.lane_m / 2, "backward": street.lane_m / 2})  # fmt: skip
    return world, targets


def _camera(rng: np.random.Generator, target: SimObject, size: int) -> PinholeCamera:
    """A pole camera (3-10 m, pitched 15-50 deg down) or a drone (20-70 m, 45-90 deg down) looking near a target.

    Fields of view lean narrow so that targets are large enough to learn from at the 320 px training size; the
    farther, smaller views are the drone-patrol scenario's job to test, not to teach.
    """
    if rng.random() < 0.5:
        height, pitch, hfov = rng.uniform(3.0, 10.0), rng.uniform(-50.0, -15.0), rng.uniform(40.0, 80.0)
    else:
        height, pitch, hfov = rng.uniform(20.0, 70.0), rng.uniform(-90.0, -45.0), rng.uniform(35.0, 70.0)
    yaw = rng.uniform(-180.0, 180.0)
    reach = height / math.tan(math.radians(-pitch)) if pitch > -89.0 else 0.0
    bearing = math.radians(yaw)
    aim = np.array([target.east_m, target.north_m]) + rng.normal(0.0, 0.1 * height, 2)
    east, north = aim - reach * np.array([math.sin(bearing), math.cos(bearing)])
    intrinsics = Intrinsics.from_hfov(float(hfov), size, size)
    return PinholeCamera.from_angles(intrinsics, (east, north, height), Attitude(yaw, float(pitch), rng.normal(0, 2)))


def _kept_background_labels(labels: list[YoloBox], ids: np.ndarray) -> list[YoloBox]:
    """Photo labels not mostly hidden under rendered objects."""
    h, w = ids.shape
    kept = []
    for c, cx, cy, bw, bh in labels:
        x1, x2 = int((cx - bw / 2) * w), math.ceil((cx + bw / 2) * w)
        y1, y2 = int((cy - bh / 2) * h), math.ceil((cy + bh / 2) * h)
        region = ids[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)]
        if region.size and np.count_nonzero(region) / region.size < 0.5:
            kept.append((c, cx, cy, bw, bh))
    return kept


def render_composites(
    source: SimSource,
    classes: list[str],
    out: Path,
    exclude: frozenset[Path] = frozenset(),
    progress: bool = True,
) -> list[LabelledImage]:
    """Render ``source.images`` composites of ``source.classes`` into ``out``; labels use ``classes`` ids.

    ``exclude``: background photos never to use (the validation images of the real sources, so that no
    validation photo is trained on under rendered objects).
    """
    unknown = sorted(set(source.classes) - set(objects.LABELLED))
    if unknown:
        raise ValueError(f"the simulator cannot draw {unknown}; it draws {list(objects.LABELLED)}")
    missing = sorted(set(source.classes) - set(classes))
    if missing:
        raise ValueError(f"classes {missing} of source {source.name!r} are not in the unified class list {classes}")
    backgrounds = list_backgrounds(source.backgrounds, classes, exclude)
    bank = SpriteBank(source.sprites, "train").without(exclude) if source.sprites is not None else None
    for sub in ("images", "labels"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    if backgrounds:
        sources = sorted({str(f) for f in source.backgrounds})
        (out / "ATTRIBUTION.txt").write_text(
            "Backgrounds from these folders (see each dataset's SOURCE.md; CC BY 4.0 requires attribution):\n"
            + "".join(f"- {s}\n" for s in sources)
        )
    size = source.imgsz
    results: list[LabelledImage] = []
    renderer: Renderer | None = None
    effects: FrameEffects | None = None
    targets: list[SimObject] = []
    for i in tqdm(range(source.images), desc=f"composites {source.name}", unit="img", disable=not progress):
        rng = np.random.default_rng([source.seed, i])
        if i % IMAGES_PER_WORLD == 0 or renderer is None or effects is None:
            world_rng = np.random.default_rng([source.seed, i // IMAGES_PER_WORLD, 1])
            world, targets = _world(world_rng, list(source.classes), with_ground=not backgrounds)
            look = Look.random(world_rng)
            textures = bank.textures if bank is not None else None
            ground = (
                None if backgrounds else GroundMap.paint(world.street, look, world_rng, res_m=0.06, textures=textures)
            )
            renderer = Renderer(world, ground, look, labelled_only=bool(backgrounds), sprites=bank)
            effects = FrameEffects(look, size, size, source.seed + i)
        camera = _camera(rng, targets[int(rng.integers(len(targets)))], size)
        photo = None
        carried: list[YoloBox] = []
        if backgrounds:
            pick = backgrounds[int(rng.integers(len(backgrounds)))]
            raw = cv2.imread(str(pick.image), cv2.IMREAD_COLOR)
            if raw is None:
                raise ValueError(f"cannot read background image {pick.image}")
            photo = np.asarray(cv2.resize(raw, (size, size), interpolation=cv2.INTER_AREA), np.uint8)
            carried = pick.labels
        view = renderer.render(camera, float(rng.uniform(0.0, 60.0)), background=photo)
        image = effects.apply(view.image, i)
        label_of = {o.id: o.label for o in renderer.world.objects}
        boxes: list[YoloBox] = _kept_background_labels(carried, view.ids)
        for b in view.boxes:
            x1, y1, x2, y2 = b.visible_box
            if b.visibility >= MIN_VISIBILITY and min(x2 - x1, y2 - y1) >= MIN_SIDE_PX:
                cls = classes.index(str(label_of[b.object_id]))
                boxes.append((cls, (x1 + x2) / 2 / size, (y1 + y2) / 2 / size, (x2 - x1) / size, (y2 - y1) / size))
        stem = f"{source.name}_{i:06d}"
        path = out / "images" / f"{stem}.jpg"
        cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        (out / "labels" / f"{stem}.txt").write_text("".join(f"{c} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n"
                                                            for c, x, y, w, h in boxes))  # fmt: skip
        results.append(LabelledImage(path, boxes))
    return results
