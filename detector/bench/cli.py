"""`detector bench throughput|incident-latency|accuracy|all`: argument parsing only; the work is in the library.

Registered from detector/cli.py with ``add_commands(commands)`` and dispatched with ``run(args)``. Nothing heavy
is imported until a bench command actually runs, so `detector --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from detector.cli_help import add_settings_args, hide_aliases
from detector.config import DEFAULT_WEIGHTS
from detector.inference.engine import ModelSettings, resolve_imgsz
from detector.paths import SHARED_ROOT

SERVICE_IMGSZ = ModelSettings().imgsz  # None: the checkpoint's training size, resolved when a command runs

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "benchmarks" / "results"
DEFAULT_CACHE = REPO / ".cache" / "bench"
DEFAULT_DATASETS = SHARED_ROOT / "datasets"


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return values


def _variant(text: str) -> tuple[str, tuple[str, ...]]:
    name, sep, sets = text.partition(":")
    items = tuple(item.strip() for item in sets.split(",") if item.strip())
    if not sep or not name.strip() or not items or any("=" not in item for item in items):
        raise argparse.ArgumentTypeError(f"expected NAME:SECTION.KEY=VALUE[,SECTION.KEY=VALUE...], got {text!r}")
    return name.strip(), items


def _tiling(text: str) -> tuple[str, tuple[str, ...]]:
    """``640:128`` -> the variant ``tiled-640`` with every source tiled in 640 px tiles overlapping by 128 px."""
    from detector.inference.tiling import TilingSpec

    try:
        spec = TilingSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return f"tiled-{spec.tile_px}", (f"tiling.default={{tile_px: {spec.tile_px}, overlap_px: {spec.overlap_px}}}",)


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = subparsers.add_parser(
        "bench", help="throughput, latency and accuracy benchmarks (writes benchmarks/results)"
    )
    commands = bench.add_subparsers(dest="bench_command", required=True)

    throughput = commands.add_parser(
        "throughput", help="service vs YOLO.predict loops vs the engine bound, frames/s and latency"
    )
    _throughput_args(throughput)
    incident = commands.add_parser(
        "incident-latency", aliases=["latency"], help="object appears -> OPENED at a subscriber, minus the dwell"
    )
    _incident_args(incident)
    accuracy = commands.add_parser("accuracy", help="detector eval on validation splits, simulator scorer")
    _accuracy_args(accuracy)
    everything = commands.add_parser("all", help="throughput, then accuracy and incident latency where possible")
    _throughput_args(everything)
    _accuracy_args(everything, shared=True)
    hide_aliases(
        everything.add_argument(
            "--scenario-dir",
            "--scenario",
            dest="scenario",
            metavar="DIR",
            type=Path,
            help="simulator folder for incident latency",
        ),
        "--scenario",
    )
    # Incident latency inside `all` uses the service settings given for throughput, replayed as fast as it goes.
    everything.set_defaults(target=None, speed=0.0)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results root; a run writes <out>/<device>/<date>/")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")


def _throughput_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    p.add_argument("--streams", type=_ints, default=(1, 4, 16, 64), help="concurrent streams (default 1,4,16,64)")
    p.add_argument("--resolutions", type=_names, default=("720p", "1080p"), help="720p,1080p,480p or WxH")
    p.add_argument("--backends", type=_names, default=("torch", "onnx"), help="engines to measure (torch,onnx)")
    p.add_argument("--batch", type=_ints, default=(1, 2, 4, 8, 16, 32), help="batch sizes for the engine bound")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda:N")
    p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="the .pt checkpoint (onnx is exported)")
    p.add_argument(
        "--imgsz",
        type=int,
        default=SERVICE_IMGSZ,
        help="model input size (default: the service's model.imgsz, the checkpoint's training size)",
    )
    p.add_argument("--conf", type=float, default=0.25, help="detection threshold, as the service's model.conf")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU, as the service's model.iou")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds per run (after the warm-up)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds of load before measuring")
    p.add_argument("--frames-per-stream", type=int, default=0, help="stop each stream after N frames (0: no cap)")
    p.add_argument("--window", type=int, default=8, help="frames one stream may have unanswered")
    p.add_argument("--stream-fps", type=float, default=0.0, help="pace each stream (0: as fast as answered)")
    p.add_argument("--frame-pool", type=int, default=16, help="distinct frames per resolution")
    p.add_argument("--bound-time", type=float, default=3.0, help="seconds per batch size for the engine bound")
    p.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS, help="photos to make frames from")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="ONNX exports and service logs")
    add_settings_args(
        p,
        config_help="service YAML settings, as for `detector serve --config`",
        set_help="service setting, e.g. --set batching.max_batch=16 (model.* come from the flags above)",
    )
    p.add_argument(
        "--variant",
        dest="variants",
        type=_variant,
        action="append",
        default=[],
        metavar="NAME:SECTION.KEY=VALUE[,...]",
        help="also run the service with these settings, for a before/after in the same run "
        "(e.g. batch4:batching.max_batch=4); repeatable",
    )
    p.add_argument(
        "--tiling",
        dest="tilings",
        type=_tiling,
        action="append",
        default=[],
        metavar="TILE_PX:OVERLAP_PX",
        help="also run the service with every source tiled so (e.g. 640:128), for frames/s with and without "
        "tiling in one report; repeatable",
    )
    p.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the YOLO.predict loops")


def _accuracy_args(p: argparse.ArgumentParser, shared: bool = False) -> None:
    if not shared:
        _common(p)
        p.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="checkpoint to evaluate")
        p.add_argument("--imgsz", type=int, default=SERVICE_IMGSZ, help="input size (default: the service's)")
        p.add_argument("--device", default="cpu", help="'cpu' or a CUDA index")
        hide_aliases(
            p.add_argument(
                "--scenario-dir", "--scenario", dest="scenario", metavar="DIR", type=Path, help="simulator run to score"
            ),
            "--scenario",
        )
    p.add_argument("--data", type=Path, action="append", default=[], help="YOLO data.yaml to evaluate (repeatable)")
    p.add_argument("--split", default="val", help="split of each data.yaml")


def _incident_args(p: argparse.ArgumentParser) -> None:
    _common(p)
    hide_aliases(
        p.add_argument(
            "--scenario-dir",
            "--scenario",
            dest="scenario",
            metavar="DIR",
            type=Path,
            required=True,
            help="a folder rendered by `detector sim render`",
        ),
        "--scenario",
    )
    p.add_argument("--target", help="a running service (default: start one with --config/--set)")
    add_settings_args(
        p,
        config_help="service YAML settings (the scenario's zones and rules)",
        set_help="override one service setting (repeatable)",
    )
    p.add_argument("--speed", type=float, default=1.0, help="replay speed: 1 = real time, 0 = as fast as possible")
    p.add_argument("--device", default="auto", help="device, for the results folder name")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="service logs and its incident store")


def run(args: argparse.Namespace) -> int:
    command = args.bench_command
    if getattr(args, "imgsz", 0) is None:  # as the service resolves model.imgsz: from the checkpoint
        args.imgsz = resolve_imgsz(ModelSettings(weights=getattr(args, "weights", DEFAULT_WEIGHTS)))
    if command == "throughput":
        return _throughput(args)
    if command in ("incident-latency", "latency"):
        return _incident(args)
    if command == "accuracy":
        return _accuracy(args)
    status = _throughput(args)
    if args.data or args.scenario:
        status = max(status, _accuracy(args))
    else:
        print("detector bench all: accuracy skipped: " + _accuracy_needs(), file=sys.stderr)
    if args.scenario:
        status = max(status, _incident(args))
    else:
        print("detector bench all: incident latency skipped: needs --scenario-dir DIR (see `bench incident-latency`)")
    return status


def _throughput(args: argparse.Namespace) -> int:
    from detector.bench.suite import run_throughput_command

    args.variants = [*args.variants, *args.tilings]
    return run_throughput_command(args)


def _accuracy(args: argparse.Namespace) -> int:
    from detector.bench.accuracy import run_accuracy_command

    return run_accuracy_command(args)


def _incident(args: argparse.Namespace) -> int:
    from detector.bench.incident import run_incident_command

    return run_incident_command(args)


def _accuracy_needs() -> str:
    return "needs --data PATH/data.yaml (a validation split, e.g. one `detector train` wrote) or --scenario-dir DIR"
