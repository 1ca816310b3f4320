"""Write a throughput report as JSON and a markdown table, and print a short summary.

Ratios are taken within one run only: service/baseline at the same resolution and stream count, service/bound
against the same backend's best forward-pass rate at that resolution, service/pipeline bound against the same
backend's decode + letterbox + forward + NMS rate with the decode that service run used.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.bench.throughput import BASELINE, RunResult, ThroughputReport


@dataclass(frozen=True)
class Ratio:
    service: str  # the service run's label: backend, and variant if any
    backend: str
    resolution: str
    streams: int
    service_fps: float
    baseline_fps: float | None
    bound_fps: float | None
    bound_batch: int | None
    service_cpu_ms: float | None = None  # CPU ms per frame of the serve process
    baseline_cpu_ms: float | None = None
    pipeline_fps: float | None = None  # the pipeline bound with the service run's decode
    pipeline_batch: int | None = None
    pipeline_decode_scale: int | None = None  # the DCT scale that pipeline decoded at (1: whole)

    @property
    def over_baseline(self) -> float | None:
        return self.service_fps / self.baseline_fps if self.baseline_fps else None

    @property
    def over_bound(self) -> float | None:
        return self.service_fps / self.bound_fps if self.bound_fps else None

    @property
    def over_pipeline(self) -> float | None:
        return self.service_fps / self.pipeline_fps if self.pipeline_fps else None


def ratios(report: ThroughputReport) -> list[Ratio]:
    rows = []
    for run in (r for r in report.runs if r.kind == "service"):
        baseline = report.run("baseline", BASELINE, run.resolution, run.streams)
        bound = report.bound(run.backend, run.resolution)
        pipeline, scale = bound.pipeline(run.reduced_decode) if bound and run.reduced_decode is not None else (None, 1)
        rows.append(
            Ratio(
                run.label.removeprefix("service "),
                run.backend,
                run.resolution,
                run.streams,
                run.frames_per_s,
                baseline.frames_per_s if baseline else None,
                bound.best.frames_per_s if bound and bound.forward else None,
                bound.best.batch if bound and bound.forward else None,
                run.cpu_ms_per_frame,
                baseline.cpu_ms_per_frame if baseline else None,
                pipeline.frames_per_s if pipeline else None,
                pipeline.batch if pipeline else None,
                scale if pipeline else None,
            )
        )
    return rows


def issue2_line(report: ThroughputReport) -> str | None:
    """Issue 2's comparison: the service with 4 streams against one plain ``YOLO.predict`` loop."""
    resolution = report.settings.resolutions[0]
    service = report.run("service", "torch", resolution, 4)
    loop = report.run("baseline", BASELINE, resolution, 1)
    if service is None or loop is None:
        return None
    factor = service.frames_per_s / loop.frames_per_s if loop.frames_per_s else float("nan")
    return (
        f"service (torch) with 4 concurrent streams at {resolution}: {service.frames_per_s:.1f} frames/s; "
        f"one plain loop calling YOLO.predict per frame: {loop.frames_per_s:.1f} frames/s ({factor:.2f}x), "
        "same checkpoint and frames"
    )


