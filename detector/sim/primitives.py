"""3D primitives the simulator draws: convex solids and flat pieces as polygon meshes in metres, z up.

Every shape is a ``Mesh`` of planar faces. Closed solids are convex, so after back-face culling their faces do not
overlap on screen and need no order among themselves; open surfaces (an umbrella's cover) are ``two_sided`` and are
drawn far to near. ``decal`` meshes lie on the ground and are drawn with it (potholes, mats).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Float64Array = npt.NDArray[np.float64]
Colour = tuple[float, float, float]  # BGR, 0..255

DECAL_LIFT_M = 0.005  # above the ground texture, so that its own polygon wins the depth order


@dataclass(frozen=True)
class Mesh:
    """Faces over shared vertices. Closed meshes have their normals pointing outwards."""

    vertices: Float64Array  # V x 3
    faces: tuple[tuple[int, ...], ...]
    colours: Float64Array  # F x 3, BGR
    two_sided: bool = False
    decal: bool = False

    def __post_init__(self) -> None:
        if self.vertices.ndim != 2 or self.vertices.shape[1] != 3:
            raise ValueError(f"mesh vertices must be Vx3, got {self.vertices.shape}")
        if len(self.colours) != len(self.faces):
            raise ValueError(f"{len(self.faces)} faces but {len(self.colours)} colours")

    def moved(self, dx: float = 0.0, dy: float = 0.0, dz: float = 0.0) -> Mesh:
        return Mesh(self.vertices + np.array([dx, dy, dz]), self.faces, self.colours, self.two_sided, self.decal)

    def rotated(self, angle_rad: float) -> Mesh:
        """Turned counter-clockwise about the local z axis."""
        c, s = math.cos(angle_rad), math.sin(angle_rad)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return Mesh(self.vertices @ rot.T, self.faces, self.colours, self.two_sided, self.decal)


def _outward(vertices: Float64Array, faces: Sequence[tuple[int, ...]]) -> tuple[tuple[int, ...], ...]:
    """Reorder each face of a convex solid so that its right-hand normal points away from the centre."""
    centre = vertices.mean(axis=0)
    out = []
    for face in faces:
        pts = vertices[list(face)]
        if float(np.dot(face_normal(pts), pts.mean(axis=0) - centre)) < 0.0:
            face = tuple(reversed(face))
        out.append(face)
    return tuple(out)


def face_normal(points: Float64Array) -> Float64Array:
    """Unit normal of a planar polygon (Newell's method: robust to collinear vertices)."""
    # Plain floats: faces have a handful of vertices, where numpy's per-call overhead would dominate.
    pts = points.tolist()
    nx = ny = nz = 0.0
    for (x0, y0, z0), (x1, y1, z1) in zip(pts, pts[1:] + pts[:1], strict=True):
        nx += (y0 - y1) * (z0 + z1)
        ny += (z0 - z1) * (x0 + x1)
        nz += (x0 - x1) * (y0 + y1)
    norm = math.sqrt(nx * nx + ny * ny + nz * nz)
    return np.array([nx / norm, ny / norm, nz / norm]) if norm > 0 else np.array([0.0, 0.0, 1.0])


def _colours(n: int, colour: Colour | Sequence[Colour]) -> Float64Array:
    arr = np.asarray(colour, np.float64).reshape(-1, 3)
    return np.resize(arr, (n, 3)) if len(arr) != n else arr


def prism(ring: Float64Array, z0: float, z1: float, colour: Colour, top: Colour | None = None) -> Mesh:
    """A vertical prism over a convex ground ring (Nx2, metres) from height ``z0`` to ``z1``."""
    n = len(ring)
    vertices = np.concatenate([np.c_[ring, np.full(n, z0)], np.c_[ring, np.full(n, z1)]])
    faces: list[tuple[int, ...]] = [(i, (i + 1) % n, n + (i + 1) % n, n + i) for i in range(n)]
    faces += [tuple(range(n)), tuple(range(n, 2 * n))]
    colours = _colours(len(faces), colour)
    colours[-1] = top if top is not None else colour
    return Mesh(vertices, _outward(vertices, faces), colours)


def frustum(ring: Float64Array, z0: float, z1: float, top_scale: float, colour: Colour) -> Mesh:
    """Like ``prism`` but the top ring is the bottom one scaled about its centre (bags, crowns, cabins)."""
    n = len(ring)
    centre = ring.mean(axis=0)
    top = centre + (ring - centre) * top_scale
    vertices = np.concatenate([np.c_[ring, np.full(n, z0)], np.c_[top, np.full(n, z1)]])
    faces: list[tuple[int, ...]] = [(i, (i + 1) % n, n + (i + 1) % n, n + i) for i in range(n)]
    faces += [tuple(range(n)), tuple(range(n, 2 * n))]
    return Mesh(vertices, _outward(vertices, faces), _colours(len(faces), colour))


def rect(cx: float, cy: float, sx: float, sy: float) -> Float64Array:
    hx, hy = sx / 2.0, sy / 2.0
    return np.array([[cx - hx, cy - hy], [cx + hx, cy - hy], [cx + hx, cy + hy], [cx - hx, cy + hy]])


def circle(cx: float, cy: float, radius: float, sides: int, jitter: Float64Array | None = None) -> Float64Array:
    angles = np.linspace(0.0, 2.0 * math.pi, sides, endpoint=False)
    radii = radius * (1.0 + (jitter if jitter is not None else 0.0))
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)


