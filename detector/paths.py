"""Where the repository's own files are (the committed model and the caches beside it), and the read-only
``../shared`` folder beside the checkout (datasets, the pretrained model)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = REPO_ROOT / "weights" / "streetwatch-v5.pt"
SHARED_ROOT = REPO_ROOT.parent / "shared"
