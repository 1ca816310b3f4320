"""Incident latency on a tiny scripted scenario: the real service (colour-blob engine), rules, store and
Subscribe; a stall appears at 2 s in a no-vending zone with a dwell of 3 s."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from detector.bench.__main__ import main
from tests.api.scripted import RED, T0, H, W, scene, write_spec

APPEAR_S, DWELL_S, FPS, SECONDS = 2.0, 3.0, 2.0, 10.0
BOX = (100, 150, 140, 190)


def write_scenario(folder: Path) -> Path:
    """Frames as PNGs (lossless, so the colour engine sees exactly the patch) and the truth the bench reads."""
    frames_dir = folder / "frames"
    frames_dir.mkdir(parents=True)
    truth_frames = []
    for i in range(int(SECONDS * FPS)):
        t_s = i / FPS
        present = t_s >= APPEAR_S
        cv2.imwrite(str(frames_dir / f"{i:04d}.png"), scene([(RED, BOX)] if present else []))
        truth_frames.append({"index": i, "t_s": t_s, "objects": [{"id": 7, "box": list(BOX)}] if present else []})
    truth = {
        "scenario": "tiny-stall",
        "source_id": "cam-1",
        "fps": FPS,
        "start_ts": T0,
        "dwell_s": DWELL_S,
        "width": W,
        "height": H,
        "files": {"video": "frames", "srt": None},
        "objects": [{"id": 7, "class": "stall", "appear_s": APPEAR_S, "leave_s": None}],
        "frames": truth_frames,
    }
    (folder / "truth.json").write_text(json.dumps(truth))
    return folder


def service_settings(tmp_path: Path) -> list[str]:
    rules = (
        "{categories: {ROAD_OCCUPYING_STALL: {classes: [stall], case_code: '200501', label: stall, "
        "severity: medium, rule: dwell}}, default_source: {dwell_s: 3, zones: [{id: no-vending, "
        f"polygon_px: [[0, 120], [{W}, 120], [{W}, {H}], [0, {H}]], prohibited_classes: [stall]}}], "
        "confirm: {}}}"
    )
    spec = write_spec(tmp_path / "blobs.yaml")
    return ["model.backend=colour-blobs", f"model.weights={spec}", f"rules={rules}"]


def test_incident_latency_of_a_scripted_stall(tmp_path: Path, capsys):
    scenario = write_scenario(tmp_path / "tiny-stall")
    argv = ["incident-latency", "--scenario", str(scenario), "--speed", "0", "--device", "cpu"]
    argv += ["--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    for item in service_settings(tmp_path):
        argv += ["--set", item]
    assert main(argv) == 0, capsys.readouterr().err
    [report_path] = (tmp_path / "out").rglob("incident_latency-tiny-stall.json")
    report = json.loads(report_path.read_text())
    assert report["frames_sent"] == int(SECONDS * FPS)
    assert report["never_opened"] == [] and report["unmatched_events"] == []
    [incident] = report["incidents"]
    assert incident["object_id"] == 7 and incident["cls"] == "stall"
    # Seen from its first frame, opened on the frame the dwell completed: no detection or confirmation delay.
    assert abs(incident["detect_and_confirm_s"]) <= 1 / FPS
    assert 0 < incident["system_s"] < 30
    assert report["total_ms"]["p50_ms"] == pytest.approx(incident["total_s"] * 1e3)
    assert (report_path.with_suffix(".md")).read_text().startswith("# Incident latency: tiny-stall")
    assert "incident latency (tiny-stall): p50" in capsys.readouterr().out
