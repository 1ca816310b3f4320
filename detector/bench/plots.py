"""PNG plots of a throughput report: frames/s against streams, latency percentiles, batch sizes."""

from __future__ import annotations

from pathlib import Path

from detector.bench.throughput import RunResult, ThroughputReport


def write_plots(report: ThroughputReport, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    return [
        _throughput(report, folder / "throughput_vs_streams.png"),
        _latency(report, folder / "latency_percentiles.png"),
        _batches(report, folder / "batch_sizes.png"),
    ]


def _contenders(report: ThroughputReport) -> list[str]:
    seen: list[str] = []
    for run in report.runs:
        if run.label not in seen:
            seen.append(run.label)
    return seen


def _series(report: ThroughputReport, label: str, resolution: str) -> list[RunResult]:
    runs = [r for r in report.runs if (r.label, r.resolution) == (label, resolution)]
    return sorted(runs, key=lambda r: r.streams)


def _throughput(report: ThroughputReport, path: Path) -> Path:
    import matplotlib.pyplot as plt

    resolutions = report.settings.resolutions
    fig, axes = plt.subplots(1, len(resolutions), figsize=(6 * len(resolutions), 4.5), squeeze=False)
    for ax, resolution in zip(axes[0], resolutions, strict=True):
        for label in _contenders(report):
            runs = _series(report, label, resolution)
            ax.plot([r.streams for r in runs], [r.frames_per_s for r in runs], marker="o", label=label)
        for bound in (b for b in report.bounds if b.resolution == resolution and b.forward):
            ax.axhline(
                bound.best.frames_per_s,
                linestyle="--",
                linewidth=1,
                color="grey" if bound.backend == "torch" else "black",
                label=f"engine bound ({bound.backend}, batch {bound.best.batch})",
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(report.settings.streams), [str(n) for n in report.settings.streams])
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel("frames/s")
        ax.set_title(f"{resolution}, {report.machine.device_slug(report.settings.device)}")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _latency(report: ThroughputReport, path: Path) -> Path:
    import matplotlib.pyplot as plt
    import numpy as np

    runs = [r for r in report.runs if r.frames]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(runs) + 2), 4.5))
    x = np.arange(len(runs))
    for offset, (name, values) in zip(
        (-0.27, 0.0, 0.27),
        (
            ("p50", [r.latency.p50_ms for r in runs]),
            ("p95", [r.latency.p95_ms for r in runs]),
            ("p99", [r.latency.p99_ms for r in runs]),
        ),
        strict=True,
    ):
        ax.bar(x + offset, values, width=0.27, label=name)
    labels = [f"{r.label.replace('service ', 'svc ')}\n{r.resolution} x{r.streams}" for r in runs]
    ax.set_xticks(x, labels, fontsize=7, rotation=45, ha="right")
    ax.set_ylabel("frame latency, ms (client-measured)")
    ax.set_title("Latency percentiles")
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _batches(report: ThroughputReport, path: Path) -> Path:
    import matplotlib.pyplot as plt

    runs = [r for r in report.runs if r.kind == "service" and r.batches]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sizes = sorted({size for r in runs for size in r.batches})
    width = 0.8 / max(len(runs), 1)
    for i, run in enumerate(runs):
        total = sum(run.batches.values())
        ax.bar(
            [s + (i - (len(runs) - 1) / 2) * width for s in range(len(sizes))],
            [run.batches.get(size, 0) / total for size in sizes],
            width=width,
            label=f"{run.label.removeprefix('service ')} {run.resolution} x{run.streams}",
        )
    ax.set_xticks(range(len(sizes)), [str(s) for s in sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("share of executed batches")
    ax.set_title("Batch sizes the service ran")
    ax.grid(axis="y", alpha=0.3)
    if runs:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
