"""Near-duplicate grouping of images by perceptual hash, so that no near-copy straddles a train/val split."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt


def dhash(path: Path, size: int = 8) -> int:
    """64-bit difference hash of an image: robust to resizing, JPEG re-encoding and small colour changes."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    small = cv2.resize(image, (size + 1, size), interpolation=cv2.INTER_AREA)
    bits = (small[:, 1:] > small[:, :-1]).flatten()
    return int(np.packbits(bits).view(">u8")[0])


def copy_stem(path: Path, separator: str) -> str:
    """The part of a file name before ``separator`` (Roboflow's augmented copies share it: ``a_png.rf.<hash>``)."""
    name = path.name
    return name.split(separator, 1)[0] if separator in name else path.stem


def group_near_duplicates(
    hashes: Sequence[int], max_hamming: int, same_scene: Sequence[str] | None = None
) -> npt.NDArray[np.int64]:
    """Union images whose hashes differ in at most ``max_hamming`` bits; returns a group id per image.

    ``same_scene`` (optional, one key per image) also unions images that share a key: augmented copies of one
    scene (flipped, rotated, cropped) are not near-duplicates by hash but must still stay on one side.
    Grouping is transitive (A~B and B~C puts all three together), which is what a split needs: no member of a
    group may land on the other side from any other.
    """
    n = len(hashes)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    values = np.array(hashes, dtype=np.uint64)
    for i in range(n - 1):
        xor = np.bitwise_xor(values[i + 1 :], values[i])
        distance = np.bitwise_count(xor)
        for j in np.nonzero(distance <= max_hamming)[0]:
            union(i, i + 1 + int(j))
    first_of: dict[str, int] = {}
    for i, key in enumerate(same_scene or []):
        union(first_of.setdefault(key, i), i)
    return np.array([find(i) for i in range(n)], dtype=np.int64)
