"""Training configuration (weights/train.yaml), validated by pydantic."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator


class YoloSource(BaseModel):
    """A YOLO-format dataset on disk (a folder with data.yaml, images/ and labels/)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["yolo"] = "yolo"
    name: str = Field(description="Short name; prefixes every image so that sources never collide.")
    path: Path = Field(description="Dataset root holding data.yaml; relative paths are from the config file.")
    classes: dict[str, str] = Field(description="Source class name -> unified class name; unmapped are dropped.")
    use_source_val: bool = Field(
        False, description="Validate on the dataset's own val split (near-duplicates of it leave train)."
    )
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0, description="Share of image groups held out for val.")
    copy_separator: str | None = Field(
        None,
        description="Images whose names share the part before this string (e.g. '.rf.', Roboflow's augmented "
        "copies of one scene) are grouped like near-duplicates: all in train or all in val.",
    )


class SimSource(BaseModel):
    """Simulator composites: street photos or rendered streets with rendered objects of the stall classes."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sim"] = "sim"
    name: str = Field(description="Short name; prefixes every image.")
    images: int = Field(gt=0, description="How many composites to render (train and val together).")
    imgsz: int = Field(640, gt=31, description="Side of each rendered composite in pixels.")
    backgrounds: list[Path] = Field(
        default_factory=list,
        description="Folders of real photos used as backgrounds; empty = rendered streets.",
    )
    classes: list[str] = Field(description="Unified classes this source draws objects of.")
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0, description="Share of composites held out for val.")
    seed: int = Field(0, description="Seed of the composite generator.")
    sprites: Path | None = Field(
        None,
        description="Sprite bank (`detector sim sprites`): people and vehicles drawn as photo cut-outs of its train "
        "split, less those cut from validation photos; none = meshes.",
    )


class HardNegativeSource(BaseModel):
    """Background images with empty labels, e.g. the crops of incidents the case system REJECTED
    (``<store.data_dir>/hard_negatives``, see :mod:`detector.incidents.hard_negatives`): images/ and labels/."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["hard_negatives"] = Field(description="'hard_negatives' (required: it names this kind).")
    name: str = Field(description="Short name; prefixes every image.")
    path: Path = Field(description="Folder holding images/ (and labels/); relative paths are from the config file.")
    val_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="Share held out for val (there they count false positives only)."
    )


class Augment(BaseModel):
    """Ultralytics' augmentation settings that the mix of views decides (the rest keep ultralytics' defaults).

    They apply to every source alike, so they must be valid for the street-level photos and the nadir tiles at
    once: no vertical flips or free rotations (a street photo upside down is not a view any camera has).
    """

    model_config = ConfigDict(extra="forbid")

    fliplr: float = Field(0.5, ge=0.0, le=1.0, description="Probability of a left-right flip.")
    flipud: float = Field(0.0, ge=0.0, le=1.0, description="Probability of an up-down flip.")
    degrees: float = Field(0.0, ge=0.0, le=180.0, description="Random rotation range, +/- degrees.")
    scale: float = Field(0.5, ge=0.0, lt=1.0, description="Random scale gain, +/- this fraction.")
    mosaic: float = Field(1.0, ge=0.0, le=1.0, description="Probability of a 4-image mosaic.")
    close_mosaic: int = Field(10, ge=0, description="Turn mosaic off for this many final epochs.")


class TrainConfig(BaseModel):
    """Everything that decides a training run; committed next to the weights it produced."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Run and checkpoint name, e.g. streetwatch-v1.")
    seed: int = Field(0, description="Seed for the split, the composites and ultralytics.")
    model: str = Field("yolo11n.yaml", description="Architecture yaml (built from scratch, never downloaded).")
    init_weights: Path | None = Field(None, description="Checkpoint to start from instead of random weights.")
    imgsz: int = Field(320, gt=31, description="Training input size in pixels.")
    epochs: int = Field(30, gt=0, description="Training epochs.")
    batch: int = Field(32, gt=0, description="Batch size.")
    workers: int = Field(2, ge=0, description="Data loader workers.")
    device: str = Field("auto", description="'auto' (cuda:0 if present, else cpu), 'cpu' or a CUDA index.")
    patience: int = Field(100, gt=0, description="Stop after this many epochs without improvement.")
    optimizer: Literal["auto", "SGD", "AdamW", "Adam"] = Field(
        "auto", description="Ultralytics optimizer; 'auto' picks a tiny AdamW rate for short runs."
    )
    lr0: float = Field(0.01, gt=0.0, description="Initial learning rate (ignored by optimizer 'auto').")
    warmup_epochs: float = Field(3.0, ge=0.0, description="Learning-rate warm-up in epochs.")
    augment: Augment = Field(default_factory=Augment, description="Augmentation (see Augment).")
    cache: Literal["ram", "disk", "none"] = Field("ram", description="Image cache for the data loader.")
    classes: list[str] = Field(description="Unified class list, in class-id order.")
    near_duplicate_max_hamming: int = Field(
        5,
        ge=0,
        le=32,
        description="dHash bit distance at or under which two images count as near-duplicates.",
    )
    work_dir: Path = Field(Path("../.cache/train"), description="Assembled dataset and ultralytics runs.")
    output: Path = Field(description="Where the best checkpoint is copied, e.g. streetwatch-v1.pt.")
    sources: list[YoloSource | SimSource | HardNegativeSource] = Field(
        description="Datasets merged into the unified class list."
    )

    @model_validator(mode="after")
    def _verify(self) -> TrainConfig:
        verify_source_classes(self)
        verify_unique_source_names(self)
        return self


def verify_source_classes(config: TrainConfig) -> None:
    known = set(config.classes)
    for source in config.sources:
        if isinstance(source, HardNegativeSource):
            continue  # backgrounds: no class of their own
        targets = source.classes.values() if isinstance(source, YoloSource) else source.classes
        unknown = sorted(set(targets) - known)
        if unknown:
            raise ValueError(f"source {source.name!r} maps to classes not in 'classes': {unknown}")


def verify_unique_source_names(config: TrainConfig) -> None:
    names = [s.name for s in config.sources]
    if len(names) != len(set(names)):
        raise ValueError(f"source names must be unique, got {names}")


def load_train_config(path: Path) -> TrainConfig:
    """Read a training config; every relative path in it is taken from the config file's folder."""
    raw = yaml.safe_load(path.read_text())
    config = TrainConfig.model_validate(raw)
    base = path.resolve().parent
    for source in config.sources:
        if isinstance(source, YoloSource | HardNegativeSource):
            source.path = (base / source.path).resolve()
        else:
            source.backgrounds = [(base / b).resolve() for b in source.backgrounds]
            if source.sprites is not None:
                source.sprites = (base / source.sprites).resolve()
    if config.init_weights is not None:
        config.init_weights = (base / config.init_weights).resolve()
    config.work_dir = (base / config.work_dir).resolve()
    config.output = (base / config.output).resolve()
    return config
