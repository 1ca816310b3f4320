"""Make ultralytics run with no network access.

Ultralytics fetches a font on every train/val run and probes the network on import. We point it at a config
directory of our own that already holds a font, and set its offline flag, before anything imports it.
Every module that imports ultralytics calls :func:`prepare` first.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

_DEFAULT_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "streetwatch" / "ultralytics"


def prepare() -> Path:
    """Set YOLO_OFFLINE and YOLO_CONFIG_DIR (unless the caller set them) and put a font there."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    config_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(_DEFAULT_DIR)))
    font = config_dir / "Ultralytics" / "Arial.ttf"
    if not font.exists():
        font.parent.mkdir(parents=True, exist_ok=True)
        # Any TTF will do: ultralytics only draws labels on plots with it. matplotlib ships DejaVuSans.
        import matplotlib

        source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        tmp = font.with_suffix(".tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(font)
    return config_dir
