"""Dataset assembly from the real ../shared datasets: one class list, and no near-duplicate across the split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from detector.sim.composite import list_backgrounds, render_composites
from detector.train.config import SimSource, TrainConfig, load_train_config
from detector.train.dataset import LabelledImage, assemble
from detector.train.neardup import copy_stem, dhash, group_near_duplicates
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


def test_augmented_copies_of_one_aerial_scene_stay_on_one_side(tmp_path):
    """The aerial export holds each scene three times (flipped, rotated, cropped): copies share the stem before
    '.rf.' and must never be split between train and val, or validation would score remembered scenes."""
    config = {
        "name": "t",
        "classes": ["stall"],
        "output": "out.pt",
        "work_dir": str(tmp_path / "work"),
        "sources": [
            {
                "name": "aerial",
                "path": str(shared_path("datasets", "street-vendors-aerial")),
                "classes": {"vendedor_ambulante": "stall"},
                "val_fraction": 0.15,
                "copy_separator": ".rf.",
            }
        ],
    }
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    data_yaml = assemble(load_train_config(path))
    sides: dict[str, set[str]] = {}
    for split in ("train", "val"):
        for image in (data_yaml.parent / "images" / split).iterdir():
            sides.setdefault(copy_stem(image, ".rf."), set()).add(split)
    assert len(sides) > 250, "about 321 scenes"
    straddling = [stem for stem, where in sides.items() if len(where) > 1]
    assert not straddling, f"scenes on both sides of the split: {straddling[:5]}"
    val = sum(1 for where in sides.values() if where == {"val"})
    assert 0.1 * len(sides) < val < 0.25 * len(sides)
    labels = (data_yaml.parent / "labels").rglob("*.txt")
    assert {line.split()[0] for f in labels for line in f.read_text().splitlines()} == {"0"}


def test_scene_keys_join_images_that_hashes_keep_apart():
    hashes = [0, 2**64 - 1, 0x0F0F0F0F0F0F0F0F, 0xF0F0F0F0F0F0F0F0]  # pairwise far apart
    assert len(set(group_near_duplicates(hashes, 5).tolist())) == 4
    groups = group_near_duplicates(hashes, 5, ["a", "b", "a", "c"]).tolist()
    assert groups[0] == groups[2] and len(set(groups)) == 3


def test_composites_never_use_a_validation_photo_as_background(tmp_path):
    seen: list[frozenset[Path]] = []

    def spy(source: SimSource, classes: list[str], out: Path, exclude: frozenset[Path]) -> list[LabelledImage]:
        seen.append(exclude)
        return render_composites(source, classes, out, exclude, progress=False)

    garbage = shared_path("datasets", "city-garbage")
    config = {
        "name": "t",
        "classes": [*CLASSES, "stall"],
        "output": "out.pt",
        "work_dir": str(tmp_path / "work"),
        "sources": [
            {"name": "city-garbage", "path": str(garbage), "classes": {"garbage": "garbage"}, "val_fraction": 0.15},
            {"kind": "sim", "name": "on-photos", "images": 4, "imgsz": 128, "classes": ["stall"],
             "backgrounds": [str(garbage / "images" / "train")]},
        ],
    }  # fmt: skip
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    data_yaml = assemble(load_train_config(path), spy)
    val = {p.resolve() for p in (data_yaml.parent / "images" / "val").glob("city-garbage__*")}
    assert seen == [frozenset(val)] and len(val) > 300
    backgrounds = list_backgrounds([garbage / "images" / "train"], [*CLASSES, "stall"], frozenset(val))
    assert not {b.image.resolve() for b in backgrounds} & val
    assert len(backgrounds) == len(list((garbage / "images" / "train").iterdir())) - len(val)
