"""Fixed-camera ground calibration: a pixel -> ground homography fitted to control points with RANSAC.

Control points (pixel <-> lat/lon) are moved to a local ENU plane around their centroid (pyproj), the
homography is fitted there in metres, and its reprojection error is reported in metres.

Example::

    calibration = GroundCalibration.fit([ControlPoint(x_px=..., y_px=..., lat=..., lon=...), ...])
    calibration.report.rms_error_m
    calibration.pixel_to_geo(detections.bottom_centres())  # list[GeoPoint | None]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from detector.geo.enu import LocalTangentPlane
from detector.geo.errors import CalibrationError
from detector.types import GeoPoint, LocationMethod

Float64Array = npt.NDArray[np.float64]

METHOD = LocationMethod.HOMOGRAPHY
_MIN_SPREAD = 0.02  # smallest / largest principal spread of a point set; below: a line
_MIN_TRIANGLE = 0.01  # triangle area over squared longest side, for the triples of a 4-point set


class ControlPoint(BaseModel):
    """One surveyed point: where it is in the image and on the map."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x_px: float = Field(description="Image column of the point, pixels from the left edge")
    y_px: float = Field(description="Image row of the point, pixels from the top edge")
    lat: float = Field(ge=-90, le=90, description="WGS84 latitude, degrees")
    lon: float = Field(ge=-180, le=180, description="WGS84 longitude, degrees")


@dataclass(frozen=True)
class CalibrationReport:
    """Fit quality over the RANSAC inliers; indices refer to the control points as given."""

    rms_error_m: float
    max_error_m: float
    inliers: tuple[int, ...]
    outliers: tuple[int, ...]
    warnings: tuple[str, ...]


def _check_duplicates(points: Float64Array, tolerance: float, space: str) -> None:
    for i, j in itertools.combinations(range(len(points)), 2):
        if float(np.hypot(*(points[i] - points[j]))) < tolerance:
            raise CalibrationError(
                f"control points {i} and {j} are the same point in {space} space; each must be its own place"
            )


def _check_spread(points: Float64Array, space: str, label: Sequence[int]) -> None:
    centred = points - points.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    ratio = float(singular[-1] / singular[0]) if singular[0] > 0 else 0.0
    if ratio < _MIN_SPREAD:
        raise CalibrationError(
            f"control points {list(label)} are (nearly) collinear in {space} space (spread ratio "
            f"{ratio:.4f}, need {_MIN_SPREAD}); choose points that span an area of the ground, not a line"
        )
    if len(points) != 4:
        return
    for triple in itertools.combinations(range(4), 3):
        a, b, c = points[list(triple)]
        (ux, uy), (vx, vy) = b - a, c - a
        area2 = abs(float(ux * vy - uy * vx))
        longest2 = max(float(np.sum((p - q) ** 2)) for p, q in ((a, b), (b, c), (a, c)))
        if area2 < _MIN_TRIANGLE * longest2:
            names = [label[k] for k in triple]
            raise CalibrationError(
                f"control points {names} are (nearly) collinear in {space} space; with 4 points no 3 may lie "
                "on one line; move one or add more points"
            )


def _check(pixels: Float64Array, ground: Float64Array, label: Sequence[int]) -> None:
    _check_duplicates(pixels, 1.0, "pixel")
    _check_duplicates(ground, 0.05, "ground")
    _check_spread(pixels, "pixel", label)
    _check_spread(ground, "ground", label)


