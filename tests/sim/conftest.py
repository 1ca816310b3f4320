"""Small renders of the named scenarios, made once per test session (a few seconds each at 320x180)."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.sim.runner import RenderSummary, render_scenario
from detector.sim.truth import Truth

W, H = 320, 180


@pytest.fixture(scope="session")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[RenderSummary, Truth]:
    """market-street, 4 minutes at 1 frame per second, without video."""
    out = tmp_path_factory.mktemp("market")
    summary = render_scenario(
        "market-street", out, seed=0, minutes=4, fps=1.0, video=False, progress=False, width=W, height=H
    )
    return summary, Truth.load(out / "truth.json")


@pytest.fixture(scope="session")
def drone(tmp_path_factory: pytest.TempPathFactory) -> tuple[RenderSummary, Truth]:
    """The whole drone-patrol flight at 1 frame per second, with video and .SRT."""
    out = tmp_path_factory.mktemp("drone")
    summary = render_scenario("drone-patrol", out, seed=0, fps=1.0, progress=False, width=W, height=H)
    return summary, Truth.load(out / "truth.json")


def folder(summary: RenderSummary) -> Path:
    return summary.out_dir
