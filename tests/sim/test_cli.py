"""`detector sim ...` through detector.sim.cli, wired into a parser the way detector/cli.py wires it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from detector.geo.srt import read_srt
from detector.sim import cli


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
