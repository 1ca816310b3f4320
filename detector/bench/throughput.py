"""The throughput suite: service vs naive ``YOLO.predict`` loops vs the engine bound, per resolution and stream count.

Order of work: build the frames; per backend, export if needed, check its boxes against torch and measure its
bound; start one service process per backend and run every (resolution, streams) against it; then run the
baseline for every (resolution, streams). Everything uses the same weights, frames, device, imgsz and conf.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.bench.backends import Agreement, check_agreement
from detector.bench.baseline import PredictSettings, run_baseline
from detector.bench.bound import BoundResult, engine_bound
from detector.bench.breakdown import Bottleneck, Breakdown, breakdown, find_bottleneck
from detector.bench.decode_shift import DecodeShift, check_decode_shift
from detector.bench.frames import FrameSet, build_frames
from detector.bench.machine import MachineInfo
from detector.bench.service_load import LoadResult, LoadSettings, ServiceProcess, StageTotals, drive_streams
from detector.bench.stats import Latency, batch_histogram, frames_per_s, in_window, steady_window
from detector.config import ConfigError, ServiceConfig, load_config
from detector.inference.engine import EngineError, ModelSettings, build_engine
from detector.inference.onnx_export import onnx_weights
from detector.inference.tensorrt_export import tensorrt_device, tensorrt_version, tensorrt_weights
from detector.threads import plan_threads

BASELINE = "ultralytics-predict"


@dataclass(frozen=True)
class ThroughputSettings:
    weights: Path
    device: str  # resolved: "cpu" or "cuda:N"
    imgsz: int = 320
    conf: float = 0.25
    iou: float = 0.7
    streams: tuple[int, ...] = (1, 4, 16, 64)
    resolutions: tuple[str, ...] = ("720p", "1080p")
    backends: tuple[str, ...] = ("torch", "onnx")
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    duration_s: float = 20.0
    warmup_s: float = 5.0
    max_frames: int = 0  # per stream; 0 = until the duration is up
    window: int = 8
    stream_fps: float = 0.0
    frame_pool: int = 16  # distinct frames per resolution
    bound_time_s: float = 3.0  # per batch size
    datasets: Path | None = None
    cache_dir: Path = Path(".cache/bench")
    service_config: Path | None = None
    service_overrides: tuple[str, ...] = ()
    baseline: bool = True
    progress: bool = True
    # Extra service runs with other settings, for before/after comparisons in one run: (name, ("k=v", ...)).
    variants: tuple[tuple[str, tuple[str, ...]], ...] = ()
    command: str = ""  # the command line that ran the bench, for the results file

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class RunResult:
    """One contender at one resolution and stream count."""

    kind: str  # "service" or "baseline"
    backend: str
    resolution: str
    streams: int
    frames_per_s: float
    latency: Latency
    frames: int  # answered inside the window
    errors: int
    window_s: float
    batches: dict[int, int]
    breakdown: Breakdown | None = None
    bottleneck: Bottleneck | None = None
    error_examples: tuple[str, ...] = ()
    variant: str = ""  # "" for the service as configured; else the name of a --variant
    cpu_cores_used: float | None = None  # CPU seconds per second: the serve process, or the baseline's
    client_cores_used: float | None = None  # the load generator's, beside the service (same machine)
    # The service's ingest.reduced_decode; None for the baseline and for a tiled service (no pipeline bound fits).
    reduced_decode: bool | None = None

    @property
    def cpu_ms_per_frame(self) -> float | None:
        """CPU time each frame cost: steadier than frames/s when other work shares the machine."""
        if self.cpu_cores_used is None or self.frames_per_s <= 0:
            return None
        return self.cpu_cores_used * 1e3 / self.frames_per_s

    @property
    def label(self) -> str:
        if self.kind == "baseline":
            return "baseline YOLO.predict"
        return f"service {self.backend}" + (f" [{self.variant}]" if self.variant else "")


@dataclass
class ThroughputReport:
    machine: MachineInfo
    settings: ThroughputSettings
    frame_sets: list[dict[str, Any]] = field(default_factory=list)
    agreements: list[tuple[str, Agreement]] = field(default_factory=list)  # (resolution, agreement)
    decode_shifts: list[DecodeShift] = field(default_factory=list)  # reduced vs full decode, per resolution
    bounds: list[BoundResult] = field(default_factory=list)
    runs: list[RunResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    service_config: dict[str, Any] = field(default_factory=dict)  # the settings the service ran with
    weights: dict[str, str] = field(default_factory=dict)  # backend -> the weights file it ran (an export for onnx)

    def bound(self, backend: str, resolution: str) -> BoundResult | None:
        return next((b for b in self.bounds if (b.backend, b.resolution) == (backend, resolution)), None)

    def run(self, kind: str, backend: str, resolution: str, streams: int, variant: str = "") -> RunResult | None:
        key = (kind, backend, resolution, streams, variant)
        return next((r for r in self.runs if (r.kind, r.backend, r.resolution, r.streams, r.variant) == key), None)


def run_throughput(settings: ThroughputSettings, machine: MachineInfo, work_dir: Path) -> ThroughputReport:
    report = ThroughputReport(machine, settings)
    # Fails early, naming the key, on a bad --set; and records what the service will run with.
    config = load_config(settings.service_config, overrides=list(settings.service_overrides))
    decodes = {"": _decode_mode(config)}  # variant -> its reduced_decode (None: tiled)
    for name, sets in settings.variants:
        try:
            decodes[name] = _decode_mode(
                load_config(settings.service_config, overrides=[*settings.service_overrides, *sets])
            )
        except ConfigError as exc:
            raise ConfigError(f"--variant {name}: {exc}") from None
    budget = plan_threads(config.threads, settings.device)
    report.service_config = {
        "batching": config.batching.model_dump(),
        "threads": budget.as_log(),
        "reduced_decode": config.ingest.reduced_decode,
        "max_inflight_per_stream": config.server.max_inflight_per_stream,
    }
    frame_sets = [
        build_frames(res, settings.frame_pool, settings.datasets, quiet=not settings.progress)
        for res in settings.resolutions
    ]
    for fs in frame_sets:
        report.frame_sets.append(
            {
                "resolution": fs.resolution,
                "width": fs.width,
                "height": fs.height,
                "source": fs.source,
                "count": len(fs.jpegs),
                "mean_jpeg_kb": round(fs.mean_jpeg_kb, 1),
            }
        )
    weights = {backend: w for backend in settings.backends if (w := _backend_weights(backend, settings, report))}
    report.weights = {backend: str(path) for backend, path in weights.items()}
    # Pipeline bounds with the decodes the service runs: as configured, and as any --variant sets it.
    decode_modes = sorted({mode for mode in decodes.values() if mode is not None}, reverse=True) or [True]
    for backend, path in weights.items():
        if backend != "torch":
            _check_backend(backend, path, settings, frame_sets, report)
        if not report.decode_shifts:
            _check_decode_shift(backend, path, settings, frame_sets, config, report)
        for fs in frame_sets:
            report.bounds.append(
                engine_bound(
                    backend,
                    _engine_settings(path, settings),
                    fs,
                    settings.batch_sizes,
                    settings.bound_time_s,
                    settings.progress,
                    threads=budget,
                    decode_modes=decode_modes,
                    reduced_decode=config.ingest.reduced_decode,
                    limits=config.ingest.limits,
                )
            )
        for variant, sets in (("", ()), *settings.variants):
            runs = _service_runs(backend, path, settings, frame_sets, work_dir, variant, sets)
            report.runs += [dataclasses.replace(r, reduced_decode=decodes[variant]) for r in runs]
    if settings.baseline:
        predict = PredictSettings(settings.weights, settings.device, settings.imgsz, settings.conf, settings.iou)
        for fs in frame_sets:
            for streams in settings.streams:
                load = run_baseline(
                    predict, fs, _load(settings, streams), f"baseline {fs.resolution} x{streams}", settings.progress
                )
                report.runs.append(_result("baseline", BASELINE, fs, streams, load, settings))
    return report


def _engine_settings(weights: Path, s: ThroughputSettings) -> ModelSettings:
    return ModelSettings(weights=weights, device=s.device, imgsz=s.imgsz, conf=s.conf, iou=s.iou)


def _backend_weights(backend: str, s: ThroughputSettings, report: ThroughputReport) -> Path | None:
    if backend == "torch":
        return s.weights
    if backend == "onnx":
        if not s.device.startswith("cpu"):
            report.skipped.append(f"onnx on {s.device}: this environment's onnxruntime has only the CPU provider")
            return None
        return onnx_weights(s.weights, s.imgsz, s.cache_dir)
    if backend == "tensorrt":
        return _tensorrt_engine_file(s, report)
    report.skipped.append(f"backend {backend!r}: the bench knows torch, onnx and tensorrt")
    return None


def _tensorrt_engine_file(s: ThroughputSettings, report: ThroughputReport) -> Path | None:
    """The .pt built into a TensorRT engine for the largest batch any contender runs: the bound's --batch sizes,
    and the service's batching.max_batch and model.max_batch (--set, which must cover batching.max_batch)."""
    if not s.device.startswith("cuda"):
        report.skipped.append(f"tensorrt on {s.device}: TensorRT runs on CUDA GPUs only")
        return None
    config = load_config(s.service_config, overrides=list(s.service_overrides))
    max_batch = max(*s.batch_sizes, config.batching.max_batch, config.model.max_batch)
    try:
        print(f"bench: TensorRT {tensorrt_version()} engine for batches up to {max_batch}", file=sys.stderr)
        return tensorrt_weights(s.weights, s.imgsz, max_batch, s.cache_dir, tensorrt_device(s.device))
    except EngineError as exc:  # no tensorrt package, or the build failed: the other backends still run
        report.skipped.append(f"tensorrt: {exc}")
        return None


