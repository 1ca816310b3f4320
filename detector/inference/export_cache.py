"""Exports of a .pt checkpoint made once into a cache folder: the part every export format shares.

Ultralytics writes an export next to its input, so the checkpoint is copied into the cache folder first: nothing is
written beside the committed weights. The export runs quietly (ultralytics narrates every step), must leave the
expected file behind, and only a complete export is moved into the cache folder.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
from pathlib import Path
from typing import Any

from detector import yolo_env
from detector.inference.engine import EngineError


def export_once(weights: Path, folder: Path, suffix: str, label: str, **export_args: Any) -> Path:
    """``folder / <weights stem><suffix>``: ``YOLO(weights).export(**export_args)`` run on a copy of ``weights`` in
    ``folder``, or the file a previous call left there. ``label`` names the format in errors (e.g. "ONNX")."""
    exported = folder / f"{weights.stem}{suffix}"
    if exported.is_file():
        return exported
    # Built in a sibling folder and renamed into place when complete, so that an export killed half-way (a
    # TensorRT build takes minutes) never leaves a truncated file that would be taken for a cached one.
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    copy = partial / weights.name
    shutil.copyfile(weights, copy)
    yolo_env.prepare()
    from ultralytics.models.yolo.model import YOLO
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel(logging.WARNING)  # the export narrates every step on stdout
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            out = YOLO(str(copy), task="detect").export(verbose=False, **export_args)
    except Exception as exc:  # ultralytics raises many types (assertions, RuntimeError, its own checks)
        raise EngineError(f"{label} export of {weights} failed: {exc}") from exc
    finally:
        LOGGER.setLevel(level)
        copy.unlink(missing_ok=True)
    if not out or Path(out).resolve() != (partial / exported.name).resolve() or not Path(out).is_file():
        raise EngineError(f"{label} export of {weights} produced no file {exported.name} (got {out!r})")
    shutil.rmtree(folder, ignore_errors=True)  # a folder left without its file
    try:
        partial.rename(folder)
    except OSError:  # another process finished the same export first
        shutil.rmtree(partial, ignore_errors=True)
        if not exported.is_file():
            raise
    return exported