class GroundCalibration:
    """A fitted pixel -> ground homography of one fixed camera; build it with ``fit``."""

    def __init__(
        self,
        homography: Float64Array,
        plane: LocalTangentPlane,
        report: CalibrationReport,
        *,
        pixel_sigma_px: float,
        fit_sigma_m: float,
        parameter_cov: Float64Array | None = None,
    ) -> None:
        """``parameter_cov``: 8x8 covariance of the homography (normalised to h33 = 1), from the fit."""
        self.homography = np.asarray(homography, np.float64).reshape(3, 3)
        self.plane = plane
        self.report = report
        self.pixel_sigma_px = pixel_sigma_px
        self.fit_sigma_m = fit_sigma_m
        self.parameter_cov = parameter_cov

    @classmethod
    def fit(
        cls,
        points: Sequence[ControlPoint],
        *,
        ransac_threshold_m: float = 1.0,
        pixel_sigma_px: float = 2.0,
        min_accuracy_m: float = 0.5,
    ) -> GroundCalibration:
        """Fit from >= 4 control points; raises ``CalibrationError`` on a degenerate set.

        ``ransac_threshold_m``: a point whose reprojection is farther than this is an outlier.
        ``pixel_sigma_px``: error of the pixels later given to ``pixel_to_geo`` (box bottom centres).
        ``min_accuracy_m``: floor of every accuracy, for what the fit cannot see (survey error).
        """
        if len(points) < 4:
            raise CalibrationError(f"a ground calibration needs at least 4 control points, got {len(points)}")
        pixels = np.array([[p.x_px, p.y_px] for p in points], np.float64)
        if not np.all(np.isfinite(pixels)):
            raise CalibrationError("control point pixels must be finite numbers")
        lat = np.array([p.lat for p in points])
        lon = np.array([p.lon for p in points])
        plane = LocalTangentPlane(float(lat.mean()), float(lon.mean()))
        ground = np.stack(plane.to_enu(lat, lon), axis=1)
        _check(pixels, ground, range(len(points)))
        found, mask = cv2.findHomography(pixels, ground, cv2.RANSAC, ransac_threshold_m)
        if found is None or mask is None or not np.all(np.isfinite(found)):
            raise CalibrationError("no homography fits these control points; check the pixel <-> lat/lon pairs")
        homography = np.asarray(found, np.float64)
        # Scale so that the control points have w > 0: "the ground side of the horizon" in ``_apply``.
        if np.median(pixels @ homography[2, :2] + homography[2, 2]) < 0.0:
            homography = -homography
        inliers = tuple(int(i) for i in np.flatnonzero(mask.ravel()))
        if len(inliers) < 4:
            raise CalibrationError(
                f"only {len(inliers)} control points agree within {ransac_threshold_m} m; check the points"
            )
        _check(pixels[list(inliers)], ground[list(inliers)], inliers)
        mapped, _ = _apply(homography, pixels[list(inliers)])
        errors = np.hypot(*(mapped - ground[list(inliers)]).T)
        dof = 2 * len(inliers) - 8
        warnings: list[str] = []
        if dof == 0:
            warnings.append("4 inliers fit exactly, so the error cannot be measured; add control points")
        fit_sigma = math.sqrt(float(np.sum(errors**2)) / dof) if dof > 0 else 0.0
        outliers = tuple(i for i in range(len(points)) if i not in inliers)
        if outliers:
            warnings.append(f"control points {list(outliers)} disagree with the others and were left out")
        report = CalibrationReport(
            rms_error_m=float(np.sqrt(np.mean(errors**2))),
            max_error_m=float(errors.max()),
            inliers=inliers,
            outliers=outliers,
            warnings=tuple(warnings),
        )
        sigma_m = max(fit_sigma, min_accuracy_m)
        cov = _parameter_cov(homography, pixels[list(inliers)], sigma_m)
        return cls(homography, plane, report, pixel_sigma_px=pixel_sigma_px, fit_sigma_m=sigma_m, parameter_cov=cov)

    def pixel_to_enu(self, pixels_px: npt.ArrayLike) -> tuple[Float64Array, npt.NDArray[np.bool_]]:
        """Nx2 pixels -> (Nx2 metres east/north of the calibration origin, valid mask)."""
        return _apply(self.homography, np.asarray(pixels_px, np.float64).reshape(-1, 2))

    def metres_per_pixel(self, pixels_px: npt.ArrayLike) -> Float64Array:
        """Ground metres per image pixel at each pixel, in the worst direction (grows toward the horizon)."""
        pixels = np.asarray(pixels_px, np.float64).reshape(-1, 2)
        h = self.homography
        ground, _ = _apply(h, pixels)
        w = pixels @ h[2, :2] + h[2, 2]
        (a, b), (c, d) = ((((h[r, k] - ground[:, r] * h[2, k]) / w) for k in (0, 1)) for r in (0, 1))
        # Largest singular value of the 2x2 Jacobian [[a, b], [c, d]], in closed form (NaN stays NaN).
        frobenius2 = a**2 + b**2 + c**2 + d**2
        determinant = a * d - b * c
        result: Float64Array = np.sqrt((frobenius2 + np.sqrt(np.maximum(frobenius2**2 - 4 * determinant**2, 0))) / 2)
        return result

    def pixel_to_geo(self, pixels_px: npt.ArrayLike) -> list[GeoPoint | None]:
        """WGS84 points for Nx2 pixels; None for a pixel at or above the ground plane's horizon.

        ``accuracy_m`` = sqrt(fit_sigma_m^2 + fit uncertainty at the pixel + (pixel_sigma_px * metres_per_pixel)^2):
        the scatter of the control points, how well they pin the homography down there (it grows away from
        them), and the error of the pixel itself (it grows toward the horizon).
        """
        pixels = np.asarray(pixels_px, np.float64).reshape(-1, 2)
        ground, valid = self.pixel_to_enu(pixels)
        scale = self.metres_per_pixel(pixels)
        variance = self.fit_sigma_m**2 + (self.pixel_sigma_px * scale) ** 2
        if self.parameter_cov is not None:
            jacobian = _parameter_jacobian(self.homography, pixels)  # (N, 2, 8)
            variance = variance + np.einsum("nij,jk,nik->n", jacobian, self.parameter_cov, jacobian)
        accuracy = np.sqrt(variance)
        lat, lon = self.plane.to_geo(ground[:, 0], ground[:, 1])
        return [
            GeoPoint(float(lat[i]), float(lon[i]), float(accuracy[i]), METHOD) if valid[i] else None
            for i in range(len(ground))
        ]


