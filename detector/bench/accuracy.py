"""Accuracy: `detector eval` on validation splits, and the simulator's scorer on a fixed-seed scenario.

The scenario is streamed through the real service with the weights under test and scored by the simulator's
scorer (``detector.demo.run.score_scenario``, the same path as `make demo`). When that hook cannot be imported the
command says so instead of inventing a number.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.train.evaluate import EvalReport, evaluate

ScenarioScorer = Callable[[Path, Path], Mapping[str, float]]  # (scenario folder, weights) -> metrics
SCORER_MODULE, SCORER_NAME = "detector.demo.run", "score_scenario"


def find_scorer() -> ScenarioScorer | None:
    try:
        module = importlib.import_module(SCORER_MODULE)
    except ImportError:
        return None
    scorer = getattr(module, SCORER_NAME, None)
    return scorer if callable(scorer) else None


@dataclass
class AccuracyReport:
    weights: Path
    splits: list[EvalReport] = field(default_factory=list)
    scenario: str | None = None
    scenario_metrics: dict[str, float] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # what could not be measured, and what it needs


def measure_accuracy(
    weights: Path,
    data: Sequence[Path],
    imgsz: int,
    device: str,
    split: str,
    scenario: Path | None = None,
    scorer: ScenarioScorer | None = None,
) -> AccuracyReport:
    report = AccuracyReport(weights)
    for yaml_path in data:
        report.splits.append(evaluate(weights, yaml_path, imgsz, device, split))
    if scenario is not None:
        if scorer is None:
            report.missing.append(
                f"simulator score of {scenario}: needs {SCORER_MODULE}.{SCORER_NAME}(scenario_dir, weights) "
                "(the simulator's scorer could not be imported)"
            )
        else:
            report.scenario = scenario.name
            report.scenario_metrics = {k: float(v) for k, v in scorer(scenario, weights).items()}
    return report


def write_accuracy_report(report: AccuracyReport, folder: Path, extra: dict[str, Any]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "suite": "accuracy",
        **extra,
        "weights": str(report.weights),
        "splits": [r.as_dict() for r in report.splits],
        "scenario": report.scenario,
        "scenario_metrics": report.scenario_metrics,
        "missing": report.missing,
    }
    json_path = folder / "accuracy.json"
    json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    lines = [f"# Accuracy: {report.weights.name}", ""]
    for r in report.splits:
        lines += [f"## {r.data} ({r.split}, imgsz {r.imgsz}, {r.images} images)", "", r.table(), ""]
    if report.scenario:
        lines += [f"## Simulator scenario {report.scenario}", "", "| metric | value |", "|---|---:|"]
        lines += [f"| {k} | {v:.3f} |" for k, v in report.scenario_metrics.items()] + [""]
    lines += [f"- not measured: {item}" for item in report.missing]
    md_path = folder / "accuracy.md"
    md_path.write_text("\n".join(lines) + "\n")
    return [json_path, md_path]


def eval_device(device: str) -> str:
    """`detector eval` takes 'cpu' or a CUDA index; the bench takes 'auto', 'cpu' or 'cuda:N'."""
    if device == "auto":
        import torch

        return "0" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        return device.partition(":")[2] or "0"
    return device


def run_accuracy_command(args: argparse.Namespace) -> int:
    from detector.bench.machine import machine_info, results_dir

    if not args.data and args.scenario is None:
        repo = Path(__file__).resolve().parents[2]
        candidates = sorted((repo / ".cache" / "train" / "dataset").glob("data_val_*.yaml"))
        hint = f"; `detector train` wrote these: {', '.join(map(str, candidates))}" if candidates else ""
        print(
            "detector bench accuracy: needs --data PATH/data.yaml (a validation split) and/or --scenario DIR "
            f"(a simulator scenario){hint}",
            file=sys.stderr,
        )
        return 2
    device = eval_device(args.device)
    try:
        report = measure_accuracy(args.weights, args.data, args.imgsz, device, args.split, args.scenario, find_scorer())
    except FileNotFoundError as exc:
        print(f"detector bench accuracy: {exc}", file=sys.stderr)
        return 2
    bench_device = "cpu" if device == "cpu" else f"cuda:{device}"
    machine = machine_info(bench_device)
    extra = {"created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": machine.as_dict()}
    written = write_accuracy_report(report, results_dir(args.out, machine, bench_device), extra)
    for r in report.splits:
        print(f"{r.data} ({r.split}): mAP50 {r.map50:.3f}, mAP50-95 {r.map50_95:.3f} on {r.images} images")
    for k, v in report.scenario_metrics.items():
        print(f"{report.scenario}: {k} {v:.3f}")
    for item in report.missing:
        print(f"not measured: {item}", file=sys.stderr)
    for path in written:
        print(f"  wrote {path}")
    return 0
