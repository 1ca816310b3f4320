"""Synthetic geometry for geotagging tests: a fixed street camera with surveyed control points, and a drone
whose telemetry says where a ground point appears in its image. Both use the production camera model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np

from detector.geo.camera import Attitude, CameraProfile, Intrinsics, PinholeCamera
from detector.geo.enu import offset_m, shifted
from detector.geo.projection import DroneProjector
from detector.types import Telemetry

LAT, LON = 39.9042, 116.4074  # Beijing, where the default case codes come from

# A street camera 8 m up, looking north 35 degrees down, 320x240 pixels.
FIXED_SIZE = (320, 240)
FIXED_CAMERA = PinholeCamera.from_angles(Intrinsics.from_hfov(90.0, *FIXED_SIZE), (0.0, 0.0, 8.0), Attitude(0.0, -35.0))
CONTROL_ENU = [(-6.0, 10.0), (6.0, 10.0), (8.0, 25.0), (-8.0, 25.0), (0.0, 15.0), (3.0, 30.0)]

# A drone camera: 80 degrees across, 320x240 pixels.
DRONE_PROFILE = {"name": "test-drone", "hfov_deg": 80.0, "image_width_px": 320, "image_height_px": 240}


def fixed_pixel(east_m: float, north_m: float) -> tuple[float, float]:
    """Where the ground point east/north of the camera's foot appears in the fixed camera's image."""
    pixels, _ = FIXED_CAMERA.project([(east_m, north_m, 0.0)])
    return float(pixels[0, 0]), float(pixels[0, 1])


def control_points(enu: list[tuple[float, float]] | None = None) -> list[dict[str, float]]:
    """Control points of the fixed camera (pixel <-> lat/lon), exact."""
    points = []
    for east, north in enu or CONTROL_ENU:
        x, y = fixed_pixel(east, north)
        lat, lon = shifted(LAT, LON, east, north)
        points.append({"x_px": x, "y_px": y, "lat": lat, "lon": lon})
    return points


def geo_square(east_m: float, north_m: float, half_m: float) -> dict[str, Any]:
    """A GeoJSON Polygon: the square of side 2 * half_m around a point east/north of (LAT, LON)."""
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1), (-1, -1)]
    ring = []
    for de, dn in corners:
        lat, lon = shifted(LAT, LON, east_m + de * half_m, north_m + dn * half_m)
        ring.append([lon, lat])
    return {"type": "Polygon", "coordinates": [ring]}


def distance_m(lat: float, lon: float, east_m: float, north_m: float) -> float:
    """Metres from (lat, lon) to the point east/north of (LAT, LON)."""
    east, north = offset_m(LAT, LON, lat, lon)
    return float(np.hypot(east - east_m, north - north_m))


def drone_telemetry(east_m: float, north_m: float, **angles: float | None) -> Telemetry:
    """A drone over the point east/north of (LAT, LON), 40 m up, with the given angles."""
    lat, lon = shifted(LAT, LON, east_m, north_m)
    return Telemetry(lat=lat, lon=lon, altitude_agl_m=40.0, **angles)


def drone_pixel(telemetry: Telemetry, east_m: float, north_m: float) -> tuple[float, float] | None:
    """Where the ground point east/north of (LAT, LON) appears in the drone image; None when out of view."""
    assert telemetry.lat is not None and telemetry.lon is not None
    camera, _ = DroneProjector(CameraProfile.model_validate(DRONE_PROFILE)).camera(telemetry)
    de, dn = offset_m(telemetry.lat, telemetry.lon, *shifted(LAT, LON, east_m, north_m))
    pixels, in_front = camera.project([(de, dn, 0.0)])
    u, v = float(pixels[0, 0]), float(pixels[0, 1])
    if not in_front[0] or not (0 <= u < 320 and 0 <= v < 240):
        return None
    return u, v


def write_video(path: Path, images: list[np.ndarray], fps: int) -> Path:
    """An H.264 file, lossless (qp 0, 4:4:4) so that colour patches decode as drawn."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv444p"
        stream.options = {"qp": "0"}
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