def box(
    cx: float, cy: float, z0: float, sx: float, sy: float, sz: float, colour: Colour, top: Colour | None = None
) -> Mesh:
    """An axis-aligned box standing at height ``z0``."""
    return prism(rect(cx, cy, sx, sy), z0, z0 + sz, colour, top)


def cylinder(cx: float, cy: float, z0: float, radius: float, height: float, colour: Colour, sides: int = 10) -> Mesh:
    return prism(circle(cx, cy, radius, sides), z0, z0 + height, colour)


def wheel(cx: float, cy: float, radius: float, width: float, colour: Colour, sides: int = 10) -> Mesh:
    """A wheel on the ground, its axle along the local y axis."""
    angles = np.linspace(0.0, 2.0 * math.pi, sides, endpoint=False)
    xs, zs = cx + radius * np.cos(angles), radius + radius * np.sin(angles)
    y0, y1 = cy - width / 2.0, cy + width / 2.0
    vertices = np.concatenate([np.c_[xs, np.full(sides, y0), zs], np.c_[xs, np.full(sides, y1), zs]])
    faces: list[tuple[int, ...]] = [(i, (i + 1) % sides, sides + (i + 1) % sides, sides + i) for i in range(sides)]
    faces += [tuple(range(sides)), tuple(range(sides, 2 * sides))]
    return Mesh(vertices, _outward(vertices, faces), _colours(len(faces), colour))


def umbrella(
    cx: float, cy: float, rim_z: float, radius: float, rise: float, colours: Sequence[Colour], sides: int = 8
) -> Mesh:
    """An open cone (apex up) seen from above and below: the cover of a market umbrella, in coloured panels."""
    rim = circle(cx, cy, radius, sides)
    vertices = np.concatenate([np.c_[rim, np.full(sides, rim_z)], [[cx, cy, rim_z + rise]]])
    faces = tuple((i, (i + 1) % sides, sides) for i in range(sides))
    return Mesh(vertices, faces, _colours(sides, list(colours)), two_sided=True)


def pitched_roof(
    cx: float, cy: float, eave_z: float, sx: float, sy: float, rise: float, colours: Sequence[Colour]
) -> Mesh:
    """Two roof slopes meeting at a ridge along x, open underneath (a stall canopy)."""
    hx, hy = sx / 2.0, sy / 2.0
    vertices = np.array(
        [
            [cx - hx, cy - hy, eave_z],
            [cx + hx, cy - hy, eave_z],
            [cx + hx, cy, eave_z + rise],
            [cx - hx, cy, eave_z + rise],
            [cx + hx, cy + hy, eave_z],
            [cx - hx, cy + hy, eave_z],
        ]
    )
    faces = ((0, 1, 2, 3), (3, 2, 4, 5), (1, 4, 2), (5, 0, 3))
    return Mesh(vertices, faces, _colours(4, list(colours)), two_sided=True)


def panel(corners: Float64Array, colour: Colour) -> Mesh:
    """One flat one-sided face (a shop window on a facade); give the corners counter-clockwise seen from the front."""
    return Mesh(np.asarray(corners, np.float64), (tuple(range(len(corners))),), _colours(1, colour))


def decal(ring: Float64Array, colour: Colour, lift_m: float = DECAL_LIFT_M) -> Mesh:
    """A flat piece lying on the ground (pothole, mat), facing up."""
    pts = np.asarray(ring, np.float64)
    if _signed_area(pts) < 0.0:
        pts = pts[::-1]
    vertices = np.c_[pts, np.full(len(pts), lift_m)]
    return Mesh(vertices, (tuple(range(len(pts))),), _colours(1, colour), decal=True)


def _signed_area(ring: Float64Array) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
