"""Lighting and camera effects: the sun, shading, exposure and tint, blur, sensor noise and JPEG artefacts.

A ``Look`` is drawn once per world (or per training composite) so that a detector trained on the footage meets
many lightings and cameras; per-frame effects draw from a generator seeded by the frame, so that the same seed
gives the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from detector.types import ImageArray

Float64Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Look:
    """Lighting and camera character of one world or composite."""

    sun_azimuth_deg: float = 135.0  # clockwise from north
    sun_elevation_deg: float = 45.0
    ambient: float = 0.5  # light on a face turned away from the sun
    sun: float = 0.5  # extra light on a face turned to it; low when overcast
    shadow: float = 0.6  # ground brightness inside a shadow
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # BGR gain: white balance / time of day
    exposure: float = 1.0
    blur_sigma_px: float = 0.0
    noise_sigma: float = 2.0
    jpeg_quality: int = 85
    vignette: float = 0.15
    sky: tuple[float, float, float] = (215.0, 195.0, 175.0)

    @classmethod
    def random(cls, rng: np.random.Generator) -> Look:
        overcast = rng.random() < 0.3
        sun = rng.uniform(0.05, 0.2) if overcast else rng.uniform(0.35, 0.65)
        warm = rng.uniform(-0.08, 0.1)
        grey = rng.uniform(190, 235)
        return cls(
            sun_azimuth_deg=rng.uniform(0.0, 360.0),
            sun_elevation_deg=rng.uniform(25.0, 75.0),
            ambient=rng.uniform(0.45, 0.65),
            sun=sun,
            shadow=rng.uniform(0.85, 0.95) if overcast else rng.uniform(0.45, 0.7),
            tint=(1.0 - warm, 1.0, 1.0 + warm),
            exposure=rng.uniform(0.8, 1.2),
            blur_sigma_px=rng.choice([0.0, rng.uniform(0.4, 1.4)]),
            noise_sigma=rng.uniform(0.5, 6.0),
            jpeg_quality=int(rng.integers(35, 96)),
            vignette=rng.uniform(0.0, 0.35),
            sky=(grey + rng.uniform(0, 25), grey, grey - rng.uniform(0, 30)) if not overcast else (grey,) * 3,
        )

    @property
    def to_sun(self) -> Float64Array:
        """Unit ENU vector pointing at the sun."""
        az, el = math.radians(self.sun_azimuth_deg), math.radians(self.sun_elevation_deg)
        return np.array([math.sin(az) * math.cos(el), math.cos(az) * math.cos(el), math.sin(el)])

    def shade(self, normals: Float64Array) -> Float64Array:
        """Brightness factor per face normal (Lambert with ambient)."""
        result: Float64Array = self.ambient + self.sun * np.clip(normals @ self.to_sun, 0.0, None)
        return result

    @property
    def ground_light(self) -> float:
        return float(self.shade(np.array([[0.0, 0.0, 1.0]]))[0])


class FrameEffects:
    """Applies a look's camera effects to frames of one size; cheap per frame (lookup tables, cached noise)."""

    def __init__(self, look: Look, width: int, height: int, seed: int) -> None:
        self.look = look
        gains = np.asarray(look.tint) * look.exposure
        ramp = np.arange(256, dtype=np.float64)
        # A gentle S-curve after the gain, so that bright goods do not all clip to the same white.
        self._luts = [np.clip(255.0 * np.tanh(ramp * g / 255.0 * 1.2) / math.tanh(1.2), 0, 255).astype(np.uint8)
                      for g in gains]  # fmt: skip
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        r2 = ((xx - width / 2) / (width / 2)) ** 2 + ((yy - height / 2) / (height / 2)) ** 2
        self._vignette = (1.0 - look.vignette * np.clip(r2 / 2.0, 0, 1))[..., None].astype(np.float32)
        rng = np.random.default_rng([seed, 7])
        # Sensor noise tiles, reused with random shifts: generating fresh Gaussian noise per 720p frame costs more
        # than the rest of the effects together.
        self._noise = [rng.normal(0.0, look.noise_sigma, (height, width, 3)).astype(np.float32) for _ in range(2)]
        self._seed = seed

    def apply(self, image: ImageArray, frame_index: int) -> ImageArray:
        rng = np.random.default_rng([self._seed, frame_index])
        out = cv2.merge([cv2.LUT(channel, lut) for channel, lut in zip(cv2.split(image), self._luts, strict=True)])
        if self.look.blur_sigma_px > 0.2:
            out = cv2.GaussianBlur(out, (0, 0), self.look.blur_sigma_px)
        noise = np.roll(self._noise[frame_index % 2], (int(rng.integers(0, 64)), int(rng.integers(0, 64))), (0, 1))
        mixed = out.astype(np.float32) * self._vignette + noise
        out = np.clip(mixed, 0, 255).astype(np.uint8)
        quality = int(np.clip(self.look.jpeg_quality + rng.integers(-5, 6), 10, 100))
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise RuntimeError("JPEG encoding failed")
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return np.asarray(decoded, np.uint8)