def _check_backend(
    backend: str, path: Path, s: ThroughputSettings, frame_sets: list[FrameSet], report: ThroughputReport
) -> None:
    """Boxes of ``backend`` vs torch on up to 8 frames per resolution, at a low threshold so that many are compared."""
    check_conf = min(s.conf, 0.05)
    reference = build_engine(
        "torch", ModelSettings(weights=s.weights, device=s.device, imgsz=s.imgsz, conf=check_conf, iou=s.iou)
    )
    candidate = build_engine(
        backend, ModelSettings(weights=path, device=s.device, imgsz=s.imgsz, conf=check_conf, iou=s.iou)
    )
    for fs in frame_sets:
        agreement = check_agreement(reference, candidate, fs.images[:8], check_conf)
        report.agreements.append((fs.resolution, agreement))
        if not agreement.ok:
            print(f"bench: {backend} disagrees with torch at {fs.resolution}: {agreement}", file=sys.stderr)


def _decode_mode(config: ServiceConfig) -> bool | None:
    """The service's ``ingest.reduced_decode``, or None when it tiles every source (it then decodes at the scale
    its tiles need, which the pipeline bound does not model)."""
    return None if config.tiling.default != "off" else config.ingest.reduced_decode


def _check_decode_shift(
    backend: str,
    path: Path,
    s: ThroughputSettings,
    frame_sets: list[FrameSet],
    config: ServiceConfig,
    report: ThroughputReport,
) -> None:
    """Boxes of a reduced decode against a full decode on up to 8 frames per resolution, with the first backend,
    at the backend check's low threshold (frames under twice the model input are never decoded reduced: none)."""
    check_conf = min(s.conf, 0.05)
    engine = build_engine(
        backend, ModelSettings(weights=path, device=s.device, imgsz=s.imgsz, conf=check_conf, iou=s.iou)
    )
    for fs in frame_sets:
        shift = check_decode_shift(engine, fs.jpegs[:8], config.ingest.limits, fs.resolution, check_conf)
        if shift is not None:
            report.decode_shifts.append(shift)


