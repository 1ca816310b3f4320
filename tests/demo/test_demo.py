"""`detector demo` end to end on short renders: the real service with the committed weights, the real video
decode (replay of the rendered mp4, the drone with its .SRT), a case-system subscription, the scorer and the
HTML report. Whether the model finds the stalls is measured in weights/MODEL_CARD.md, not here; this test holds
the demo to what it promises: every event the service stored reached the case system and the report, every
ground-truth object is on the map, and a second run reuses the renders.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import yaml

from detector.cli import main

pytestmark = pytest.mark.slow


def _demo(out: Path, cache: Path) -> list[str]:
    argv = ["demo", "--out", str(out), "--cache", str(cache), "--minutes", "4", "--fps", "1", "--size", "320x180"]
    assert main(argv) == 0
    return argv


def test_demo_delivers_every_stored_event_to_the_case_system_and_the_report(tmp_path, capsys):
    out, cache = tmp_path / "demo-data", tmp_path / "cache"
    _demo(out, cache)
    first = capsys.readouterr().out
    assert "rendering market-street" in first and "rendering drone-patrol" in first

    truth_objects = 0
    for name in ("market-street", "drone-patrol"):
        assert f"incident score: {name}" in first
        score = json.loads((out / f"score-{name}.json").read_text())
        truth_dirs = list(cache.glob(f"{name}-*"))
        assert len(truth_dirs) == 1
        truth = json.loads((truth_dirs[0] / "truth.json").read_text())
        violations = {o["id"] for o in truth["objects"] if o["class"] != "garbage_bin"}  # a bin alone is no case
        assert {o["id"] for o in score["objects"]} == violations, "every ground-truth violation is scored"
        truth_objects += len(truth["objects"])

    config = yaml.safe_load((out / "demo-config.yaml").read_text())
    drone = json.loads(next(cache.glob("drone-patrol-*/truth.json")).read_text())["source_id"]
    camera = json.loads(next(cache.glob("market-street-*/truth.json")).read_text())["source_id"]
    assert config["tiling"]["sources"][drone]["tile_px"] > 0, "the drone is tiled"
    assert camera not in config["tiling"]["sources"], "the pole camera is not"

    with sqlite3.connect(out / "data" / "incidents.db") as db:
        stored = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    printed = first.count("case system ← ")
    assert printed == stored, f"the case system printed {printed} events, the store holds {stored}"

    report = (out / "report.html").read_text()
    truth_marks = len(re.findall(r"<title>truth #\d+ ", report))
    scores = [json.loads((out / f"score-{n}.json").read_text()) for n in ("market-street", "drone-patrol")]
    assert truth_marks == truth_objects, "every ground-truth object is drawn on the map"
    located = sum(len({i["incident_id"] for i in s["incidents"]}) for s in scores)
    assert report.count("<title>incident ") == located, "every scored incident is drawn on the map"

    _demo(out, cache)
    second = capsys.readouterr().out
    assert "reusing the rendered market-street" in second and "reusing the rendered drone-patrol" in second
    assert "rendering " not in second
