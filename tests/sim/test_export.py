"""`detector sim export-yolo`: a rendered scenario's decoded frames with the truth's boxes as YOLO labels."""

from __future__ import annotations

import cv2
import pytest
import yaml

from detector.sim.export import export_yolo
from tests.sim.conftest import folder

CLASSES = ["garbage", "garbage_bin", "overflow", "pothole", "stall", "cart", "goods"]


def test_export_writes_each_sampled_frame_with_the_visible_truth_boxes(drone, tmp_path):
    summary, truth = drone
    out = tmp_path / "yolo"
    exported = export_yolo(folder(summary), out, CLASSES, every_s=10.0, min_visibility=0.5, progress=False)
    sampled = [f for f in truth.frames if any(abs(f.t_s - k * 10.0) < 1e-6 for k in range(1000))]
    assert exported.images == len(sampled) > 2
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(CLASSES))
    label_of = {o.id: o.cls for o in truth.objects}
    total = 0
    for frame in sampled:
        image = cv2.imread(str(out / "images" / "val" / f"{truth.scenario}_{frame.index:06d}.jpg"))
        assert image.shape[:2] == (truth.height, truth.width)
        rows = [line.split() for line in (out / "labels" / "val" / f"{truth.scenario}_{frame.index:06d}.txt")
                .read_text().splitlines()]  # fmt: skip
        expected = []
        for b in frame.objects:
            if b.visible_box is None or b.visibility < 0.5:
                continue
            x1, y1, x2, y2 = b.visible_box
            if min(x2 - x1, y2 - y1) >= 8.0:
                expected.append((CLASSES.index(label_of[b.id]), (x1 + x2) / 2 / truth.width))
        got = sorted((int(r[0]), float(r[1])) for r in rows)
        assert [c for c, _ in got] == sorted(c for c, _ in expected)
        for (_, cx), (_, ex) in zip(got, sorted(expected), strict=True):
            assert cx == pytest.approx(ex, abs=1e-5)
        total += len(rows)
    assert sum(exported.instances.values()) == total


def test_export_refuses_a_scenario_without_video(market, tmp_path):
    summary, _ = market  # rendered with video=False
    with pytest.raises(ValueError, match="no video"):
        export_yolo(folder(summary), tmp_path / "yolo", CLASSES, progress=False)


def test_tiled_export_labels_each_tile_with_the_boxes_mostly_inside_it(drone, tmp_path):
    from detector.inference.tiling import TilingSpec, plan_tiles

    summary, truth = drone
    spec = TilingSpec(tile_px=192, overlap_px=32, full_frame=False)
    whole = export_yolo(folder(summary), tmp_path / "whole", CLASSES, every_s=10.0, progress=False)
    tiled = export_yolo(folder(summary), tmp_path / "tiled", CLASSES, every_s=10.0, progress=False, tile=spec)
    tiles = plan_tiles(truth.height, truth.width, spec)
    assert len(tiles) > 1
    assert tiled.images == whole.images * len(tiles)
    image = cv2.imread(str(next((tmp_path / "tiled" / "images" / "val").glob("*_t1.jpg"))))
    assert image.shape[:2] == (tiles[1].y1 - tiles[1].y0, tiles[1].x1 - tiles[1].x0)
    # Every box of the whole frames is labelled in at least one tile (overlap >= its size, or half of it fits).
    assert sum(tiled.instances.values()) >= sum(whole.instances.values()) > 0
    for label in (tmp_path / "tiled" / "labels" / "val").glob("*.txt"):
        for row in label.read_text().splitlines():
            _, cx, cy, w, h = (float(v) for v in row.split())
            x1, x2, y1, y2 = cx - w / 2, cx + w / 2, cy - h / 2, cy + h / 2
            assert x1 >= -1e-6 and y1 >= -1e-6 and x2 <= 1 + 1e-6 and y2 <= 1 + 1e-6, row


def test_a_tile_larger_than_the_frame_exports_each_frame_whole(drone, tmp_path):
    from detector.inference.tiling import TilingSpec

    summary, truth = drone
    big = TilingSpec(tile_px=max(truth.width, truth.height) + 64, overlap_px=32)
    whole = export_yolo(folder(summary), tmp_path / "whole", CLASSES, every_s=10.0, progress=False)
    tiled = export_yolo(folder(summary), tmp_path / "tiled", CLASSES, every_s=10.0, progress=False, tile=big)
    assert tiled.images == whole.images > 0
    assert tiled.instances == whole.instances
