"""The engine bound: the model's raw forward pass on batches built beforehand, at each batch size.

Nothing else runs: no decoding, no letterbox, no NMS, no gRPC. The best frames/s over the batch sizes (each
batch size's fastest of a few rounds) is the most the service could deliver on this device with this backend.
For comparison the same is measured for the whole engine (letterbox + forward + NMS) at the best batch size, on
decoded frames, and for the **pipeline**: the frame set's JPEGs decoded as the service decodes them (reduced in the
DCT domain when the frames are at least twice the model input and ``ingest.reduced_decode`` is on, else whole),
letterbox, forward, NMS and boxes mapped back to full-frame pixels, in a tight loop that decodes the next batch in
the budget's decode threads while the model runs the current one (as the service overlaps them), at the best batch
size and its neighbours, under the service's thread budget: as many loops side by side as the service has
inference workers (detector/threads.py), each with its own share of the frames, and onnxruntime sessions sized as
the service sizes them. That is the most the service could deliver with its
own decoding and nothing else (no gRPC, batcher, tracking or rules).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from detector import yolo_env
from detector.bench.frames import FrameSet
from detector.inference.engine import Engine, ModelSettings, build_engine
from detector.inference.letterbox import letterbox_batch
from detector.inference.tiling import Tile
from detector.inference.yolo_engine import size_onnx_session
from detector.ingest.config import IngestSettings
from detector.ingest.decode import ImageLimits, dct_scale, decode_scaled
from detector.threads import ThreadBudget, ThreadSettings, apply_process_threads, plan_threads
from detector.types import Detections, ImageArray

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
    # decode + letterbox + forward + NMS + unscale from the JPEGs, at (or next to) the best forward batch size:
    decode_scale: int = 1  # the DCT scale reduced decoding picks for these frames (1: they are decoded whole)
    pipeline_full: BatchSpeed | None = None  # every frame decoded whole (ingest.reduced_decode=false)
    pipeline_reduced: BatchSpeed | None = None  # decoded at decode_scale; None when that is 1 (same as full)
    pipeline_at_best: BatchSpeed | None = None  # the one the service as configured runs: reduced if it may
    pipeline_decode_scale: int = 1  # the scale pipeline_at_best decoded at

    @property
    def best(self) -> BatchSpeed:
        return fastest(self.forward)

    def pipeline(self, reduced_decode: bool) -> tuple[BatchSpeed | None, int]:
        """The pipeline bound of a service with ``ingest.reduced_decode`` set so, and the scale it decoded at."""
        if reduced_decode and self.decode_scale > 1 and self.pipeline_reduced is not None:
            return self.pipeline_reduced, self.decode_scale
        return self.pipeline_full, 1


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


def timed_parallel(
    runs: Sequence[Callable[[], object]], batch: int, min_time_s: float, sync: Callable[[], None]
) -> BatchSpeed:
    """:func:`timed` with one thread per entry of ``runs`` calling it side by side, as the service's inference
    workers do (detector/threads.py); frames/s counts every thread's batches, ms/batch is per call."""
    if len(runs) == 1:
        return timed(runs[0], batch, min_time_s, sync)
    start = threading.Barrier(len(runs) + 1)
    reps = [0] * len(runs)
    deadline = [0.0]

    def loop(index: int) -> None:
        for _ in range(2):
            runs[index]()
        start.wait()
        start.wait()  # the clock starts after every thread has warmed up
        while reps[index] < 3 or time.perf_counter() < deadline[0]:
            runs[index]()
            reps[index] += 1

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(len(runs))]
    for thread in threads:
        thread.start()
    start.wait()
    sync()
    started = time.perf_counter()
    deadline[0] = started + min_time_s
    start.wait()
    for thread in threads:
        thread.join()
    sync()
    elapsed = time.perf_counter() - started
    calls = sum(reps)
    return BatchSpeed(batch, elapsed / calls * len(runs) * 1e3, batch * calls / elapsed)


def fastest(speeds: Sequence[BatchSpeed]) -> BatchSpeed:
    return max(speeds, key=lambda s: s.frames_per_s)


@contextlib.contextmanager
def process_threads(budget: ThreadBudget) -> Iterator[None]:
    """The service's process-wide thread pools (torch, OpenCV) while inside; the bench's own afterwards, so that the
    baseline that runs later in this process keeps the libraries' defaults."""
    import cv2

    torch_threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    apply_process_threads(budget)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        cv2.setNumThreads(cv_threads)


def engine_bound(
    backend: str,
    settings: ModelSettings,
    frames: FrameSet,
    batch_sizes: Sequence[int],
    min_time_s: float,
    progress: bool,
    threads: ThreadBudget | None = None,
    decode_modes: Sequence[bool] = (True, False),
    reduced_decode: bool = True,
    limits: ImageLimits | None = None,
) -> BoundResult:
    """The forward bound at each batch size, the engine and the pipeline at the best one.

    ``threads``: the service's budget (default: what ``detector serve`` plans for this device with no ``threads``
    section); the engine runs with its inference threads and the process with its torch/OpenCV pools.
    ``decode_modes``: which pipelines to time (True: reduced decode, False: whole), ``reduced_decode``: the one
    the service as configured runs, reported as ``pipeline_at_best``.
    """
    budget = threads if threads is not None else plan_threads(ThreadSettings(), settings.device)
    with process_threads(budget):
        return _engine_bound(
            backend,
            settings,
            frames,
            batch_sizes,
            min_time_s,
            progress,
            budget,
            decode_modes,
            reduced_decode,
            limits if limits is not None else IngestSettings().limits,
        )


