"""The hard-negative source kind of the training config: what it accepts and what it refuses, with a message."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from detector.train.config import HardNegativeSource, TrainConfig
from detector.train.dataset import list_hard_negatives


def _folder(tmp_path: Path, label: str | None) -> Path:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "images" / "a.jpg.partial").write_bytes(b"")  # a save cut short: not an image
    if label is not None:
        (tmp_path / "labels" / "a.txt").write_text(label)
    return tmp_path


@pytest.mark.parametrize("label", [None, "", "\n"])
def test_images_are_backgrounds_without_boxes(tmp_path: Path, label: str | None) -> None:
    images = list_hard_negatives(HardNegativeSource(kind="hard_negatives", name="hn", path=_folder(tmp_path, label)))
    assert [(i.path.name, i.boxes) for i in images] == [("a.jpg", [])]


def test_a_labelled_hard_negative_is_refused(tmp_path: Path) -> None:
    source = HardNegativeSource(kind="hard_negatives", name="hn", path=_folder(tmp_path, "0 0.5 0.5 0.2 0.2\n"))
    with pytest.raises(ValueError, match="a hard negative is a background and has no boxes"):
        list_hard_negatives(source)


def test_a_folder_without_images_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a folder of images"):
        list_hard_negatives(HardNegativeSource(kind="hard_negatives", name="hn", path=tmp_path))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"name": "hn", "path": "x"}, "kind"),
        ({"kind": "hard_negatives", "name": "hn", "path": "x", "classes": {"a": "b"}}, "Extra inputs"),
        ({"kind": "hard_negatives", "name": "hn", "path": "x", "val_fraction": 1.0}, "less than 1"),
    ],
)
def test_config_mistakes_fail_with_a_readable_message(source: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TrainConfig.model_validate({"name": "t", "classes": ["garbage"], "output": "o.pt", "sources": [source]})
