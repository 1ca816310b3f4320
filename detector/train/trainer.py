"""`detector train`: assemble the unified dataset and run ultralytics training, offline and seeded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from detector import yolo_env
from detector.train.config import TrainConfig
from detector.train.dataset import SimRenderer, assemble


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def train(config: TrainConfig, resume: bool = False, render_sim: SimRenderer | None = None) -> Path:
    """Train and copy the best checkpoint to ``config.output``; returns that path.

    With ``resume`` the last checkpoint of the same run continues (same dataset, same schedule).
    """
    yolo_env.prepare()
    from ultralytics.models.yolo.model import YOLO

    runs = config.work_dir / "runs"
    last = runs / config.name / "weights" / "last.pt"
    if resume:
        if not last.exists():
            raise FileNotFoundError(f"nothing to resume: {last} does not exist")
        model = YOLO(str(last))
        model.train(resume=True)
    else:
        data_yaml = assemble(config, render_sim)
        model = _initial_model(YOLO, config)
        model.train(**train_arguments(config, data_yaml, runs))
    best = runs / config.name / "weights" / "best.pt"
    config.output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(best, config.output)
    summary = {"config": json.loads(config.model_dump_json()), "checkpoint": str(config.output)}
    config.output.with_suffix(".train.json").write_text(json.dumps(summary, indent=2))
    return config.output


def _initial_model(yolo: Any, config: TrainConfig) -> Any:
    """The model to train: ``config.model`` with ``init_weights`` loaded where shapes match (a COCO start: the class
    head is new), or, when ``init_weights`` is a checkpoint of this very class list (fine-tuning one of ours), that
    checkpoint whole, class head included."""
    if config.init_weights is None:
        return yolo(config.model)
    start = yolo(str(config.init_weights))
    names = [str(n) for _, n in sorted(dict(start.names).items())]
    if names == list(config.classes):
        return start
    model = yolo(config.model)
    model.load(str(config.init_weights))
    return model


def train_arguments(config: TrainConfig, data_yaml: Path, runs: Path) -> dict[str, Any]:
    return {
        "data": str(data_yaml),
        "epochs": config.epochs,
        "imgsz": config.imgsz,
        "batch": config.batch,
        "workers": config.workers,
        "device": resolve_device(config.device),
        "seed": config.seed,
        "deterministic": True,
        "patience": config.patience,
        "optimizer": config.optimizer,
        "lr0": config.lr0,
        "warmup_epochs": config.warmup_epochs,
        **config.augment.model_dump(),
        "cache": False if config.cache == "none" else config.cache,
        "project": str(runs),
        "name": config.name,
        "exist_ok": True,
        "plots": True,
        "verbose": True,
    }