def _parameter_jacobian(homography: Float64Array, pixels: Float64Array) -> Float64Array:
    """(N, 2, 8): how each mapped point moves with the 8 free entries of the homography (h33 = 1)."""
    h = homography / homography[2, 2]
    x, y = pixels[:, 0], pixels[:, 1]
    w = h[2, 0] * x + h[2, 1] * y + 1.0
    east = (h[0, 0] * x + h[0, 1] * y + h[0, 2]) / w
    north = (h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w
    one, zero = np.ones_like(x), np.zeros_like(x)
    d_east = np.stack([x, y, one, zero, zero, zero, -east * x, -east * y], axis=1) / w[:, None]
    d_north = np.stack([zero, zero, zero, x, y, one, -north * x, -north * y], axis=1) / w[:, None]
    result: Float64Array = np.stack([d_east, d_north], axis=1)
    return result


def _parameter_cov(homography: Float64Array, inlier_pixels: Float64Array, sigma_m: float) -> Float64Array | None:
    """Covariance of the fitted homography when each control point's ground position has error ``sigma_m``
    per axis (Gauss-Newton at the solution); None when it cannot be told (h33 ~ 0, singular)."""
    if abs(homography[2, 2]) < 1e-12:
        return None
    jacobian = _parameter_jacobian(homography, inlier_pixels).reshape(-1, 8)
    # Pixel columns are ~1e3 and projective ones ~1e-3: scale the columns to unit norm before inverting.
    norms = np.linalg.norm(jacobian, axis=0)
    if not np.all(norms > 0.0):
        return None
    scaled = jacobian / norms
    try:
        inverse = np.linalg.inv(scaled.T @ scaled)
    except np.linalg.LinAlgError:
        return None
    cov = np.asarray(sigma_m**2 * inverse / np.outer(norms, norms), np.float64)
    return cov if np.all(np.isfinite(cov)) else None


def _apply(homography: Float64Array, pixels: Float64Array) -> tuple[Float64Array, npt.NDArray[np.bool_]]:
    """Map pixels through the homography; valid where the point is on the ground side of the horizon."""
    h = np.asarray(homography, np.float64)
    w = pixels @ h[2, :2] + h[2, 2]
    safe_w = np.where(w > 1e-12, w, np.nan)
    mapped = (pixels @ h[:2, :2].T + h[:2, 2]) / safe_w[:, None]
    valid = np.asarray(np.isfinite(mapped).all(axis=1), dtype=np.bool_)
    return np.where(valid[:, None], mapped, np.nan), valid
