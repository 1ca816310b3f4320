"""`detector bench` arguments, and the commands that say what they need instead of failing obscurely."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from detector.bench.__main__ import main


def parse(*argv: str) -> argparse.Namespace:
    from detector.bench.cli import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["bench", *argv])


def test_throughput_defaults_follow_the_issue():
    args = parse("throughput")
    assert args.streams == (1, 4, 16, 64)
    assert args.resolutions == ("720p", "1080p")
    assert args.backends == ("torch", "onnx")
    assert args.variants == []
    from detector.config import load_config

    assert args.imgsz == load_config(None, environ={}).model.imgsz, "benchmarks run at the service's input size"


def test_lists_and_variants_parse():
    args = parse(
        "throughput",
        "--streams",
        "1,4",
        "--batch",
        "2,8",
        "--variant",
        "b4:batching.max_batch=4,batching.max_wait_ms=5",
    )
    assert args.streams == (1, 4) and args.batch == (2, 8)
    assert args.variants == [("b4", ("batching.max_batch=4", "batching.max_wait_ms=5"))]


def test_a_tiling_run_is_a_variant_whose_settings_the_service_accepts():
    from detector.config import load_config

    args = parse("throughput", "--tiling", "640:128")
    ((name, sets),) = args.tilings
    assert name == "tiled-640"
    tiling = load_config(None, environ={}, overrides=list(sets)).tiling
    assert tiling.default != "off" and tiling.default.tile_px == 640 and tiling.default.overlap_px == 128


@pytest.mark.parametrize(
    "argv",
    [
        ("throughput", "--tiling", "640"),
        ("throughput", "--tiling", "640:640"),
        ("throughput", "--streams", "1,x"),
        ("throughput", "--streams", "0"),
        ("throughput", "--variant", "no-settings"),
        ("throughput", "--variant", "b4:batching.max_batch"),
        ("incident-latency",),  # --scenario is required
    ],
)
def test_bad_arguments_are_rejected(argv, capsys):
    with pytest.raises(SystemExit):
        parse(*argv)
    assert "error" in capsys.readouterr().err


def test_accuracy_without_data_says_what_it_needs(capsys, tmp_path: Path):
    assert main(["accuracy", "--out", str(tmp_path)]) == 2
    assert "needs --data" in capsys.readouterr().err


def test_accuracy_with_a_scenario_but_no_scorer_says_the_scorer_is_missing(capsys, tmp_path: Path, monkeypatch):
    monkeypatch.setattr("detector.bench.accuracy.find_scorer", lambda: None)
    assert main(["accuracy", "--scenario", str(tmp_path), "--out", str(tmp_path / "out")]) == 0
    assert "score_scenario" in capsys.readouterr().err
    written = list((tmp_path / "out").rglob("accuracy.md"))
    assert written and "not measured" in written[0].read_text()


def test_incident_latency_without_a_rendered_scenario_says_what_it_needs(capsys, tmp_path: Path):
    assert main(["incident-latency", "--scenario", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "truth.json" in capsys.readouterr().err


def test_a_bad_service_setting_is_named_before_anything_runs(capsys, tmp_path: Path):
    argv = ["throughput", "--out", str(tmp_path), "--set", "batching.max_bath=4", "--no-progress", "--device", "cpu"]
    assert main(argv) == 2
    assert "batching.max_bath" in capsys.readouterr().err


def test_all_takes_the_throughput_and_accuracy_options():
    args = parse("all", "--streams", "1", "--data", "a.yaml", "--data", "b.yaml")
    assert args.streams == (1,) and args.data == [Path("a.yaml"), Path("b.yaml")]
    assert args.scenario is None and args.speed == 0.0 and args.target is None