def _load(s: ThroughputSettings, streams: int) -> LoadSettings:
    return LoadSettings(streams, s.duration_s, s.warmup_s, s.max_frames, s.window, s.stream_fps)


def _service_runs(
    backend: str,
    weights: Path,
    s: ThroughputSettings,
    frame_sets: list[FrameSet],
    work_dir: Path,
    variant: str,
    variant_sets: tuple[str, ...],
) -> list[RunResult]:
    overrides = [
        f"model.backend={backend}",
        f"model.weights={weights.resolve()}",
        f"model.device={s.device}",
        f"model.imgsz={s.imgsz}",
        f"model.conf={s.conf}",
        f"model.iou={s.iou}",
        f"store.data_dir={work_dir / 'store'}",
        # Every bench stream comes from one loopback client; the per-client cap (16 by default) would refuse them.
        f"server.max_streams_per_client={max(s.streams)}",
        *s.service_overrides,
        *variant_sets,
    ]
    name = backend + (f"-{variant}" if variant else "")
    variant_config = load_config(s.service_config, overrides=[*s.service_overrides, *variant_sets])
    workers = plan_threads(variant_config.threads, s.device).inference_workers
    runs = []
    with ServiceProcess(overrides, work_dir / f"serve-{name}.log", s.service_config) as service:
        for fs in frame_sets:
            for streams in s.streams:
                load, delta = asyncio.run(
                    _measured(service, fs, _load(s, streams), f"service {name} {fs.resolution} x{streams}", s.progress)
                )
                runs.append(_result("service", backend, fs, streams, load, s, delta, variant, workers))
    # The incident store fills with evidence JPEGs of whatever the model saw; only the log is worth keeping.
    shutil.rmtree(work_dir / "store", ignore_errors=True)
    return runs