def _engine_bound(
    backend: str,
    settings: ModelSettings,
    frames: FrameSet,
    batch_sizes: Sequence[int],
    min_time_s: float,
    progress: bool,
    budget: ThreadBudget,
    decode_modes: Sequence[bool],
    reduced_decode: bool,
    limits: ImageLimits,
) -> BoundResult:
    yolo_env.prepare()
    from ultralytics.nn.autobackend import AutoBackend

    threads = budget.model_threads()
    engine = build_engine(backend, settings, threads)
    device = torch.device(engine.device)
    half = settings.half and device.type == "cuda"
    model = AutoBackend(Path(settings.weights), device=device, fp16=half, verbose=False)
    model.eval()
    if backend == "onnx":
        size_onnx_session(model, Path(settings.weights), threads)  # the service's session, not the default
    workers = budget.inference_workers
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
            run = forward(tensors[batch])
            speeds[batch].append(timed_parallel([run] * workers, batch, min_time_s / ROUNDS, sync))
    result.forward = [fastest(speeds[batch]) for batch in batch_sizes]
    best = result.best.batch
    images = [frames.images[i % len(frames.images)] for i in range(best)]
    infer = [lambda: engine.infer(images)] * workers
    result.engine_at_best = fastest([timed_parallel(infer, best, min_time_s / ROUNDS, sync) for _ in range(ROUNDS)])
    with ThreadPoolExecutor(budget.decode, thread_name_prefix="bound-decode") as decoder:
        _pipeline_bound(
            result, engine, frames, batch_sizes, min_time_s, sync, decode_modes, reduced_decode, limits, decoder,
            workers,
        )  # fmt: skip
    return result


def _pipeline_bound(
    result: BoundResult,
    engine: Engine,
    frames: FrameSet,
    batch_sizes: Sequence[int],
    min_time_s: float,
    sync: Callable[[], None],
    decode_modes: Sequence[bool],
    reduced_decode: bool,
    limits: ImageLimits,
    decoder: ThreadPoolExecutor,
    workers: int = 1,
) -> None:
    """decode + letterbox + forward + NMS + unscale at the best forward batch size and its neighbours in
    ``batch_sizes`` (the fastest wins: decoding a batch one frame at a time shifts the best size a little)."""
    result.decode_scale = dct_scale(frames.width, frames.height, engine.imgsz)
    modes = sorted({m and result.decode_scale > 1 for m in decode_modes}, reverse=True)  # reduced first
    sizes = sorted(batch_sizes)
    at = sizes.index(result.best.batch)
    candidates = sizes[max(0, at - 1) : at + 2]
    speeds: dict[tuple[bool, int], list[BatchSpeed]] = {(m, b): [] for m in modes for b in candidates}
    for _ in range(ROUNDS):
        for mode, batch in speeds:
            with contextlib.ExitStack() as stack:
                runs = [
                    stack.enter_context(pipeline_step(engine, frames, batch, mode, limits, decoder, offset=k))
                    for k in range(workers)
                ]
                speeds[mode, batch].append(timed_parallel(runs, batch, min_time_s / ROUNDS, sync))
    for mode in modes:
        speed = fastest([fastest(speeds[mode, b]) for b in candidates])
        if mode:
            result.pipeline_reduced = speed
        else:
            result.pipeline_full = speed
    result.pipeline_at_best, result.pipeline_decode_scale = result.pipeline(reduced_decode)


@contextlib.contextmanager
def pipeline_step(
    engine: Engine,
    frames: FrameSet,
    batch: int,
    reduced: bool,
    limits: ImageLimits,
    decoder: Executor,
    offset: int = 0,
) -> Iterator[Callable[[], list[Detections]]]:
    """A call that runs the engine on the next ``batch`` of the frame set's JPEGs (cycling) and maps the boxes
    back to full-frame pixels, while ``decoder``'s threads decode the batch after it, as the service decodes
    (with reduced decoding: at ``dct_scale`` for the model's input size). Decoding overlaps the forward pass as
    it does in the service, so this is the most a process can do with both, without gRPC, queues, tracking or
    rules. ``offset``: where in the frame set this loop starts (parallel workers start apart)."""
    policy = (lambda w, h: dct_scale(w, h, engine.imgsz)) if reduced else None
    whole = Tile(0, 0, frames.width, frames.height, full=True)
    position = offset * 7

    def decode_next() -> list[Future[tuple[ImageArray, int]]]:
        nonlocal position
        start, position = position, position + batch
        jpegs = [frames.jpegs[i % len(frames.jpegs)] for i in range(start, start + batch)]
        return [decoder.submit(decode_scaled, jpeg, limits, policy) for jpeg in jpegs]

    pending = decode_next()

    def run() -> list[Detections]:
        nonlocal pending
        decoded = [future.result() for future in pending]
        pending = decode_next()
        detections, _ = engine.infer([image for image, _ in decoded])
        return [
            whole.unscale(det, scale, frames.height, frames.width)
            for det, (_, scale) in zip(detections, decoded, strict=True)
        ]

    try:
        yield run
    finally:
        for future in pending:
            future.result()  # leave no decode running into the next measurement
