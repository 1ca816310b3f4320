"""Bench frames are deterministic JPEGs of the asked size, from photos or, without them, synthetic scenes."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.bench.frames import build_frames, parse_resolution
from tests.conftest import shared_path


@pytest.mark.parametrize(
    ("name", "size"), [("720p", (1280, 720)), ("1080p", (1920, 1080)), ("320x180", (320, 180)), ("64X48", (64, 48))]
)
def test_parse_resolution(name, size):
    assert parse_resolution(name) == size


@pytest.mark.parametrize("name", ["4k", "x720", "1280x", "1280*720"])
def test_a_bad_resolution_says_what_is_accepted(name):
    with pytest.raises(ValueError, match="720p"):
        parse_resolution(name)


def test_frames_from_photos_are_the_asked_size_and_the_same_every_time():
    datasets = shared_path("datasets")
    first = build_frames("320x180", 5, datasets)
    second = build_frames("320x180", 5, datasets)
    assert first.source.startswith("photos:")
    assert first.jpegs == second.jpegs
    assert len(set(first.jpegs)) == 5
    assert all(im.shape == (180, 320, 3) for im in first.images)


def test_without_photos_the_frames_are_synthetic_and_say_so(tmp_path: Path, capsys):
    frames = build_frames("160x90", 3, tmp_path / "nothing-here")
    assert frames.source == "synthetic"
    assert "synthetic" in capsys.readouterr().err
    assert len(set(frames.jpegs)) == 3 and frames.mean_jpeg_kb > 1
    assert build_frames("160x90", 3, None, quiet=True).jpegs == frames.jpegs
