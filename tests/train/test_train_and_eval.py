"""`detector train` and `detector eval` through the real CLI and ultralytics, on a handful of real photos."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from detector.config import DEFAULT_WEIGHTS
from detector.train.evaluate import evaluate
from tests.conftest import shared_path

NAMES = {0: "garbage", 1: "garbage_bin", 2: "overflow"}
# A training run small enough for a test: one epoch of 64 px images on the CPU, no cache, no workers.
TINY_RUN = {"imgsz": 64, "epochs": 1, "batch": 4, "workers": 0, "cache": "none", "device": "cpu", "work_dir": "work"}


def _mini_dataset(root: Path, n: int, displace: bool = False) -> Path:
    """``n`` city-garbage photos as a YOLO dataset; ``displace`` moves every box to the opposite corner."""
    source = shared_path("datasets", "city-garbage")
    images = sorted((source / "images" / "train").glob("*.jpg"))[:n]
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for image in images:
            (root / "images" / split / image.name).symlink_to(image)
            lines = (source / "labels" / "train" / f"{image.stem}.txt").read_text().splitlines()
            if displace:
                lines = [_displaced(line) for line in lines]
            (root / "labels" / split / f"{image.stem}.txt").write_text("\n".join(lines) + "\n")
    data = root / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/val", "names": NAMES}))
    return data


def _displaced(line: str) -> str:
    cls, cx, cy, w, h = line.split()[:5]
    small_w, small_h = min(float(w), 0.05), min(float(h), 0.05)
    return f"{cls} {1 - float(cx):.4f} {1 - float(cy):.4f} {small_w:.4f} {small_h:.4f}"


def test_eval_scores_true_labels_far_above_displaced_ones(tmp_path):
    true = evaluate(DEFAULT_WEIGHTS, _mini_dataset(tmp_path / "true", 24))
    wrong = evaluate(DEFAULT_WEIGHTS, _mini_dataset(tmp_path / "wrong", 24, displace=True))
    assert true.images == wrong.images == 24
    # The table covers the model's whole class list (read back from the checkpoint); classes the data.yaml does
    # not label are listed with no instances and zero scores.
    model_names = list(torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=False)["model"].names.values())
    assert [c.name for c in true.classes] == [c.name for c in wrong.classes] == model_names
    assert model_names[:3] == list(NAMES.values())
    for c in true.classes[len(NAMES) :]:
        assert c.instances == 0 and c.map50 == 0.0, c
    assert sum(c.instances for c in true.classes) == sum(c.instances for c in wrong.classes) > 0
    assert true.map50 > 0.05 and wrong.map50 < 0.01, (true.map50, wrong.map50)
    assert 0.0 <= true.map50_95 <= true.map50 <= 1.0
    assert "| **all** | 24 |" in true.table()


def test_train_writes_a_checkpoint_with_the_unified_names_and_eval_reads_it(tmp_path):
    data = _mini_dataset(tmp_path / "mini", 8)
    config = {
        "name": "tiny",
        "seed": 0,
        "classes": ["garbage", "garbage_bin", "overflow", "pothole"],
        **TINY_RUN,
        "output": "tiny.pt",
        "sources": [
            {
                "name": "mini",
                "path": str(data.parent),
                "classes": {"garbage": "garbage", "garbage_bin": "garbage_bin", "overflow": "overflow"},
                "val_fraction": 0.25,
            }
        ],
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = [sys.executable, "-m", "detector.cli"]
    trained = subprocess.run([*cli, "train", "--config", str(path)], capture_output=True, text=True, timeout=600)
    assert trained.returncode == 0, trained.stderr[-3000:]
    checkpoint = tmp_path / "tiny.pt"
    assert f"best checkpoint written to {checkpoint}" in trained.stdout
    names = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"].names
    assert names == {0: "garbage", 1: "garbage_bin", 2: "overflow", 3: "pothole"}
    summary = json.loads(checkpoint.with_suffix(".train.json").read_text())
    assert summary["config"]["seed"] == 0 and summary["config"]["epochs"] == 1

    assembled = tmp_path / "work" / "dataset" / "data.yaml"
    scored = subprocess.run(
        [*cli, "eval", "--weights", str(checkpoint), "--data", str(assembled), "--imgsz", "64", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert scored.returncode == 0, scored.stderr[-3000:]
    report = json.loads(scored.stdout)
    assert [c["name"] for c in report["classes"]] == ["garbage", "garbage_bin", "overflow", "pothole"]
    assert report["images"] >= 1


def test_eval_and_train_refuse_missing_files(tmp_path):
    cli = [sys.executable, "-m", "detector.cli"]
    missing = subprocess.run(
        [*cli, "eval", "--weights", str(tmp_path / "no.pt"), "--data", "x.yaml"], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "weights file not found" in missing.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nclasses: [a]\noutput: o.pt\nsources: []\nepochs: -1\n")
    refused = subprocess.run([*cli, "train", "--config", str(bad)], capture_output=True, text=True)
    assert refused.returncode == 2 and "epochs" in refused.stderr


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YOLO_OFFLINE", "1")


def _train_from(tmp_path: Path, name: str, init: Path, classes: list[str], **extra: object) -> dict:
    """Train 1 tiny epoch at lr 1e-6 (the checkpoint still shows where it started) from ``init``; its checkpoint."""
    data = _mini_dataset(tmp_path / "mini", 8)
    config = {
        "name": name,
        "classes": classes,
        "init_weights": str(init),
        **TINY_RUN,
        "lr0": 1e-6,
        "warmup_epochs": 0,
        **extra,
        "output": f"{name}.pt",
        "sources": [
            {"name": "mini", "path": str(data.parent), "classes": {"garbage": "garbage"}, "val_fraction": 0.25}
        ],
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    trained = subprocess.run(
        [sys.executable, "-m", "detector.cli", "train", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    ckpt: dict = torch.load(tmp_path / f"{name}.pt", map_location="cpu", weights_only=False)
    return ckpt


def test_training_starts_from_the_coco_pretrained_checkpoint_with_our_classes_and_augmentation(tmp_path):
    pretrained = shared_path("pretrained", "yolo11n-coco.pt")
    config = {"classes": ["garbage", "garbage_bin", "overflow", "pothole", "stall"]}
    augment = {"flipud": 0.0, "fliplr": 0.25, "mosaic": 0.5, "close_mosaic": 1}
    ckpt = _train_from(tmp_path, "from-coco", pretrained, config["classes"], augment=augment)
    coco = torch.load(pretrained, map_location="cpu", weights_only=False)
    ours, theirs = ckpt["model"].float().state_dict(), coco["model"].float().state_dict()
    assert ckpt["model"].names == dict(enumerate(config["classes"]))
    # The backbone is COCO's; the class head is new, sized for our 5 classes instead of COCO's 80.
    first = "model.0.conv.weight"
    torch.testing.assert_close(ours[first], theirs[first], atol=2e-3, rtol=1e-2)
    head = [k for k in ours if k.startswith("model.23.cv3.") and k.endswith(".weight") and ours[k].shape[0] == 5]
    assert head and all(theirs[k].shape[0] == 80 for k in head)
    args = ckpt["train_args"]
    assert (args["flipud"], args["fliplr"], args["mosaic"], args["close_mosaic"]) == (0.0, 0.25, 0.5, 1)


def test_fine_tuning_one_of_our_checkpoints_keeps_its_class_head(tmp_path):
    """init_weights with the same class list (v5 from v4): the whole checkpoint, class head included, is the start."""
    start = torch.load(DEFAULT_WEIGHTS, map_location="cpu", weights_only=False)
    classes = [start["model"].names[i] for i in range(len(start["model"].names))]
    ours = _train_from(tmp_path, "from-ours", DEFAULT_WEIGHTS, classes)["model"].float().state_dict()
    theirs = start["model"].float().state_dict()
    head = [k for k in theirs if k.startswith("model.23.cv3.") and k.endswith(".weight")]
    assert head
    for k in head:  # the class head came over too (a start from config.model would have drawn it at random)
        torch.testing.assert_close(ours[k], theirs[k], atol=2e-3, rtol=1e-2)
