"""`detector sim ...` through detector.sim.cli, wired into a parser the way detector/cli.py wires it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from detector.config import load_config
from detector.geo.srt import read_srt
from detector.inference.tiling import TilingSpec
from detector.rules import FixedCamera, MovingCamera
from detector.sim import cli
from tests.sim.test_score import hand_truth


def sim(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="detector")
    commands = parser.add_subparsers(dest="command", required=True)
    cli.add_commands(commands)
    args = parser.parse_args(["sim", *argv])
    assert args.command == "sim"
    return cli.run(args)


def test_render_then_score(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "flight"
    code = sim("render", "--scenario", "drone-patrol", "--out", str(out), "--minutes", "0.05", "--fps", "2",
               "--size", "160x96", "--altitude", "40", "--telemetry-noise", "0", "--json")  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 6 and (summary["width"], summary["height"]) == (160, 96)
    assert {p.name for p in out.iterdir()} >= {"video.mp4", "flight.srt", "truth.json", "preview.jpg"}
    cues = read_srt(out / "flight.srt").cues
    assert {round(c.rel_alt_m or 0.0, 3) for c in cues} == {40.0}, "the altitude flag and zero noise reach the SRT"
    (out / "events.jsonl").write_text("")
    code = sim("score", "--truth", str(out / "truth.json"), "--events", str(out / "events.jsonl"),
               "--out", str(out / "score.json"))  # fmt: skip
    assert code == 0
    table = capsys.readouterr().out
    assert table.startswith("incident score: drone-patrol (moving camera)")
    assert json.loads((out / "score.json").read_text())["metrics"]["incidents"] == 0

    service = load_config(out / "service.yaml", environ={})
    drone = service.rules.sources["drone-patrol"]
    assert isinstance(drone, MovingCamera) and drone.geo.camera_profile is not None
    assert drone.geo.camera_profile.focal_35mm_mm == 24.0
    assert service.tiling.sources["drone-patrol"] == TilingSpec(tile_px=624, overlap_px=125), "1.5 x 416"


def test_a_rendered_pole_camera_comes_with_its_zone_and_calibration(tmp_path: Path) -> None:
    out = tmp_path / "market"
    code = sim("render", "--scenario", "market-street", "--out", str(out), "--minutes", "4", "--fps", "0.1",
               "--no-video")  # fmt: skip
    assert code == 0
    truth = json.loads((out / "truth.json").read_text())
    service = load_config(out / "service.yaml", environ={})
    camera = service.rules.sources["market-street"]
    assert isinstance(camera, FixedCamera) and camera.dwell_s == truth["dwell_s"]
    assert [z.id for z in camera.zones] == ["no-vending"] and camera.zones_frame_size_px == (1280, 720)
    assert camera.zones[0].prohibited_classes == ["stall", "cart", "goods"]
    assert camera.geo.calibration is not None and len(camera.geo.calibration.control_points) >= 4
    assert "detector serve --config service.yaml" in (out / "service.yaml").read_text()


def test_score_warns_when_the_replay_was_not_aligned_and_takes_the_replay_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.sim.test_score import T0, line

    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps(hand_truth().to_dict()))
    events = tmp_path / "events.jsonl"
    events.write_text(line("A", "stall", 10 + 5000, 131 + 5000, sequence=1, east_m=0.8) + "\n")
    assert sim("score", "--truth", str(truth), "--events", str(events)) == 0
    captured = capsys.readouterr()
    assert "detector sim score: WARNING: no event between" in captured.err
    assert captured.out.startswith("WARNING: no event between")
    summary = tmp_path / "replay.json"
    summary.write_text(json.dumps({"frames_sent": 3, "first_capture_ts": T0 + 5000}))
    assert sim("score", "--truth", str(truth), "--events", str(events), "--replay-summary", str(summary)) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "recall 0.33 (1/3)" in captured.out
    summary.write_text("{}")
    assert sim("score", "--truth", str(truth), "--events", str(events), "--replay-summary", str(summary)) == 2
    assert "no first_capture_ts" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["render", "--scenario", "drone-patrol", "--out", "x", "--size", "big"], "--size must be WIDTHxHEIGHT"),
        (["render", "--scenario", "drone-patrol", "--out", "x", "--altitude", "300"], "altitude_m"),
        (["render", "--scenario", "market-street", "--out", "x", "--minutes", "1"], "4 or more"),
        (["render", "--scenario", "drone-patrol", "--out", "x", "--size", "161x96"], "even frame size"),
        (["score", "--truth", "missing.json", "--events", "e.jsonl"], "cannot read ground truth"),
    ],
)
def test_bad_input_exits_2_with_what_to_fix(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert sim(*argv) == 2
    assert message in capsys.readouterr().err


def test_an_unknown_scenario_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        sim("render", "--scenario", "moon-base", "--out", "x")
    assert exit_.value.code == 2
    assert "market-street" in capsys.readouterr().err


def test_composites_command_writes_pairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sim("composites", "--out", str(tmp_path), "--images", "3", "--imgsz", "96", "--classes", "goods") == 0
    assert "wrote 3 composites" in capsys.readouterr().out
    assert len(list((tmp_path / "labels").glob("*.txt"))) == 3