async def _measured(
    service: ServiceProcess, fs: FrameSet, load: LoadSettings, label: str, progress: bool
) -> tuple[LoadResult, StageTotals]:
    """Drive the load, scraping the service's stage totals when the warm-up ends and when the load stops."""

    async def scrape_after_warmup() -> StageTotals:
        await asyncio.sleep(load.warmup_s)
        return await asyncio.to_thread(service.scrape)

    before = await asyncio.to_thread(service.scrape)
    first = asyncio.create_task(scrape_after_warmup())
    result = await drive_streams(service.target, fs, load, label, progress)
    if first.done():
        start = await first
    else:  # a frame-capped run that ended within its warm-up: take the whole run
        first.cancel()
        start = before
    end = await asyncio.to_thread(service.scrape)
    return result, end.minus(start)


def _result(
    kind: str,
    backend: str,
    fs: FrameSet,
    streams: int,
    load: LoadResult,
    s: ThroughputSettings,
    delta: StageTotals | None = None,
    variant: str = "",
    workers: int = 1,
) -> RunResult:
    window = steady_window(load.completions, load.started_s, s.warmup_s, load.stopped_s)
    measured = in_window(load.completions, window)
    run_s = load.stopped_s - load.started_s
    cores = os.cpu_count() or 1
    split = None
    if delta is not None:
        service_cores, client_cores = _cores(delta.cpu_s, delta.at_s), _cores(load.cpu_s, run_s)
        share = (
            (service_cores + client_cores) / cores if service_cores is not None and client_cores is not None else None
        )
        split = breakdown(measured, delta, share, workers)
    return RunResult(
        kind=kind,
        backend=backend,
        resolution=fs.resolution,
        streams=streams,
        frames_per_s=frames_per_s(load.completions, window),
        latency=Latency.of([c.latency_ms for c in measured]),
        frames=len(measured),
        errors=load.errors,
        window_s=window.length_s,
        batches=batch_histogram(measured),
        breakdown=split,
        bottleneck=find_bottleneck(split) if split is not None and measured else None,
        error_examples=tuple(load.error_examples),
        variant=variant,
        cpu_cores_used=_cores(delta.cpu_s, delta.at_s) if delta is not None else _cores(load.cpu_s, run_s),
        client_cores_used=_cores(load.cpu_s, run_s) if delta is not None else None,
    )


def _cores(cpu_s: float, wall_s: float) -> float | None:
    return cpu_s / wall_s if wall_s > 0 else None
