"""The street world: a straight street laid out in metres, anchored at a WGS84 point, and the objects on it.

Positions are local ENU metres around the anchor (x east, y north, z up), the frame of detector/geo's camera
model. The street has its own frame: ``s`` metres along its axis from its start and ``d`` metres to the left of
the axis; ``Street.to_enu`` maps between them.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detector.geo.enu import LocalTangentPlane
from detector.sim.objects import Model
from detector.sim.primitives import face_normal

Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Street:
    """Cross-section and placement of one straight street (right-hand traffic)."""

    length_m: float
    bearing_deg: float  # direction of +s, clockwise from north
    lanes: int = 2  # half each way
    lane_m: float = 3.3
    parking_m: float = 0.0  # a parking strip on the right side (d < 0), between the lanes and the kerb
    pavement_m: float = 4.0

    @property
    def road_half_m(self) -> float:
        """Half the width of the traffic lanes (the parking strip is extra, on the right)."""
        return self.lanes * self.lane_m / 2.0

    @property
    def kerbs(self) -> tuple[float, float]:
        """(right, left) kerb lines as ``d``."""
        return -self.road_half_m - self.parking_m, self.road_half_m

    @property
    def building_lines(self) -> tuple[float, float]:
        right, left = self.kerbs
        return right - self.pavement_m, left + self.pavement_m

    def axes(self) -> tuple[Float64Array, Float64Array]:
        """Unit vectors (east, north) of +s and of +d (to the left of +s)."""
        b = math.radians(self.bearing_deg)
        along = np.array([math.sin(b), math.cos(b)])
        return along, np.array([-along[1], along[0]])

    def to_enu(self, s: npt.ArrayLike, d: npt.ArrayLike) -> Float64Array:
        """Nx2 (east, north) of street coordinates."""
        along, left = self.axes()
        s_arr, d_arr = np.asarray(s, np.float64).reshape(-1, 1), np.asarray(d, np.float64).reshape(-1, 1)
        result: Float64Array = s_arr * along + d_arr * left
        return result

    def angle_rad(self, reverse: bool = False) -> float:
        """Counter-clockwise angle from east of the +s direction (of -s when ``reverse``)."""
        along, _ = self.axes()
        return math.atan2(along[1], along[0]) + (math.pi if reverse else 0.0)


@dataclass(frozen=True)
class Keyframe:
    t_s: float
    east_m: float
    north_m: float
    angle_rad: float


@dataclass
class SimObject:
    """One object in the world. ``label`` is its detection class (None for scenery and distractors).

    It exists from ``appear_s`` to ``leave_s`` (scenario seconds). A moving object follows ``keyframes``
    (linear between them) and exists only within their span.
    """

    id: int
    model: Model
    east_m: float
    north_m: float
    angle_rad: float  # counter-clockwise from east, of the model's +x axis
    label: str | None = None
    appear_s: float = -math.inf
    leave_s: float = math.inf
    keyframes: tuple[Keyframe, ...] = ()
    _local: PlacedObject | None = field(default=None, init=False, repr=False)
    _static: PlacedObject | None = field(default=None, init=False, repr=False)

    def exists(self, t_s: float) -> bool:
        if self.keyframes:
            return self.keyframes[0].t_s <= t_s <= self.keyframes[-1].t_s
        return self.appear_s <= t_s < self.leave_s

    def pose(self, t_s: float) -> tuple[float, float, float]:
        """(east, north, angle) at ``t_s``."""
        if not self.keyframes:
            return self.east_m, self.north_m, self.angle_rad
        times = [k.t_s for k in self.keyframes]
        i = min(max(bisect.bisect_right(times, t_s) - 1, 0), len(times) - 2)
        a, b = self.keyframes[i], self.keyframes[i + 1]
        w = 0.0 if b.t_s <= a.t_s else float(np.clip((t_s - a.t_s) / (b.t_s - a.t_s), 0.0, 1.0))
        turn = (b.angle_rad - a.angle_rad + math.pi) % (2 * math.pi) - math.pi
        return a.east_m + w * (b.east_m - a.east_m), a.north_m + w * (b.north_m - a.north_m), a.angle_rad + w * turn

    def bounds(self, t_s: float) -> tuple[float, float, float, float]:
        """(east, north, up, radius) of a sphere holding the object at ``t_s``, without placing its faces."""
        if self._local is None:
            self._local = PlacedObject.build(self)
        east, north, angle = self.pose(t_s)
        c, s = math.cos(angle), math.sin(angle)
        x, y, z = self._local.centre
        return east + c * x - s * y, north + s * x + c * y, float(z), self._local.radius_m

    def placed(self, t_s: float) -> PlacedObject:
        if self._local is None:  # faces and normals are worked out once, in the object's own frame
            self._local = PlacedObject.build(self)
        if self.keyframes:
            return self._local.moved(*self.pose(t_s))
        if self._static is None:
            self._static = self._local.moved(self.east_m, self.north_m, self.angle_rad)
        return self._static


@dataclass(frozen=True)
class PlacedObject:
    """An object's faces in world coordinates, flattened for the renderer."""

    object_id: int
    vertices: Float64Array  # V x 3
    faces: tuple[npt.NDArray[np.intp], ...]  # indices into vertices
    normals: Float64Array  # F x 3
    centroids: Float64Array  # F x 3
    colours: Float64Array  # F x 3
    part: npt.NDArray[np.intp]  # F: which mesh of the model
    part_base_z: Float64Array  # per mesh: its lowest point (meshes are drawn bottom up)
    part_top_z: Float64Array  # per mesh: its highest point
    two_sided: npt.NDArray[np.bool_]  # F
    decal: npt.NDArray[np.bool_]  # F
    part_decal: npt.NDArray[np.bool_]  # per mesh
    mesh_slices: tuple[tuple[int, int], ...]  # per mesh: its vertex range (shadows are cast per mesh)
    centre: Float64Array  # 3
    radius_m: float
    footprint: tuple[float, float, float, float, float]  # east, north, angle, half length, half width

    @classmethod
    def build(cls, obj: SimObject) -> PlacedObject:
        """The object at the origin, unturned; ``moved`` places it."""
        vertices: list[Float64Array] = []
        faces: list[npt.NDArray[np.intp]] = []
        normals: list[Float64Array] = []
        centroids: list[Float64Array] = []
        colours: list[Float64Array] = []
        part: list[int] = []
        base_z: list[float] = []
        top_z: list[float] = []
        two_sided: list[bool] = []
        decal: list[bool] = []
        slices: list[tuple[int, int]] = []
        offset = 0
        for k, mesh in enumerate(obj.model.meshes):
            world = mesh.vertices
            vertices.append(world)
            slices.append((offset, offset + len(world)))
            for f, face in enumerate(mesh.faces):
                idx = np.asarray(face, np.intp)
                faces.append(idx + offset)
                normals.append(face_normal(world[idx]))
                centroids.append(world[idx].mean(axis=0))
                colours.append(mesh.colours[f])
                part.append(k)
                two_sided.append(mesh.two_sided)
                decal.append(mesh.decal)
            base_z.append(float(world[:, 2].min()))
            top_z.append(float(world[:, 2].max()))
            offset += len(world)
        verts = np.concatenate(vertices)
        lo, hi = verts.min(axis=0), verts.max(axis=0)
        m = obj.model
        return cls(
            object_id=obj.id,
            vertices=verts,
            faces=tuple(faces),
            normals=np.asarray(normals),
            centroids=np.asarray(centroids),
            colours=np.asarray(colours),
            part=np.asarray(part, np.intp),
            part_base_z=np.asarray(base_z),
            part_top_z=np.asarray(top_z),
            two_sided=np.asarray(two_sided, np.bool_),
            decal=np.asarray(decal, np.bool_),
            part_decal=np.asarray([m.decal for m in obj.model.meshes], np.bool_),
            mesh_slices=tuple(slices),
            centre=(lo + hi) / 2.0,
            radius_m=float(np.linalg.norm(hi - lo)) / 2.0,
            footprint=(0.0, 0.0, 0.0, m.half_length_m, m.half_width_m),
        )

    def moved(self, east: float, north: float, angle: float) -> PlacedObject:
        c, s = math.cos(angle), math.sin(angle)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        shift = np.array([east, north, 0.0])
        return dataclasses.replace(
            self,
            vertices=self.vertices @ rot.T + shift,
            normals=self.normals @ rot.T,
            centroids=self.centroids @ rot.T + shift,
            centre=self.centre @ rot.T + shift,
            footprint=(east, north, angle, self.footprint[3], self.footprint[4]),
        )

    def ground_distance_m(self, east: float, north: float) -> float:
        """Horizontal distance from a point to this object's footprint rectangle (0 inside)."""
        e, n, angle, hl, hw = self.footprint
        c, s = math.cos(angle), math.sin(angle)
        dx, dy = east - e, north - n
        lx, ly = dx * c + dy * s, -dx * s + dy * c
        return math.hypot(max(abs(lx) - hl, 0.0), max(abs(ly) - hw, 0.0))


