"""The loop a user would write: one thread per stream, each decoding a JPEG and calling ``YOLO.predict`` on it.

Each thread has its own ``YOLO`` object (ultralytics' advice for threads: a predictor is not thread-safe) and
runs frames one at a time, with the same weights, frames, device, input size and thresholds as the service.
No fp16 and no batching: that is the point of the comparison.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from detector import yolo_env
from detector.bench.frames import FrameSet
from detector.bench.service_load import LoadResult, LoadSettings, process_cpu_s
from detector.bench.stats import Completion
from detector.types import ImageArray


@dataclass(frozen=True)
class PredictSettings:
    weights: Path
    device: str  # "cpu" or "cuda:0"
    imgsz: int
    conf: float
    iou: float


def run_baseline(
    predict: PredictSettings, frames: FrameSet, settings: LoadSettings, label: str, progress: bool
) -> LoadResult:
    yolo_env.prepare()
    from ultralytics.models.yolo.model import YOLO

    models = [YOLO(str(predict.weights), task="detect") for _ in range(settings.streams)]
    for model in models:  # builds each predictor (and warms the device) before the clock starts
        _predict(model, frames.images[0], predict)
    lock = threading.Lock()
    completions: list[Completion] = []
    errors: list[str] = []
    start = threading.Barrier(settings.streams + 1)
    times: dict[str, float] = {}

    def loop(index: int) -> None:
        model = models[index]
        start.wait()
        stop_at = times["stop_at"]
        seq = 0
        while (settings.max_frames == 0 or seq < settings.max_frames) and time.perf_counter() < stop_at:
            seq += 1
            jpeg = frames.jpegs[(index * 7 + seq) % len(frames.jpegs)]
            sent = time.perf_counter()
            image = np.asarray(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), dtype=np.uint8)
            decoded = time.perf_counter()
            try:
                _predict(model, image, predict)
            except Exception as exc:  # a failing predict is an error of the run, not a crash of the bench
                with lock:
                    errors.append(f"stream {index} frame {seq}: {exc}")
                continue
            done = time.perf_counter()
            with lock:
                completions.append(Completion(sent, done, 1, (decoded - sent) * 1e3, 0.0, (done - decoded) * 1e3))
            if settings.stream_fps > 0:
                time.sleep(max(sent + 1.0 / settings.stream_fps - time.perf_counter(), 0.0))

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(settings.streams)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    times["stop_at"] = started + settings.warmup_s + settings.duration_s
    cpu_before = process_cpu_s()
    start.wait()
    bar = tqdm(
        total=round(settings.warmup_s + settings.duration_s), desc=label, unit="s", leave=False, disable=not progress
    )
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(0.5)
        elapsed = min(time.perf_counter(), times["stop_at"]) - started
        bar.n = round(elapsed)
        bar.set_postfix(frames=len(completions), fps=f"{len(completions) / max(elapsed, 1e-9):.1f}")
    bar.close()
    stopped = min(times["stop_at"], time.perf_counter())
    return LoadResult(completions, len(errors), started, stopped, errors[:5], process_cpu_s() - cpu_before)


def _predict(model: Any, image: ImageArray, p: PredictSettings) -> None:
    model.predict(image, imgsz=p.imgsz, conf=p.conf, iou=p.iou, device=p.device, verbose=False)
