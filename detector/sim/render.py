"""Draw a world through a detector/geo camera, in painter's order, and measure every labelled object in the frame.

Order: ground (or a background photo), ground decals, shadows, then standing objects far to near (by the ground
distance from the camera to their footprint), and within an object its meshes bottom up. Every face is drawn
twice: in colour, and as its object's id into an id buffer. The id buffer is what the ground truth is measured
on, so a box and a visibility always describe the pixels that were drawn, occlusions included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt

from detector.geo.camera import PinholeCamera
from detector.sim.effects import Look
from detector.sim.ground import GroundMap, ground_homography
from detector.sim.objects import COCO_CLASSES
from detector.sim.sprites import SpriteBank
from detector.sim.world import PlacedObject, World
from detector.types import ImageArray

Float64Array = npt.NDArray[np.float64]
IdArray = npt.NDArray[np.uint16]
Box = tuple[float, float, float, float]

# Bump when the same world, seed and sprite bank would draw different pixels (cached renders then rebuild):
# 2 = roofs without a mirrored seam across them.
RENDER_VERSION = 2
NEAR_M = 0.5  # faces are clipped this far in front of the camera
FAR_M = 600.0
_SHIFT = 4  # sub-pixel bits for cv2.fillPoly
_ONE = 1 << _SHIFT
# Seen from higher than this above its horizon, an object gets a nadir cut-out (a mesh where the bank has none:
# people, and most vehicles, as COCO finds few of them in the aerial tiles); below it, a street-level cut-out, as an
# oblique drone view (gimbal -60 deg) still shows the sides of people and vehicles.
# A stall's nadir cut-out (its canopy from above) is drawn from 50 deg up; garbage and bins only stand (their photos
# are street level, mostly looking down on them), and a pothole is always laid flat on the road.
AERIAL_ELEVATION_DEG = {"person": 75.0, "car": 70.0, "truck": 70.0, "stall": 50.0}
# The sprite class drawn for an object kind where the bank has one: people and vehicles (unlabelled distractors),
# and the labelled objects cut out of the photos by their labels (detector/sim/photo_objects.py).
SPRITE_CLASS = {**COCO_CLASSES, **{k: k for k in ("garbage", "garbage_bin", "overflow", "pothole", "stall")}}
SPRITE_LIGHT = 0.95  # the scene ground light at which a photo cut-out is drawn as photographed


@dataclass(frozen=True)
class ObjectBox:
    """Where a labelled object is in one frame.

    Only objects with at least one visible pixel get one. ``box`` bounds all of the object's pixels inside the image
    as if nothing stood in front of it; ``visible_box`` bounds the pixels that are actually seen; ``visibility`` is
    seen / all (occlusion only: the part outside the image counts in neither), and ``truncated`` says the object
    reaches past the image border.
    """

    object_id: int
    box: Box
    visible_box: Box
    visibility: float
    truncated: bool


@dataclass
class View:
    image: ImageArray
    ids: IdArray  # object id per pixel, 0 where only ground or sky was drawn
    boxes: list[ObjectBox]
    distractors: list[ObjectBox] = field(default_factory=list)  # unlabelled objects with a COCO class, if asked


@dataclass
class _Projected:
    obj: PlacedObject
    pixels: Float64Array  # V x 2
    depth: Float64Array  # V, along the optical axis


def _bounds(mask: npt.NDArray[np.bool_]) -> tuple[int, int, int, int] | None:
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    if len(cols) == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def clip_near(points: Float64Array, depth: Float64Array) -> Float64Array:
    """The part of a world polygon at least NEAR_M in front of the camera (Sutherland-Hodgman, one plane)."""
    out = []
    n = len(points)
    for i in range(n):
        a, b, da, db = points[i], points[(i + 1) % n], depth[i], depth[(i + 1) % n]
        if da >= NEAR_M:
            out.append(a)
        if (da >= NEAR_M) != (db >= NEAR_M):
            out.append(a + (b - a) * (NEAR_M - da) / (db - da))
    return np.asarray(out, np.float64).reshape(-1, 3)


class Renderer:
    """Renders one world with one look. ``static_camera``: the ground view is drawn once and reused."""

    def __init__(
        self,
        world: World,
        ground: GroundMap | None,
        look: Look,
        *,
        shadows: bool = True,
        static_camera: bool = False,
        labelled_only: bool = False,
        distractors: bool = False,
        sprites: SpriteBank | None = None,
        roofs: bool = True,
    ) -> None:
        self.world = world
        self.ground = ground
        self.look = look
        self.shadows = shadows
        self.static_camera = static_camera
        self.labelled_only = labelled_only  # composites over photos draw only the objects they label
        self.distractors = distractors  # also measure unlabelled cars, trucks and people (reads the id buffer only)
        self.sprites = sprites  # photo cut-outs drawn for people and vehicles instead of their meshes
        # buildings' flat tops in roof tiles from the bank's photos (what a drone sees most of), where it has them
        self.roofs = sprites.textures if roofs and sprites is not None and sprites.textures.has("roof") else None
        self._roof_cache: dict[int, ImageArray | None] = {}  # None: a building left with its concrete top
        self._ground_cache: ImageArray | None = None

    def render(self, camera: PinholeCamera, t_s: float, background: ImageArray | None = None) -> View:
        w, h = camera.intrinsics.width_px, camera.intrinsics.height_px
        image = self._base(camera, background)
        ids = np.zeros((h, w), np.uint16)
        live = [o for o in self.world.objects if o.exists(t_s) and (o.label is not None or not self.labelled_only)]
        if live:  # cull on bounding spheres before placing the faces of moving objects
            spheres = np.array([o.bounds(t_s) for o in live])
            live = [o for o, keep in zip(live, _in_view(camera, spheres[:, :3], spheres[:, 3]), strict=True) if keep]
        placed = [o.placed(t_s) for o in live]
        projected = [self._project(camera, p) for p in placed]
        drawn: dict[int, list[npt.NDArray[np.int32]]] = {p.obj.object_id: [] for p in projected}
        kinds = {o.id: o.model.kind for o in live}
        # Objects drawn as photo cut-outs: their class and view. Their decals (a stain under a pile) are not drawn;
        # a cut-out laid flat on the road (a pothole) goes down with the decals, under everything standing.
        sprite: dict[int, tuple[str, str]] = {}
        for p in projected if self.sprites is not None else []:
            cls = SPRITE_CLASS.get(kinds[p.obj.object_id])
            view = self._sprite_view(camera, p, cls) if cls is not None else None
            if cls is not None and view is not None:
                sprite[p.obj.object_id] = (cls, view)
        for p in projected:
            cut = sprite.get(p.obj.object_id)
            if cut is None:
                self._draw(camera, p, image, ids, drawn, decals=True)
            elif cut[1] == "ground" and not self._draw_sprite(camera, p, *cut, image, ids, drawn):
                del sprite[p.obj.object_id]
                self._draw(camera, p, image, ids, drawn, decals=True)
        if self.shadows:
            self._shadows(camera, [p.obj for p in projected], image)
        cam_e, cam_n = float(camera.position_enu_m[0]), float(camera.position_enu_m[1])
        for p in sorted(projected, key=lambda q: -q.obj.ground_distance_m(cam_e, cam_n)):
            cut = sprite.get(p.obj.object_id)
            if cut is not None and (cut[1] == "ground" or self._draw_sprite(camera, p, *cut, image, ids, drawn)):
                continue
            self._draw(camera, p, image, ids, drawn, decals=False)
            if kinds[p.obj.object_id] == "building" and self.roofs is not None:
                self._roof(camera, p, image)
        labels = {o.id for o in self.world.objects if o.label is not None}
        boxes = [b for oid, polys in drawn.items() if oid in labels and (b := _measure(oid, polys, ids)) is not None]
        others: list[ObjectBox] = []
        if self.distractors:
            coco = {o.id for o in live if o.label is None and o.model.kind in COCO_CLASSES}
            others = [b for oid, polys in drawn.items() if oid in coco and (b := _measure(oid, polys, ids)) is not None]
        return View(image, ids, boxes, others)

    def _base(self, camera: PinholeCamera, background: ImageArray | None) -> ImageArray:
        w, h = camera.intrinsics.width_px, camera.intrinsics.height_px
        if background is not None:
            return np.ascontiguousarray(background, np.uint8).copy()
        if self.ground is None:
            return np.full((h, w, 3), self.look.sky, np.uint8)
        if self.static_camera and self._ground_cache is not None:
            return self._ground_cache.copy()
        image, _ = self.ground.view(camera, self.look.sky)
        if self.static_camera:
            self._ground_cache = image.copy()
        return image

    def _project(self, camera: PinholeCamera, obj: PlacedObject) -> _Projected:
        pixels, _ = camera.project(obj.vertices)
        depth = (obj.vertices - camera.position_enu_m) @ camera.rotation[:, 2]
        return _Projected(obj, pixels, depth)

    def _draw(
        self,
        camera: PinholeCamera,
        p: _Projected,
        image: ImageArray,
        ids: IdArray,
        drawn: dict[int, list[npt.NDArray[np.int32]]],
        *,
        decals: bool,
    ) -> None:
        obj = p.obj
        selected = obj.decal if decals else ~obj.decal
        if not selected.any():
            return
        to_camera = camera.position_enu_m - obj.centroids
        facing = np.sum(obj.normals * to_camera, axis=1)
        keep = selected & (obj.two_sided | (facing > 0.0))
        normals = np.where((facing < 0.0)[:, None] & obj.two_sided[:, None], -obj.normals, obj.normals)
        colours = np.clip(obj.colours * self.look.shade(normals)[:, None], 0, 255)
        face_depth = (obj.centroids - camera.position_enu_m) @ camera.rotation[:, 2]
        order = np.lexsort((-face_depth, obj.part_base_z[obj.part]))
        fixed = np.round(np.nan_to_num(p.pixels) * _ONE).astype(np.int32)  # all at once: the loop is per face
        any_near = bool((p.depth < NEAR_M).any())
        colour_list = colours.tolist()
        polys = drawn[obj.object_id]
        for f in order[keep[order]].tolist():
            face = obj.faces[f]
            if any_near and p.depth[face].min() < NEAR_M:
                clipped = clip_near(obj.vertices[face], p.depth[face])
                if len(clipped) < 3:
                    continue
                pts = np.round(camera.project(clipped)[0] * _ONE).astype(np.int32)
            else:
                pts = fixed[face]
            cv2.fillPoly(image, [pts], colour_list[f], cv2.LINE_AA, _SHIFT)
            cv2.fillPoly(ids, [pts], obj.object_id, cv2.LINE_8, _SHIFT)
            polys.append(pts)

    def _roof(self, camera: PinholeCamera, p: _Projected, image: ImageArray) -> None:
        """Lay the roof-tile texture over a building's flat top (its first mesh's upward face), warped through
        the face's four projected corners and lit as the ground is; the id buffer keeps the face drawn."""
        obj = p.obj
        assert self.roofs is not None
        tops = [f for f in np.flatnonzero((obj.part == 0) & (obj.normals[:, 2] > 0.99)).tolist()
                if len(obj.faces[f]) == 4]  # fmt: skip
        if not tops:
            return
        face = obj.faces[tops[0]]
        if float(camera.position_enu_m[2]) <= float(obj.centroids[tops[0], 2]) or (p.depth[face] < NEAR_M).any():
            return  # seen from below, or too near to warp
        if obj.object_id not in self._roof_cache:
            own = np.random.default_rng([obj.object_id, 17])
            tiles = None
            if own.random() >= 0.3:  # else a flat concrete roof: the mesh's own grey top stays
                corners, res = obj.vertices[face], 0.1
                size = (max(4, round(float(np.linalg.norm(corners[2] - corners[1])) / res)),
                        max(4, round(float(np.linalg.norm(corners[1] - corners[0])) / res)))  # fmt: skip
                tiles = np.clip(self.roofs.surface("roof", size, res, own), 0, 255).astype(np.uint8)
            self._roof_cache[obj.object_id] = tiles
        texture = self._roof_cache[obj.object_id]
        if texture is None:
            return
        h, w = image.shape[:2]
        quad = np.asarray(p.pixels[face], np.float64)
        x0, y0 = (max(math.floor(v), 0) for v in quad.min(axis=0))
        x1, y1 = min(math.ceil(quad[:, 0].max()) + 1, w), min(math.ceil(quad[:, 1].max()) + 1, h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return
        th, tw = texture.shape[:2]
        source = np.array([[0, 0], [tw, 0], [tw, th], [0, th]], np.float32)
        homography = cv2.getPerspectiveTransform(source, (quad - (x0, y0)).astype(np.float32))
        warped = cv2.warpPerspective(texture, homography, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [np.round((quad - (x0, y0)) * _ONE).astype(np.int32)], 255, cv2.LINE_8, _SHIFT)
        lit = np.clip(warped.astype(np.float32) * self.look.ground_light, 0, 255).astype(np.uint8)
        region = image[y0:y1, x0:x1]
        region[mask > 0] = lit[mask > 0]

    def _sprite_view(self, camera: PinholeCamera, p: _Projected, cls: str) -> str | None:
        """How an object of sprite class ``cls`` is seen (street, aerial or, for a pothole, ground), or None when
        the bank has no cut-out for that view or the object is too near the camera for one."""
        bank = self.sprites
        if bank is None or bool((p.depth < NEAR_M).any()):
            return None
        if cls == "pothole":
            view = "ground"
        else:
            obj = p.obj
            top = float(obj.part_top_z.max())
            to_camera = camera.position_enu_m - np.array([obj.footprint[0], obj.footprint[1], top / 2])
            elevation = math.degrees(math.atan2(float(to_camera[2]), float(np.hypot(to_camera[0], to_camera[1]))))
            view = "aerial" if elevation > AERIAL_ELEVATION_DEG.get(cls, 90.0) else "street"
        return view if bank.has(cls, view) else None

    def _draw_sprite(
        self,
        camera: PinholeCamera,
        p: _Projected,
        cls: str,
        view: str,
        image: ImageArray,
        ids: IdArray,
        drawn: dict[int, list[npt.NDArray[np.int32]]],
    ) -> bool:
        """Draw an object as a photo cut-out of ``cls`` seen from ``view`` (``_sprite_view``); False (draw the mesh
        instead) when none fits its shape on screen.

        ``street``: the cut-out stands in the object's projected box with the photo's proportions: a person fitted
        to the box's height, anything else inside the box, chosen among sprites for the shape on screen nearest the
        box's. ``aerial``: a nadir cut-out (a vehicle's roof, a stall's canopy) is laid on the footprint at 0.8 of
        the object's height, turned with it; ``ground``: likewise on the road (a pothole, whose top is the road).
        The id buffer gets the cut-out's opaque pixels, so truth boxes and visibility stay what is drawn."""
        bank = self.sprites
        assert bank is not None
        obj = p.obj
        top = float(obj.part_top_z.max())
        h, w = image.shape[:2]
        if view == "street":
            lo, hi = p.pixels.min(axis=0), p.pixels.max(axis=0)
            bw, bh = float(hi[0] - lo[0]), float(hi[1] - lo[1])
            if bh < 2.0 or bw < 1.0 or bw * bh > 4.0 * w * h:
                return False
            _, rgba = bank.pick(cls, view, obj.object_id, bw / bh, bh)
            # The photo's proportions, never stretched: a person fitted to the box's height, a vehicle inside the
            # box; centred on it, standing on its bottom edge.
            scale = bh / rgba.shape[0] if cls == "person" else min(bw / rgba.shape[1], bh / rgba.shape[0])
            bw, bh = rgba.shape[1] * scale, rgba.shape[0] * scale
            lo = np.array([(lo[0] + hi[0] - bw) / 2.0, hi[1] - bh])
            x0, y0 = math.floor(lo[0]), math.floor(lo[1])
            sw, sh = max(round(bw), 1), max(round(bh), 1)
            area = cv2.INTER_AREA if sh < rgba.shape[0] else cv2.INTER_LINEAR
            warped = cv2.resize(rgba, (sw, sh), interpolation=area)
        else:
            east, north, angle, hl, hw = obj.footprint
            c, s = math.cos(angle), math.sin(angle)
            local = np.array([[-hl, hw], [hl, hw], [hl, -hw], [-hl, -hw]])
            corners = np.c_[local @ np.array([[c, s], [-s, c]]) + [east, north], np.full(4, 0.8 * top)]
            quad = camera.project(corners)[0]
            lo, hi = np.floor(quad.min(axis=0)), np.ceil(quad.max(axis=0))
            if (hi - lo).min() < 2.0 or float(np.prod(hi - lo)) > 4.0 * w * h:
                return False
            _, rgba = bank.pick(cls, view, obj.object_id, hl / max(hw, 1e-3), float(hi[1] - lo[1]))
            if rgba.shape[0] > rgba.shape[1]:  # long side along the vehicle
                rgba = np.ascontiguousarray(np.rot90(rgba))
            src = np.array([[0, 0], [rgba.shape[1], 0], [rgba.shape[1], rgba.shape[0]], [0, rgba.shape[0]]])
            x0, y0 = int(lo[0]), int(lo[1])
            sw, sh = int(hi[0] - lo[0]), int(hi[1] - lo[1])
            matrix = cv2.getPerspectiveTransform(src.astype(np.float32), (quad - [x0, y0]).astype(np.float32))
            warped = cv2.warpPerspective(rgba, matrix, (sw, sh), flags=cv2.INTER_LINEAR)
        alpha = warped[..., 3].astype(np.float32) / 255.0
        solid = (alpha > 0.5).astype(np.uint8)
        contours, _ = cv2.findContours(solid, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            return False
        # The part inside the image: blend the photo in with its feathered alpha, lit like the scene's ground.
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + sw, w), min(y0 + sh, h)
        if cx1 <= cx0 or cy1 <= cy0:
            return False
        part = np.s_[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
        a = alpha[part][..., None]
        gain = float(np.clip(self.look.ground_light / SPRITE_LIGHT, 0.6, 1.2))
        region = image[cy0:cy1, cx0:cx1]
        region[:] = np.clip(warped[part][..., :3] * (a * gain) + region * (1.0 - a), 0, 255).astype(np.uint8)
        ids[cy0:cy1, cx0:cx1][solid[part] > 0] = obj.object_id
        offset = np.array([x0, y0], np.int32)
        drawn[obj.object_id].extend(((c.reshape(-1, 2) + offset) * _ONE).astype(np.int32) for c in contours)
        return True

    def _shadows(self, camera: PinholeCamera, objects: list[PlacedObject], image: ImageArray) -> None:
        sun = self.look.to_sun
        if sun[2] <= 0.05:
            return
        to_ground = sun[:2] / sun[2]
        homography = ground_homography(camera)
        h, w = image.shape[:2]
        mask = np.zeros((h, w), np.uint8)
        for obj in objects:
            if obj.part_decal.all():
                continue
            ground = obj.vertices[:, :2] - obj.vertices[:, 2:3] * to_ground
            hom = ground @ homography[:, :2].T + homography[:, 2]
            ahead = hom[:, 2] > 1e-6
            pts = np.round(hom[:, :2] / np.where(ahead, hom[:, 2], 1.0)[:, None] * _ONE).astype(np.int32)
            for k, (a, b) in enumerate(obj.mesh_slices):
                # Decals and things lying flat on the ground cast no shadow worth drawing; a mesh partly behind
                # the camera is skipped rather than drawn mirrored.
                if obj.part_decal[k] or obj.part_top_z[k] < 0.05 or not ahead[a:b].all():
                    continue
                cv2.fillConvexPoly(mask, cv2.convexHull(pts[a:b]), 255, cv2.LINE_AA, _SHIFT)
        bounds = _bounds(mask > 0)
        if bounds is None:
            return
        x0, y0, x1, y1 = max(bounds[0] - 2, 0), max(bounds[1] - 2, 0), min(bounds[2] + 2, w), min(bounds[3] + 2, h)
        soft = cv2.GaussianBlur(mask[y0:y1, x0:x1], (0, 0), 1.0)
        # Brightness 255 outside shadows, 255 * look.shadow inside: one saturating uint8 multiply.
        keep = (255.0 - (1.0 - self.look.shadow) * soft.astype(np.float32)).astype(np.uint8)
        region = image[y0:y1, x0:x1]
        region[:] = cv2.multiply(region, cv2.merge([keep, keep, keep]), scale=1.0 / 255.0)


def _in_view(camera: PinholeCamera, centres: Float64Array, radii: Float64Array) -> npt.NDArray[np.bool_]:
    """Which bounding spheres meet the view frustum."""
    f = camera.intrinsics.focal_px
    tx, ty = camera.intrinsics.width_px / 2 / f, camera.intrinsics.height_px / 2 / f
    cam = (centres - camera.position_enu_m) @ camera.rotation
    x, y, z = cam[:, 0], cam[:, 1], cam[:, 2]
    ok = (z > NEAR_M - radii) & (z < FAR_M + radii)
    ok &= np.abs(x) - radii * math.hypot(1, tx) <= z * tx
    ok &= np.abs(y) - radii * math.hypot(1, ty) <= z * ty
    result: npt.NDArray[np.bool_] = ok
    return result


def _measure(object_id: int, polys: list[npt.NDArray[np.int32]], ids: IdArray) -> ObjectBox | None:
    """Box, visible box and visibility of one object from its drawn polygons and the final id buffer."""
    if not polys:
        return None
    h, w = ids.shape
    allpts = np.concatenate(polys) / _ONE
    lo, hi = np.floor(allpts.min(axis=0)).astype(int), np.ceil(allpts.max(axis=0)).astype(int) + 1
    truncated = bool(lo[0] < 0 or lo[1] < 0 or hi[0] > w or hi[1] > h)
    x0, y0 = max(int(lo[0]), 0), max(int(lo[1]), 0)
    x1, y1 = min(int(hi[0]), w), min(int(hi[1]), h)
    if x1 <= x0 or y1 <= y0:
        return None
    silhouette = np.zeros((y1 - y0, x1 - x0), np.uint8)
    offset = np.array([x0, y0], np.int32) * _ONE
    for pts in polys:  # one call each: fillPoly with several polygons fills their overlaps even-odd
        cv2.fillPoly(silhouette, [pts - offset], 1, cv2.LINE_8, _SHIFT)
    whole = _bounds(silhouette > 0)
    if whole is None:
        return None
    seen = ids[y0:y1, x0:x1] == object_id
    area = int(np.count_nonzero(silhouette))
    visible = int(np.count_nonzero(seen))
    part = _bounds(seen)
    if part is None:
        return None  # wholly hidden: not in this frame's truth

    def shifted(b: tuple[int, int, int, int]) -> Box:
        return float(b[0] + x0), float(b[1] + y0), float(b[2] + x0), float(b[3] + y0)

    return ObjectBox(
        object_id=object_id,
        box=shifted(whole),
        visible_box=shifted(part),
        visibility=min(1.0, visible / area) if area else 0.0,
        truncated=truncated,
    )
