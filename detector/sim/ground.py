"""The street's ground as one texture in street coordinates, and drawing it into a camera's view.

The ground (asphalt, lanes, markings, kerbs, pavements, crossings, manholes) is painted once per world into a
raster whose pixels are ``res_m`` metres of street; a view of it is one perspective warp through the camera's
ground-plane homography, which is exact for the flat ground z = 0 of the camera model.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import numpy.typing as npt

from detector.geo.camera import PinholeCamera
from detector.sim.effects import Look
from detector.sim.textures import TextureSet
from detector.sim.world import Street
from detector.types import ImageArray

Float64Array = npt.NDArray[np.float64]
MAX_PIXELS = 9_000_000
OUTSIDE = (105.0, 112.0, 118.0)  # ground beyond the painted street


def ground_homography(camera: PinholeCamera) -> Float64Array:
    """3x3 map from ground points (east, north, 1) to homogeneous pixels: ``camera.project`` for z = 0."""
    r, c = camera.rotation, camera.position_enu_m
    extrinsic = np.stack([r[0, :], r[1, :], -(r.T @ c)], axis=1)  # columns: R^T e_x, R^T e_y, -R^T C
    result: Float64Array = camera.intrinsics.matrix @ extrinsic
    return result


def below_horizon(camera: PinholeCamera) -> npt.NDArray[np.bool_]:
    """Pixels whose ray goes down to the ground (the rest is sky or beyond the horizon)."""
    w, h = camera.intrinsics.width_px, camera.intrinsics.height_px
    k_inv = np.linalg.inv(camera.intrinsics.matrix)
    a, b, c = (camera.rotation @ k_inv)[2]  # the ray's up-component is linear in the pixel
    u = np.arange(w, dtype=np.float64)[None, :] + 0.5
    v = np.arange(h, dtype=np.float64)[:, None] + 0.5
    result: npt.NDArray[np.bool_] = (a * u + b * v + c) < -1e-6
    return result


def _noise(rng: np.random.Generator, shape: tuple[int, int], cell_px: float) -> npt.NDArray[np.float32]:
    small = (max(2, int(shape[1] / cell_px)), max(2, int(shape[0] / cell_px)))
    coarse = rng.normal(0.0, 1.0, (small[1], small[0])).astype(np.float32)
    return np.asarray(cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC), np.float32)


@dataclass(frozen=True)
class _Recipe:
    """What a ground was painted from, to paint it again with photo textures: the same draws, the same street."""

    look: Look
    rng: np.random.Generator  # a copy, as it was before the painting
    tree_pits: tuple[tuple[float, float], ...]
    crossings: tuple[float, ...]


@dataclass
class GroundMap:
    """The ground raster and its placement: pixel (col, row) is street (s0 + col*res, d_top - row*res)."""

    image: ImageArray
    res_m: float
    s0_m: float
    d_top_m: float
    street: Street
    border: tuple[float, float, float] = OUTSIDE
    recipe: _Recipe | None = field(default=None, repr=False, compare=False)

    @classmethod
    def paint(
        cls,
        street: Street,
        look: Look,
        rng: np.random.Generator,
        tree_pits_sd: Sequence[tuple[float, float]] = (),
        crossings_s: Sequence[float] = (),
        margin_m: float = 30.0,
        res_m: float = 0.04,
        textures: TextureSet | None = None,
    ) -> GroundMap:
        """Paint the street; ``res_m`` is the finest resolution tried (it is coarsened to fit ``MAX_PIXELS``).
        ``textures``: asphalt and paving from real photos (detector/sim/textures.py) instead of flat colours; they
        draw from their own generator, so ``rng`` is left as it would be without them."""
        right_line, left_line = street.building_lines
        d_top, d_bottom = left_line + margin_m / 3, right_line - margin_m / 3
        s0, s1 = -margin_m, street.length_m + margin_m
        res = res_m
        while (s1 - s0) * (d_top - d_bottom) / res**2 > MAX_PIXELS or (s1 - s0) / res > 32000:
            res *= 1.25
        w, h = int((s1 - s0) / res), int((d_top - d_bottom) / res)
        light = look.ground_light
        border = (OUTSIDE[0] * light, OUTSIDE[1] * light, OUTSIDE[2] * light)
        recipe = _Recipe(look, copy.deepcopy(rng), tuple(tree_pits_sd), tuple(crossings_s))
        ground = cls(np.zeros((h, w, 3), np.uint8), res, s0, d_top, street, border, recipe)
        ground._paint(rng, look, tree_pits_sd, crossings_s, textures)
        return ground

    def textured(self, textures: TextureSet) -> GroundMap:
        """This ground painted again with photo textures: the same markings, manholes and tree pits, in the same
        places (the painting's own draws are replayed)."""
        if self.recipe is None:
            raise ValueError("this ground was not painted by GroundMap.paint: it cannot be repainted")
        r = self.recipe
        out = replace(self, image=np.zeros_like(self.image))
        out._paint(copy.deepcopy(r.rng), r.look, r.tree_pits, r.crossings, textures)
        return out

    def row(self, d: float) -> int:
        return round((self.d_top_m - d) / self.res_m)

    def col(self, s: float) -> int:
        return round((s - self.s0_m) / self.res_m)

    def _band(self, canvas: npt.NDArray[np.float32], d_from: float, d_to: float, colour: npt.ArrayLike) -> None:
        r0, r1 = sorted((self.row(d_from), self.row(d_to)))
        canvas[max(r0, 0) : max(r1, 0)] = colour

    def _surface(
        self,
        canvas: npt.NDArray[np.float32],
        d_from: float,
        d_to: float,
        textures: TextureSet,
        material: str,
        rng: np.random.Generator,
    ) -> None:
        r0, r1 = sorted((max(self.row(d_from), 0), max(self.row(d_to), 0)))
        if r1 > r0:
            canvas[r0:r1] = textures.surface(material, (r1 - r0, canvas.shape[1]), self.res_m, rng)

    def _paint(
        self,
        rng: np.random.Generator,
        look: Look,
        tree_pits: Sequence[tuple[float, float]],
        crossings: Sequence[float],
        textures: TextureSet | None = None,
    ) -> None:
        st = self.street
        h, w = self.image.shape[:2]
        canvas = np.empty((h, w, 3), np.float32)
        canvas[:] = OUTSIDE
        right_kerb, left_kerb = st.kerbs
        right_line, left_line = st.building_lines
        asphalt = np.array([78.0, 80.0, 82.0]) + rng.normal(0, 8)
        paving = np.array(rng.choice([[175, 180, 185], [150, 160, 175], [120, 130, 150], [185, 175, 165]]), float)
        self._band(canvas, left_line, left_kerb, paving)
        self._band(canvas, right_kerb, right_line, paving)
        self._band(canvas, left_kerb, right_kerb, asphalt)
        photo = textures is not None and all(textures.has(m) for m in ("asphalt", "paving"))
        if photo and textures is not None:  # own generator: the street's draws below stay as without textures
            own = np.random.default_rng(copy.deepcopy(rng).integers(2**63))
            self._surface(canvas, left_kerb, right_kerb, textures, "asphalt", own)
            self._surface(canvas, left_line, left_kerb, textures, "paving", own)
            self._surface(canvas, right_kerb, right_line, textures, "paving", own)
        tile = max(2, round(rng.uniform(0.3, 0.6) / self.res_m))
        grid = np.ones((h, w), np.float32)
        joint = 0.9 if photo else 0.82  # a photo's paving has its own joints, blurred: the grid sharpens them
        grid[::tile, :] = joint
        grid[:, ::tile] = joint
        pavement_rows = np.zeros(h, bool)
        for a, b in ((left_line, left_kerb), (right_kerb, right_line)):
            r0, r1 = sorted((self.row(a), self.row(b)))
            pavement_rows[max(r0, 0) : max(r1, 0)] = True
        canvas[pavement_rows] *= grid[pavement_rows, :, None]
        white, yellow = (225.0, 228.0, 230.0), (40.0, 170.0, 215.0)
        self._markings(canvas, st, white, yellow, crossings)
        for kerb in (left_kerb, right_kerb):  # kerb stones and the gutter beside them
            side = 1.0 if kerb > 0 else -1.0
            self._band(canvas, kerb, kerb + side * 0.2, (165.0, 168.0, 170.0))
            self._band(canvas, kerb - side * 0.05, kerb, (55.0, 57.0, 60.0))
        for s_m, d_m in tree_pits:
            c, r, half = self.col(s_m), self.row(d_m), round(0.6 / self.res_m)
            cv2.rectangle(canvas, (c - half, r - half), (c + half, r + half), (45.0, 60.0, 75.0), -1)
        for _ in range(int(st.length_m / 25) + 1):  # manholes and repairs in the road
            c, r = self.col(rng.uniform(0, st.length_m)), self.row(rng.uniform(right_kerb + 1, left_kerb - 1))
            cv2.circle(canvas, (c, r), round(0.35 / self.res_m), (70.0, 72.0, 75.0), -1)
            cv2.circle(canvas, (c, r), round(0.35 / self.res_m), (50.0, 52.0, 55.0), max(1, round(0.04 / self.res_m)))
            c2, r2 = self.col(rng.uniform(0, st.length_m)), self.row(rng.uniform(right_kerb, left_kerb))
            size = (round(rng.uniform(0.5, 3) / self.res_m), round(rng.uniform(0.5, 2) / self.res_m))
            shade = float(rng.uniform(0.8, 1.15))
            patch = canvas[r2 : r2 + size[1], c2 : c2 + size[0]]
            patch *= shade
        texture = (
            _noise(rng, (h, w), 0.15 / self.res_m) * 0.04
            + _noise(rng, (h, w), 2.0 / self.res_m) * 0.06
            + _noise(rng, (h, w), 12.0 / self.res_m) * 0.05
        )
        grain = rng.normal(0.0, 0.035, (64, 64)).astype(np.float32)
        texture += np.tile(grain, (h // 64 + 1, w // 64 + 1))[:h, :w]
        if photo:
            texture *= 0.5  # the photos carry their own grain and stains
        canvas *= (1.0 + texture)[..., None] * look.ground_light
        self.image = np.clip(canvas, 0, 255).astype(np.uint8)

    def _markings(
        self,
        canvas: npt.NDArray[np.float32],
        st: Street,
        white: tuple[float, float, float],
        yellow: tuple[float, float, float],
        crossings: Sequence[float],
    ) -> None:
        line = max(1, round(0.15 / self.res_m))
        w = canvas.shape[1]
        for offset in (-0.12, 0.12):  # double yellow centre line
            r = self.row(offset)
            cv2.line(canvas, (0, r), (w, r), yellow, line)
        for lane in range(1, st.lanes // 2):  # dashed lane lines: 2 m dash, 4 m gap
            for d in (lane * st.lane_m, -lane * st.lane_m):
                r = self.row(d)
                for s in np.arange(0.0, st.length_m, 6.0):
                    cv2.line(canvas, (self.col(s), r), (self.col(s + 2.0), r), white, line)
        right_kerb, left_kerb = st.kerbs
        for d in (left_kerb - 0.3, -st.road_half_m + 0.3):  # edge lines
            r = self.row(d)
            cv2.line(canvas, (0, r), (w, r), white, line)
        if st.parking_m > 0:  # parking bays, 6 m long
            top, bottom = self.row(-st.road_half_m), self.row(right_kerb)
            for s in np.arange(0.0, st.length_m, 6.0):
                cv2.line(canvas, (self.col(s), top), (self.col(s), bottom), white, line)
        for s_c in crossings:  # zebra crossing: 0.45 m stripes, 0.6 m gaps, 5 m long, with stop lines
            top, bottom = self.row(left_kerb), self.row(right_kerb)
            for d in np.arange(right_kerb + 0.4, left_kerb - 0.4, 1.05):
                r0, r1 = self.row(d + 0.45), self.row(d)
                cv2.rectangle(canvas, (self.col(s_c), r0), (self.col(s_c + 5.0), r1), white, -1)
            for s_line in (s_c - 2.0, s_c + 7.0):
                cv2.line(canvas, (self.col(s_line), top), (self.col(s_line), bottom), white, line * 2)

    def map_to_enu(self) -> Float64Array:
        """3x3 affine: map pixel (col, row, 1) -> (east, north, 1)."""
        along, left = self.street.axes()
        res = self.res_m
        origin = self.s0_m * along + self.d_top_m * left
        return np.array([[res * along[0], -res * left[0], origin[0]], [res * along[1], -res * left[1], origin[1]],
                         [0.0, 0.0, 1.0]])  # fmt: skip

    def view(self, camera: PinholeCamera, sky: Sequence[float]) -> tuple[ImageArray, npt.NDArray[np.bool_]]:
        """The ground as the camera sees it (sky above the horizon), and the below-horizon mask."""
        w, h = camera.intrinsics.width_px, camera.intrinsics.height_px
        homography = ground_homography(camera) @ self.map_to_enu()
        out = cv2.warpPerspective(
            self.image,
            homography,
            (w, h),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=self.border,
        )
        ground = below_horizon(camera)
        if not ground.all():
            rows = np.linspace(0.75, 1.05, h, dtype=np.float32)[:, None, None]
            sky_img = np.clip(np.asarray(sky, np.float32)[None, None, :] * rows, 0, 255).astype(np.uint8)
            out = np.where(ground[..., None], out, np.broadcast_to(sky_img, out.shape))
        return np.ascontiguousarray(out, np.uint8), ground
