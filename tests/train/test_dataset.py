"""Dataset assembly from the real ../shared datasets: one class list, and no near-duplicate across the split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from detector.train.config import TrainConfig, load_train_config
from detector.train.dataset import assemble
from detector.train.neardup import dhash
from tests.conftest import shared_path

CLASSES = ["garbage", "garbage_bin", "overflow", "pothole"]


def _config(tmp_path: Path, **extra: object) -> Path:
    config = {
        "name": "t",
        "classes": CLASSES,
        "output": "out.pt",
        "work_dir": str(tmp_path / "work"),
        "sources": [
            {
                "name": "city-garbage",
                "path": str(shared_path("datasets", "city-garbage")),
                "classes": {"garbage": "garbage", "garbage_bin": "garbage_bin", "overflow": "overflow"},
                "val_fraction": 0.15,
            },
            {
                "name": "potholes",
                "path": str(shared_path("datasets", "potholes")),
                "classes": {"pothole": "pothole"},
                "use_source_val": True,
            },
        ],
        **extra,
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def assembled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return assemble(load_train_config(_config(tmp_path_factory.mktemp("assemble"))))


def _hashes(folder: Path) -> np.ndarray:
    return np.array([dhash(p) for p in sorted(folder.iterdir())], dtype=np.uint64)


def test_the_dataset_has_one_class_list_and_remapped_labels(assembled):
    data = yaml.safe_load(assembled.read_text())
    assert data["names"] == dict(enumerate(CLASSES))
    labels = assembled.parent / "labels"
    pothole_ids = {int(line.split()[0]) for f in labels.rglob("potholes__*.txt") for line in f.read_text().splitlines()}
    garbage_ids = {
        int(line.split()[0]) for f in labels.rglob("city-garbage__*.txt") for line in f.read_text().splitlines()
    }
    assert pothole_ids == {3}, "the pothole source's class 0 is the unified class 3"
    assert garbage_ids == {0, 1, 2}


def test_no_near_duplicate_straddles_the_split(assembled):
    root = assembled.parent / "images"
    train, val = _hashes(root / "train"), _hashes(root / "val")
    assert len(val) > 0.1 * (len(train) + len(val))
    # Popcount of XOR for every (val, train) pair: the smallest must exceed the near-duplicate threshold.
    closest = 64
    for h in val:
        xor = np.bitwise_xor(train, h)
        bits = np.unpackbits(xor.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)
        closest = min(closest, int(bits.min()))
    assert closest > 5


def test_the_pothole_source_keeps_its_own_val_split(assembled):
    own_val = {p.stem for p in shared_path("datasets", "potholes", "images", "val").iterdir()}
    ours = {p.stem.removeprefix("potholes__") for p in (assembled.parent / "images" / "val").glob("potholes__*")}
    assert own_val <= ours


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"classes": ["garbage"]}, "maps to classes not in .classes."),
        ({"epochs": 0}, "epochs"),
        ({"optimiser": "sgd"}, "optimiser"),
    ],
)
def test_bad_training_configs_name_the_problem(tmp_path, extra, message):
    with pytest.raises((ValidationError, ValueError), match=message):
        load_train_config(_config(tmp_path, **extra))


def test_relative_paths_are_taken_from_the_config_folder(tmp_path):
    config: TrainConfig = load_train_config(_config(tmp_path, init_weights="w/start.pt"))
    assert config.init_weights == (tmp_path / "w" / "start.pt").resolve()
    assert config.output == (tmp_path / "out.pt").resolve()