@dataclass
class World:
    """A street, its objects and its look, anchored at ``(anchor_lat, anchor_lon)`` (ENU origin, s = 0)."""

    anchor_lat: float
    anchor_lon: float
    street: Street
    objects: list[SimObject] = field(default_factory=list)
    _next_id: int = field(default=1, init=False, repr=False)
    _plane: LocalTangentPlane | None = field(default=None, init=False, repr=False)

    @property
    def plane(self) -> LocalTangentPlane:
        if self._plane is None:
            self._plane = LocalTangentPlane(self.anchor_lat, self.anchor_lon)
        return self._plane

    def add(
        self,
        model: Model,
        east_north: npt.ArrayLike,
        angle_rad: float,
        label: str | None = None,
        appear_s: float = -math.inf,
        leave_s: float = math.inf,
        keyframes: tuple[Keyframe, ...] = (),
    ) -> SimObject:
        e, n = (float(v) for v in np.asarray(east_north, np.float64).reshape(2))
        obj = SimObject(self._next_id, model, e, n, angle_rad, label, appear_s, leave_s, keyframes)
        self._next_id += 1  # ids stay unique when objects are removed (they are pixel values in the id buffer)
        self.objects.append(obj)
        return obj

    def to_geo(self, east_m: float, north_m: float) -> tuple[float, float]:
        lat, lon = self.plane.to_geo([east_m], [north_m])
        return float(lat[0]), float(lon[0])
