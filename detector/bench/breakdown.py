"""Where a frame's time goes in the service, from the service's own timings, and which stage limits throughput.

Per frame (client-measured latency, split):

- decode, queue: each frame's own ``FrameResult.timings`` (decode includes waiting for a decode thread);
- pre-process, forward, post-process: the frame's batch took ``inference_ms``; it is split in the proportions
  the service's Prometheus stage histograms show for the window;
- gRPC + other: the rest of the client-measured latency: transport, (de)serialisation, the tracking and
  incident stages, waiting for earlier frames of the stream (answers are in order), event-loop scheduling.

Throughput is limited by the inference workers when they are busy nearly all the time (then the biggest of their
three steps is the bottleneck); otherwise frames do not reach it fast enough, and the biggest of decode and
gRPC + other is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detector.bench.service_load import StageTotals
from detector.bench.stats import Completion

WORKER_STEPS = ("preprocess", "forward", "postprocess")
SATURATED = 0.85  # worker busy fraction above which the worker is what limits throughput


@dataclass(frozen=True)
class Breakdown:
    """Mean milliseconds per frame in each stage (latency view) and the inference worker's load."""

    decode_ms: float
    queue_ms: float
    preprocess_ms: float
    forward_ms: float
    postprocess_ms: float
    grpc_other_ms: float
    latency_ms: float
    worker_busy: float  # fraction of wall time the inference worker spent on batches
    worker_ms_per_frame: float  # worker time per frame (capacity view: 1000 / this is its frames/s ceiling)
    mean_batch: float
    cpu_share: float | None = None  # CPU the service and the load generator used, as a share of all cores

    def stages(self) -> dict[str, float]:
        return {
            "decode": self.decode_ms,
            "queue": self.queue_ms,
            "preprocess": self.preprocess_ms,
            "forward": self.forward_ms,
            "postprocess": self.postprocess_ms,
            "grpc+other": self.grpc_other_ms,
        }


@dataclass(frozen=True)
class Bottleneck:
    stage: str
    reason: str


def breakdown(
    completions: Sequence[Completion], delta: StageTotals, cpu_share: float | None = None, workers: int = 1
) -> Breakdown:
    """``delta``: the service's stage totals over the measured window (later scrape minus earlier);
    ``cpu_share``: the CPU used by the service and the load generator together, as a share of all cores;
    ``workers``: the service's inference workers (busy is their mean share of wall time)."""
    if not completions:
        nan = float("nan")
        return Breakdown(nan, nan, nan, nan, nan, nan, nan, 0.0, nan, nan)
    decode = float(np.mean([c.decode_ms for c in completions]))
    queue = float(np.mean([c.queued_ms for c in completions]))
    inference = float(np.mean([c.inference_ms for c in completions]))
    latency = float(np.mean([c.latency_ms for c in completions]))
    worker_total = sum(delta.sum_ms.get(step, 0.0) for step in WORKER_STEPS)
    shares = {
        step: (delta.sum_ms.get(step, 0.0) / worker_total if worker_total > 0 else 1.0 / len(WORKER_STEPS))
        for step in WORKER_STEPS
    }
    frames = delta.batch_frames if delta.batch_frames > 0 else float(len(completions))
    return Breakdown(
        decode_ms=decode,
        queue_ms=queue,
        preprocess_ms=inference * shares["preprocess"],
        forward_ms=inference * shares["forward"],
        postprocess_ms=inference * shares["postprocess"],
        grpc_other_ms=max(latency - decode - queue - inference, 0.0),
        latency_ms=latency,
        # A batch that straddles the window's start is counted whole, which can push a short window past 100%.
        worker_busy=min(worker_total / (delta.at_s * 1e3 * workers), 1.0) if delta.at_s > 0 else 0.0,
        worker_ms_per_frame=worker_total / frames if frames > 0 else float("nan"),
        mean_batch=delta.batch_frames / delta.batches if delta.batches > 0 else float("nan"),
        cpu_share=cpu_share,
    )


def find_bottleneck(b: Breakdown) -> Bottleneck:
    found = _find(b)
    if b.cpu_share is not None and b.cpu_share >= SATURATED:
        # On a machine without an accelerator the model shares the cores with decoding and gRPC: all of it
        # competes for the same CPU, so less work anywhere speeds up the forward pass too.
        found = Bottleneck(
            found.stage,
            f"{found.reason}; the CPU is saturated ({b.cpu_share:.0%} of all cores in use by the service and the "
            "load generator), so decode and gRPC work also slow the model down",
        )
    return found


def _find(b: Breakdown) -> Bottleneck:
    worker = {"preprocess": b.preprocess_ms, "forward": b.forward_ms, "postprocess": b.postprocess_ms}
    if b.worker_busy >= SATURATED:
        stage = max(worker, key=lambda k: worker[k])
        share = worker[stage] / max(sum(worker.values()), 1e-9)
        return Bottleneck(
            stage,
            f"the inference workers are busy {b.worker_busy:.0%} of the time and {stage} is {share:.0%} of their work "
            f"({b.worker_ms_per_frame:.1f} ms of worker time per frame, batches of {b.mean_batch:.1f} on average)",
        )
    upstream = {"decode": b.decode_ms, "grpc+other": b.grpc_other_ms}
    stage = max(upstream, key=lambda k: upstream[k])
    return Bottleneck(
        stage,
        f"the inference workers are idle {1 - b.worker_busy:.0%} of the time, so frames reach them too slowly; "
        f"{stage} is the largest upstream stage at {upstream[stage]:.1f} ms per frame",
    )
