"""`detector bench throughput`: from parsed arguments to a results folder and a printed summary."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from detector.bench.machine import machine_info, results_dir
from detector.bench.plots import write_plots
from detector.bench.report import summary, write_report
from detector.bench.service_load import ServiceStartError
from detector.bench.throughput import ThroughputSettings, run_throughput
from detector.config import ConfigError
from detector.inference.engine import EngineError


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda:0`` or ``cpu``; a bare ``cuda`` becomes ``cuda:0``."""
    from detector.inference.yolo_engine import resolve_device as resolve

    resolved = resolve(device)
    if resolved.type == "cuda":
        return f"cuda:{resolved.index or 0}"
    return str(resolved)


def run_throughput_command(args: argparse.Namespace) -> int:
    try:
        device = resolve_device(args.device)
    except EngineError as exc:
        print(f"detector bench: {exc}", file=sys.stderr)
        return 2
    if not args.weights.is_file():
        print(f"detector bench: weights file not found: {args.weights}", file=sys.stderr)
        return 2
    settings = ThroughputSettings(
        weights=args.weights.resolve(),
        device=device,
        imgsz=args.imgsz,
        conf=args.conf,
        iou=args.iou,
        streams=args.streams,
        resolutions=args.resolutions,
        backends=args.backends,
        batch_sizes=args.batch,
        duration_s=args.duration,
        warmup_s=args.warmup,
        max_frames=args.frames_per_stream,
        window=args.window,
        stream_fps=args.stream_fps,
        frame_pool=args.frame_pool,
        bound_time_s=args.bound_time,
        datasets=args.datasets,
        cache_dir=args.cache_dir.resolve(),
        service_config=args.config,
        service_overrides=tuple(args.overrides),
        baseline=args.baseline,
        variants=tuple(args.variants),
        progress=args.progress,
        command=_command_line(),
    )
    machine = machine_info(device)
    work_dir = settings.cache_dir / "work"
    try:
        report = run_throughput(settings, machine, work_dir)
    except (ConfigError, ValueError) as exc:
        print(f"detector bench: {exc}", file=sys.stderr)
        return 2
    except (ServiceStartError, EngineError) as exc:
        print(f"detector bench: {exc}", file=sys.stderr)
        return 1
    folder = results_dir(Path(args.out), machine, device)
    written = write_report(report, folder) + write_plots(report, folder)
    print(summary(report, written))
    return 0 if all(a.ok for _, a in report.agreements) else 1


def _command_line() -> str:
    """How this bench was started, for its results file: ``detector bench ...`` or ``python -m detector.bench``."""
    if sys.argv[0].endswith("__main__.py"):
        return shlex.join(["python", "-m", "detector.bench", *sys.argv[1:]])
    return shlex.join(["detector", *sys.argv[1:]])
