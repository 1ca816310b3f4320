"""Distractor truth (cars, trucks, people the simulator draws but does not label) and `detector sim realism`."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from detector.sim import cli, objects
from detector.sim.realism import CLASSES, DEFAULT_WEIGHTS, CocoModel, counted, sample_indices
from detector.sim.runner import RenderSummary, render_scenario
from detector.sim.scenery import place
from detector.sim.truth import Truth
from tests.conftest import shared_path
from tests.sim.helpers import H, W, pole_at, renderer, small_world


def sim(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="detector")
    commands = parser.add_subparsers(dest="command", required=True)
    cli.add_commands(commands)
    return cli.run(parser.parse_args(["sim", *argv]))


def test_a_parked_car_gets_a_distractor_box_where_it_is_drawn() -> None:
    world = small_world()
    car = place(world, objects.vehicle(np.random.default_rng(3), "car"), 20.0, -1.6)
    walker = place(world, objects.pedestrian(np.random.default_rng(4)), 24.0, 4.0)
    stall = place(world, objects.stall(np.random.default_rng(5)), 16.0, 4.5, label="stall")
    camera = pole_at(world, 2.0, -4.0, 6.0, 20.0, 0.0)
    plain = renderer(world).render(camera, 0.0)
    view = renderer(world)
    view.distractors = True
    seen = view.render(camera, 0.0)
    assert np.array_equal(plain.image, seen.image) and np.array_equal(plain.ids, seen.ids), "measuring draws nothing"
    assert [b.object_id for b in seen.boxes] == [stall.id] == [b.object_id for b in plain.boxes]
    assert plain.distractors == []
    boxes = {b.object_id: b for b in seen.distractors}
    assert set(boxes) == {car.id, walker.id}
    for obj in (car, walker):
        b = boxes[obj.id]
        x1, y1, x2, y2 = b.box
        assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
        pixels, in_front = camera.project(obj.placed(0.0).vertices)
        assert in_front.all()
        lo, hi = pixels.min(axis=0), pixels.max(axis=0)  # the projected mesh, unclipped: the box is its extent
        assert abs(x1 - max(lo[0], 0)) <= 2 and abs(y1 - max(lo[1], 0)) <= 2
        assert abs(x2 - min(hi[0], W)) <= 2 and abs(y2 - min(hi[1], H)) <= 2
        assert 0 < b.visibility <= 1


def test_rendered_truth_carries_distractors_with_coco_classes(market: tuple[RenderSummary, Truth]) -> None:
    _, truth = market
    boxes = [d for f in truth.frames for d in f.distractors]
    assert boxes, "the market street has traffic and pedestrians"
    assert {d.cls for d in boxes} <= {"car", "truck", "person"} and {"car", "person"} <= {d.cls for d in boxes}
    assert {(d.kind, d.cls) for d in boxes} <= set(objects.COCO_CLASSES.items())
    labelled = {o.id for o in truth.objects}
    for d in boxes:
        assert d.id not in labelled
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 < x2 <= truth.width and 0 <= y1 < y2 <= truth.height
        assert d.visible_box is not None and 0 < d.visibility <= 1
    again = Truth.from_dict(json.loads(json.dumps(truth.to_dict())))  # boxes rounded to 0.1 px on the way
    assert [[(d.id, d.cls, d.kind) for d in f.distractors] for f in again.frames] == [
        [(d.id, d.cls, d.kind) for d in f.distractors] for f in truth.frames
    ]


def test_a_truth_without_distractors_still_loads(market: tuple[RenderSummary, Truth]) -> None:
    summary, _ = market
    data = json.loads((summary.out_dir / "truth.json").read_text())
    for frame in data["frames"]:
        del frame["distractors"]
    old = Truth.from_dict(data)
    assert all(f.distractors == () for f in old.frames)
    assert sum(len(f.objects) for f in old.frames) == summary.boxes


@pytest.fixture(scope="module")
def street_640(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("realism")
    render_scenario("market-street", out, seed=1, minutes=4, fps=0.1, width=640, height=360, progress=False)
    return out


def test_realism_counts_agree_with_a_direct_model_run(
    street_640: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = shared_path("pretrained", "yolo11n-coco.pt")
    assert weights == DEFAULT_WEIGHTS
    sources = sorted(shared_path("datasets", "city-garbage", "images", "train").glob("*.jpg"))[:3]
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sources:
        shutil.copy(p, photos / p.name)
    out = tmp_path / "report" / "market"
    code = sim("realism", "--scenario-dir", str(street_640), "--photos", str(photos), "--every-s", "40",
               "--out", str(out))  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "recall" in printed and all(c in printed for c in CLASSES)
    report = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".md").read_text().startswith("# Simulator realism: market-street")
    truth = Truth.load(street_640 / "truth.json")
    picked = sample_indices(truth, 40.0)
    assert report["frames"] == len(picked) == 6 and report["photos"] == 3

    model = CocoModel(weights, conf=0.25, imgsz=640)
    frame_dets = {c: 0 for c in CLASSES}
    with av.open(str(street_640 / "video.mp4")) as container:
        for k, frame in enumerate(container.decode(video=0)):
            if k in picked:
                for d in model.detect(frame.to_ndarray(format="bgr24")):
                    frame_dets[d.cls] += 1
    photo_dets = {c: 0 for c in CLASSES}
    for p in sorted(photos.iterdir()):
        for d in model.detect(cv2.imread(str(p))):
            photo_dets[d.cls] += 1
    fair = {c: 0 for c in CLASSES}
    for k in picked:
        for d in truth.frames[k].distractors:
            fair[d.cls] += counted(d, 0.5, 16.0)
    assert fair["car"] + fair["person"] > 0, "the 640x360 render has cars or people big enough to count"
    for c in CLASSES:
        row = report["classes"][c]
        assert row["detections"] == frame_dets[c]
        assert row["photo_detections"] == photo_dets[c]
        assert row["truth"] == fair[c]
        assert 0 <= row["matched"] <= min(row["truth"], row["detections"])
        if row["truth"]:
            assert 0.0 <= row["recall"] <= 1.0 and 0.0 <= row["recall_any_class"] <= 1.0
        else:
            assert row["recall"] is None


def test_realism_says_what_is_missing(street_640: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = sim("realism", "--scenario-dir", str(street_640), "--weights", str(tmp_path / "none.pt"), "--photos")
    assert code == 2
    assert "no COCO model at" in capsys.readouterr().err
