"""The engine bound: the model's raw forward pass on batches built beforehand, at each batch size.

Nothing else runs: no decoding, no letterbox, no NMS, no gRPC. The best frames/s over the batch sizes (each
batch size's fastest of a few rounds) is the most the service could deliver on this device with this backend.
For comparison the same is measured for the whole engine (letterbox + forward + NMS) at the best batch size, on
decoded frames.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from detector import yolo_env
from detector.bench.frames import FrameSet
from detector.inference.engine import ModelSettings, build_engine
from detector.inference.letterbox import letterbox_batch

ROUNDS = 3


@dataclass(frozen=True)
class BatchSpeed:
    batch: int
    ms_per_batch: float
    frames_per_s: float


@dataclass
class BoundResult:
    backend: str
    resolution: str
    input_shape: tuple[int, int]  # (h, w) of the letterboxed tensor
    forward: list[BatchSpeed] = field(default_factory=list)
    engine_at_best: BatchSpeed | None = None  # letterbox + forward + NMS, at the best forward batch size

    @property
    def best(self) -> BatchSpeed:
        return fastest(self.forward)


def timed(run: Callable[[], object], batch: int, min_time_s: float, sync: Callable[[], None]) -> BatchSpeed:
    """Repeat ``run`` for at least ``min_time_s`` (and at least 3 times) after two warm-up calls."""
    for _ in range(2):
        run()
    sync()
    reps = 0
    started = time.perf_counter()
    while reps < 3 or time.perf_counter() - started < min_time_s:
        run()
        reps += 1
    sync()
    elapsed = time.perf_counter() - started
    return BatchSpeed(batch, elapsed / reps * 1e3, batch * reps / elapsed)


def fastest(speeds: Sequence[BatchSpeed]) -> BatchSpeed:
    return max(speeds, key=lambda s: s.frames_per_s)


def engine_bound(
    backend: str,
    settings: ModelSettings,
    frames: FrameSet,
    batch_sizes: Sequence[int],
    min_time_s: float,
    progress: bool,
) -> BoundResult:
    yolo_env.prepare()
    from ultralytics.nn.autobackend import AutoBackend

    engine = build_engine(backend, settings)
    device = torch.device(engine.device)
    half = settings.half and device.type == "cuda"
    model = AutoBackend(Path(settings.weights), device=device, fp16=half, verbose=False)
    model.eval()
    # The stride the torch engine letterboxes to; an exported graph is fed multiples of 32 (see yolo_engine).
    stride = max(int(model.stride), 32) if backend == "torch" else 32

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    result = BoundResult(backend, frames.resolution, (0, 0))
    tensors = {}
    for batch in batch_sizes:
        images = [frames.images[i % len(frames.images)] for i in range(batch)]
        tensors[batch], _ = letterbox_batch(images, engine.imgsz, stride, device, half)
        result.input_shape = (int(tensors[batch].shape[2]), int(tensors[batch].shape[3]))

    def forward(t: torch.Tensor) -> Callable[[], object]:
        def run() -> object:
            with torch.inference_mode():
                return model(t)

        return run

    # Rounds over all batch sizes, keeping each one's fastest: a burst of other work on the machine then costs
    # one round of one batch size, not its whole measurement. The bound is what the engine can do at best.
    speeds: dict[int, list[BatchSpeed]] = {batch: [] for batch in batch_sizes}
    desc = f"bound {backend} {frames.resolution}"
    for _ in tqdm(range(ROUNDS), desc=desc, leave=False, disable=not progress):
        for batch in batch_sizes:
            speeds[batch].append(timed(forward(tensors[batch]), batch, min_time_s / ROUNDS, sync))
    result.forward = [fastest(speeds[batch]) for batch in batch_sizes]
    best = result.best.batch
    images = [frames.images[i % len(frames.images)] for i in range(best)]
    result.engine_at_best = fastest(
        [timed(lambda: engine.infer(images), best, min_time_s / ROUNDS, sync) for _ in range(ROUNDS)]
    )
    return result
