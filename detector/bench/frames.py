"""The frames every contender gets: real street photos (or synthetic scenes) at 720p/1080p, JPEG-encoded once.

Deterministic: the same photos in the same order, resized the same way, so two runs (and the service and the
baseline within one run) see byte-identical JPEGs. Dataset images are read in place and never written out.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from detector.types import ImageArray

RESOLUTIONS: dict[str, tuple[int, int]] = {"720p": (1280, 720), "1080p": (1920, 1080), "480p": (854, 480)}
PHOTO_DIRS = ("city-garbage/images/train", "potholes/images")
JPEG_QUALITY = 90
_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass
class FrameSet:
    """``count`` frames at one resolution: the JPEG bytes sent over the wire and the decoded pixels."""

    resolution: str
    width: int
    height: int
    source: str  # "photos:<dir>" or "synthetic"
    jpegs: list[bytes]
    images: list[ImageArray] = field(repr=False)

    @property
    def mean_jpeg_kb(self) -> float:
        return sum(len(j) for j in self.jpegs) / max(len(self.jpegs), 1) / 1024


def parse_resolution(name: str) -> tuple[int, int]:
    """``720p``/``1080p``/``480p`` or ``WIDTHxHEIGHT``."""
    if name in RESOLUTIONS:
        return RESOLUTIONS[name]
    width, sep, height = name.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit():
        raise ValueError(f"resolution {name!r}: use one of {', '.join(RESOLUTIONS)} or WIDTHxHEIGHT")
    return int(width), int(height)


def find_photos(datasets: Path, count: int) -> list[Path]:
    """Up to ``count`` photos, alternating between the dataset folders so both kinds of street scene appear."""
    per_dir = [sorted(p for p in (datasets / d).rglob("*") if p.suffix.lower() in _SUFFIXES) for d in PHOTO_DIRS]
    chosen: list[Path] = []
    for i in range(count):
        for files in per_dir:
            if i < len(files) and len(chosen) < count:
                chosen.append(files[i])
    return chosen


def build_frames(resolution: str, count: int, datasets: Path | None, quiet: bool = False) -> FrameSet:
    """``count`` frames at ``resolution``, from photos under ``datasets`` when there are any, else synthetic."""
    width, height = parse_resolution(resolution)
    photos = find_photos(datasets, count) if datasets is not None and datasets.is_dir() else []
    if photos:
        images = [_fill(_read(p), width, height) for p in photos]
        images = [images[i % len(images)] for i in range(count)]
        source = f"photos:{datasets}"
    else:
        if not quiet:
            print(
                f"bench: no photos under {datasets} ({' or '.join(PHOTO_DIRS)}); using synthetic street scenes, "
                "which the model finds little in (speed is still measured on real JPEGs of that size)",
                file=sys.stderr,
            )
        images = [synthetic_scene(width, height, seed=i) for i in range(count)]
        source = "synthetic"
    jpegs = [_encode(im) for im in images]
    # What the service decodes is the JPEG, not the original pixels: every contender works on these.
    decoded = [np.asarray(cv2.imdecode(np.frombuffer(j, np.uint8), cv2.IMREAD_COLOR), dtype=np.uint8) for j in jpegs]
    return FrameSet(resolution, width, height, source, jpegs, decoded)


def synthetic_scene(width: int, height: int, seed: int) -> ImageArray:
    """A street-like picture (sky, road, kerb, boxes, texture) whose JPEG is about the size of a real photo's."""
    rng = np.random.default_rng(seed)
    image = np.empty((height, width, 3), dtype=np.uint8)
    horizon = int(height * rng.uniform(0.3, 0.45))
    image[:horizon] = (200, 170, 140)
    ramp = np.linspace(60, 110, height - horizon, dtype=np.float32)[:, None, None]
    image[horizon:] = np.clip(ramp + rng.normal(0, 6, (height - horizon, width, 1)), 0, 255).astype(np.uint8)
    for _ in range(12):  # boxes on the road: stalls, bins, piles
        x, y = int(rng.integers(0, width)), int(rng.integers(horizon, height))
        w, h = int(rng.integers(width // 40 + 1, width // 6 + 2)), int(rng.integers(height // 30 + 1, height // 5 + 2))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(image, (x, y), (min(x + w, width - 1), min(y + h, height - 1)), colour, -1)
    noise = rng.normal(0, 4, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def _read(path: Path) -> ImageArray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read photo {path}")
    return np.asarray(image, dtype=np.uint8)


def _fill(image: ImageArray, width: int, height: int) -> ImageArray:
    """Scale to cover ``width``x``height`` and crop the centre: no distortion, no borders."""
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    size = (max(width, round(w * scale)), max(height, round(h * scale)))
    resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top = (resized.shape[0] - height) // 2
    left = (resized.shape[1] - width) // 2
    return np.ascontiguousarray(resized[top : top + height, left : left + width])


def _encode(image: ImageArray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())