def write_report(report: ThroughputReport, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "throughput.json"
    json_path.write_text(json.dumps(_clean(as_json(report)), indent=2, ensure_ascii=False) + "\n")
    md_path = folder / "throughput.md"
    md_path.write_text(markdown(report))
    return [json_path, md_path]


def as_json(report: ThroughputReport) -> dict[str, Any]:
    return {
        "suite": "throughput",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": report.machine.as_dict(),
        "settings": report.settings.as_dict(),
        "service_config": report.service_config,
        "frames": report.frame_sets,
        "backend_checks": [{"resolution": res, **dataclasses.asdict(a), "ok": a.ok} for res, a in report.agreements],
        "decode_shift": [{**dataclasses.asdict(d), "matched_share": d.matched_share} for d in report.decode_shifts],
        "bound": [
            {**dataclasses.asdict(b), "best_batch": b.best.batch, "best_frames_per_s": b.best.frames_per_s}
            for b in report.bounds
            if b.forward
        ],
        "runs": [
            {**dataclasses.asdict(r), "label": r.label, "cpu_ms_per_frame": r.cpu_ms_per_frame} for r in report.runs
        ],
        "ratios": [
            {
                **dataclasses.asdict(r),
                "service_over_baseline": r.over_baseline,
                "service_over_bound": r.over_bound,
                "service_over_pipeline": r.over_pipeline,
            }
            for r in ratios(report)
        ],
        "issue2": issue2_line(report),
        "weights": report.weights,
        "skipped": report.skipped,
    }


def markdown(report: ThroughputReport) -> str:
    m, s = report.machine, report.settings
    gpu = f"{m.gpu} ({m.gpu_memory_gb} GB)" if m.gpu else "none used"
    lines = [
        f"# Throughput: {m.device_slug(s.device)}, {dt.date.today().isoformat()}",
        "",
        f"- Machine: {m.cpu_model}, {m.cpu_cores} cores, {m.memory_gb} GB; GPU: {gpu}; load average at start "
        f"{m.load_average[0]:.2f}",
        f"- Versions: python {m.python}, " + ", ".join(f"{k} {v}" for k, v in m.versions.items()),
        *([f"- Command: `{s.command}`"] if s.command else []),
        f"- Model: {s.weights.name}, imgsz {s.imgsz}, conf {s.conf}, iou {s.iou}, device {s.device}",
        f"- Load: {s.duration_s:g} s measured after {s.warmup_s:g} s warm-up per run, LOSSLESS streams, "
        f"window {s.window} frames per stream, "
        + (f"{s.stream_fps:g} frames/s per stream" if s.stream_fps else "as fast as the service answers")
        + (f", at most {s.max_frames} frames per stream" if s.max_frames else ""),
        "- Service batching: " + ", ".join(f"{k} {v}" for k, v in report.service_config.get("batching", {}).items()),
        *_contention_lines(report),
        "- Frames: "
        + "; ".join(
            f"{f['resolution']}{_dims(f)}, {f['count']} from {f['source']}, JPEG {f['mean_jpeg_kb']} KB"
            for f in report.frame_sets
        ),
        "",
    ]
    if line := issue2_line(report):
        lines += ["## The plain-loop comparison (issue 2)", "", line, ""]
    lines += [
        "## Ratios",
        "",
        "| resolution | streams | backend | service frames/s | baseline frames/s | bound frames/s (batch) "
        "| pipeline bound frames/s | service/baseline | service/bound | service/pipeline bound "
        "| CPU ms/frame service | CPU ms/frame baseline |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in ratios(report):
        bound = f"{r.bound_fps:.1f} ({r.bound_batch})" if r.bound_fps else "-"
        pipeline = f"{r.pipeline_fps:.1f} ({_decode(r.pipeline_decode_scale)})" if r.pipeline_fps else "-"
        lines.append(
            f"| {r.resolution} | {r.streams} | {r.service} | {r.service_fps:.1f} | {_f(r.baseline_fps)} | {bound} "
            f"| {pipeline} | {_x(r.over_baseline)} | {_x(r.over_bound)} | {_x(r.over_pipeline)} "
            f"| {_f(r.service_cpu_ms)} | {_f(r.baseline_cpu_ms)} |"
        )
    lines += [
        "",
        "The pipeline bound decodes the frames as that service run did (reduced in the DCT domain, or whole) and "
        "runs letterbox, forward and NMS on them, decoding the next batch in the decode threads while the model "
        "runs (as the service does): the service's own work with nothing else around it.",
    ]
    lines += ["", "## Frame latency (client-measured, ms)", ""]
    lines += [
        "| contender | resolution | streams | frames/s | p50 | p95 | p99 | frames | errors | mean batch "
        "| CPU cores used | load generator cores |"
    ]
    lines += ["|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for run in report.runs:
        lines.append(
            f"| {run.label} | {run.resolution} | {run.streams} | {run.frames_per_s:.1f} | {run.latency.p50_ms:.0f} "
            f"| {run.latency.p95_ms:.0f} | {run.latency.p99_ms:.0f} | {run.frames} | {run.errors} "
            f"| {_f(run.breakdown.mean_batch if run.breakdown else None)} | {_f(run.cpu_cores_used, 2)} "
            f"| {_f(run.client_cores_used, 2)} |"
        )
    lines += ["", "## Engine bound (raw forward on pre-built batches)", ""]
    lines += ["| backend | resolution | input h x w | batch | ms/batch | frames/s |", "|---|---|---|---:|---:|---:|"]
    for b in report.bounds:
        for speed in b.forward:
            best = " **best**" if speed is b.best else ""
            lines.append(
                f"| {b.backend} | {b.resolution} | {b.input_shape[0]}x{b.input_shape[1]} | {speed.batch}{best} "
                f"| {speed.ms_per_batch:.1f} | {speed.frames_per_s:.1f} |"
            )
        if b.engine_at_best:
            e = b.engine_at_best
            lines.append(
                f"| {b.backend} engine (letterbox+forward+NMS) | {b.resolution} | | {e.batch} | {e.ms_per_batch:.1f} "
                f"| {e.frames_per_s:.1f} |"
            )
        for pipe, scale in ((b.pipeline_reduced, b.decode_scale), (b.pipeline_full, 1)):
            if pipe is not None:
                lines.append(
                    f"| {b.backend} pipeline (decode+letterbox+forward+NMS), decode {_decode(scale)} | {b.resolution} "
                    f"| | {pipe.batch} | {pipe.ms_per_batch:.1f} | {pipe.frames_per_s:.1f} |"
                )
    lines += _variant_lines(report) + _breakdown_lines(report) + _agreement_lines(report) + _shift_lines(report)
    if "onnx" in report.weights:
        lines += [
            "",
            f"The ONNX export measured here is `{report.weights['onnx']}`; the service runs it with "
            f"`--set model.backend=onnx --set model.weights={report.weights['onnx']}`.",
        ]
    if report.skipped:
        lines += ["", "## Skipped", "", *(f"- {item}" for item in report.skipped)]
    return "\n".join(lines) + "\n"


def _breakdown_lines(report: ThroughputReport) -> list[str]:
    lines = [
        "",
        "## Where the time goes (service, mean ms per frame)",
        "",
        "| service | resolution | streams | decode | queue | pre-process | forward | post-process | gRPC+other "
        "| latency | worker busy | bottleneck |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in report.runs:
        b = run.breakdown
        if b is None:
            continue
        lines.append(
            f"| {run.label.removeprefix('service ')} | {run.resolution} | {run.streams} | {b.decode_ms:.1f} "
            f"| {b.queue_ms:.1f} "
            f"| {b.preprocess_ms:.1f} | {b.forward_ms:.1f} | {b.postprocess_ms:.1f} | {b.grpc_other_ms:.1f} "
            f"| {b.latency_ms:.1f} | {b.worker_busy:.0%} | {run.bottleneck.stage if run.bottleneck else '-'} |"
        )
    if top := top_bottleneck(report):
        lines += [
            "",
            f"Top bottleneck ({top.label}, {top.resolution}, {top.streams} streams): "
            f"**{top.bottleneck.stage if top.bottleneck else '-'}**: "
            f"{top.bottleneck.reason if top.bottleneck else ''}.",
        ]
    return lines


def top_bottleneck(report: ThroughputReport) -> RunResult | None:
    """The bottleneck at the heaviest load: the torch service run with the most streams at the last resolution."""
    runs = [r for r in report.runs if r.kind == "service" and not r.variant and r.bottleneck is not None]
    if not runs:
        return None
    return max(runs, key=lambda r: (r.backend == "torch", r.streams, report.settings.resolutions.index(r.resolution)))


def _agreement_lines(report: ThroughputReport) -> list[str]:
    if not report.agreements:
        return []
    lines = [
        "",
        "## Backends against torch (same boxes within tolerance)",
        "",
        "| backend | resolution | frames | torch boxes | matched | missing | extra | max box diff px | max conf diff "
        "| ok |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for res, a in report.agreements:
        lines.append(
            f"| {a.backend} | {res} | {a.frames} | {a.reference_boxes} | {a.matched} | {a.missing} | {a.extra} "
            f"| {a.max_box_px:.2f} | {a.max_conf_diff:.4f} | {'yes' if a.ok else '**NO**'} |"
        )
    return lines


def _shift_lines(report: ThroughputReport) -> list[str]:
    if not report.decode_shifts:
        return []
    lines = [
        "",
        "## Reduced decode against full decode",
        "",
        "Boxes of the same engine on each frame decoded reduced in the DCT domain (as the service does with "
        "`ingest.reduced_decode`) against decoded whole, in full-frame pixels; shift: per matched box the largest "
        "move of its 4 coordinates.",
        "",
        "| backend | resolution | decode | frames | full-decode boxes | matched | missing | extra "
        "| median shift px | max shift px | median IoU |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in report.decode_shifts:
        lines.append(
            f"| {d.backend} | {d.resolution} | {_decode(d.scale)} | {d.frames} | {d.full_boxes} | {d.matched} "
            f"| {d.missing} | {d.extra} | {d.median_shift_px:.1f} | {d.max_shift_px:.1f} | {d.median_iou:.3f} |"
        )
    return lines


def summary(report: ThroughputReport, written: list[Path]) -> str:
    lines = ["", "detector bench throughput:"]
    lines.append(
        f"  {'res':9} {'streams':>7} {'service':14} {'service':>9} {'baseline':>9} {'bound':>9} "
        f"{'svc/base':>9} {'svc/bound':>9} {'cpu ms/frame svc|base':>22}"
    )
    for r in ratios(report):
        lines.append(
            f"  {r.resolution:9} {r.streams:>7} {r.service:14} {r.service_fps:>9.1f} {_f(r.baseline_fps):>9} "
            f"{_f(r.bound_fps):>9} {_x(r.over_baseline):>9} {_x(r.over_bound):>9} "
            f"{_f(r.service_cpu_ms) + ' | ' + _f(r.baseline_cpu_ms):>22}"
        )
    lines.append("  (frames/s unless marked)")
    for r in (r for r in ratios(report) if r.streams == 4):
        lines.append(
            f"  4 streams {r.resolution} {r.service}: service/baseline {_x(r.over_baseline)}, service/pipeline bound "
            f"{_x(r.over_pipeline)} (pipeline bound {_f(r.pipeline_fps)} frames/s, decode "
            f"{_decode(r.pipeline_decode_scale)})"
        )
    for before, after in variant_pairs(report):
        lines.append(
            f"  variant {after.variant} ({after.backend} {after.resolution} x{after.streams}): "
            f"{before.frames_per_s:.1f} -> {after.frames_per_s:.1f} frames/s"
        )
    if line := issue2_line(report):
        lines.append(f"  issue 2: {line}")
    if (top := top_bottleneck(report)) and top.bottleneck:
        lines.append(f"  bottleneck: {top.bottleneck.stage}: {top.bottleneck.reason}")
    for res, a in report.agreements:
        verdict = "agrees with torch" if a.ok else "DISAGREES with torch"
        lines.append(f"  {a.backend} {res}: {verdict} (max box diff {a.max_box_px:.2f} px, {a.matched} boxes)")
    for d in report.decode_shifts:
        lines.append(
            f"  reduced decode {_decode(d.scale)} {d.resolution}: {d.matched}/{d.full_boxes} boxes of the full decode "
            f"found, {d.extra} extra, shift median {d.median_shift_px:.1f} px max {d.max_shift_px:.1f} px, "
            f"median IoU {d.median_iou:.3f}"
        )
    lines += [f"  skipped: {item}" for item in report.skipped]
    lines += [f"  wrote {path}" for path in written]
    return "\n".join(lines)


def variant_pairs(report: ThroughputReport) -> list[tuple[RunResult, RunResult]]:
    """(as configured, variant) pairs of service runs at the same backend, resolution and streams."""
    pairs = []
    for after in (r for r in report.runs if r.kind == "service" and r.variant):
        before = report.run("service", after.backend, after.resolution, after.streams)
        if before is not None:
            pairs.append((before, after))
    return pairs


def _variant_lines(report: ThroughputReport) -> list[str]:
    pairs = variant_pairs(report)
    if not pairs:
        return []
    lines = [
        "",
        "## Before and after (service as configured vs --variant, same run)",
        "",
        "| variant | settings | backend | resolution | streams | frames/s before | after | change | p95 ms before "
        "| after |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    sets = dict(report.settings.variants)
    for before, after in pairs:
        change = after.frames_per_s / before.frames_per_s - 1 if before.frames_per_s else float("nan")
        lines.append(
            f"| {after.variant} | {' '.join(sets.get(after.variant, ()))} | {after.backend} | {after.resolution} "
            f"| {after.streams} | {before.frames_per_s:.1f} | {after.frames_per_s:.1f} | {change:+.0%} "
            f"| {before.latency.p95_ms:.0f} | {after.latency.p95_ms:.0f} |"
        )
    return lines


def _contention_lines(report: ThroughputReport) -> list[str]:
    return report.machine.contention_lines(
        ", so other work shared the machine: frames/s and latencies are not clean; CPU ms per frame is the "
        "steadier comparison."
    )


def _dims(frame_set: dict[str, Any]) -> str:
    dims = f"{frame_set['width']}x{frame_set['height']}"
    return "" if frame_set["resolution"] == dims else f" {dims}"


def _decode(scale: int | None) -> str:
    return "-" if scale is None else "whole" if scale == 1 else f"1/{scale}"


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _x(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.2f}x"


def _clean(value: Any) -> Any:
    """JSON has no NaN or tuples-as-keys: NaN becomes null, Paths and other objects become strings."""
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, str | int | bool) or value is None:
        return value
    return str(value)
