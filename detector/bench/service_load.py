"""The real service under load: `detector serve` in its own process, N concurrent streams over loopback gRPC.

The service runs as its own process, as it does in production, so that the load generator's gRPC work and the
service share the CPU the way a gateway on the same host would, but not one interpreter lock. Its per-batch
stage timings are read from its own Prometheus endpoint before and after the measured window.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psutil  # type: ignore[import-untyped]
from tqdm import tqdm

from detector.api.client import IngestClient, OutgoingFrame
from detector.api.health_probe import HealthProbe
from detector.bench.frames import FrameSet
from detector.bench.stats import Completion
from detector.types import DeliveryMode

STAGES = ("decode", "queue", "preprocess", "forward", "postprocess")


class ServiceStartError(Exception):
    """`detector serve` exited or never reported SERVING; the message ends with its log."""


@dataclass(frozen=True)
class StageTotals:
    """Cumulative Prometheus sums: per-stage milliseconds and observation counts, and batches executed."""

    at_s: float  # perf_counter when scraped
    sum_ms: dict[str, float]
    count: dict[str, float]
    batches: float
    batch_frames: float
    cpu_s: float = 0.0  # user + system CPU seconds of the serve process

    def minus(self, earlier: StageTotals) -> StageTotals:
        return StageTotals(
            self.at_s - earlier.at_s,
            {k: v - earlier.sum_ms.get(k, 0.0) for k, v in self.sum_ms.items()},
            {k: v - earlier.count.get(k, 0.0) for k, v in self.count.items()},
            self.batches - earlier.batches,
            self.batch_frames - earlier.batch_frames,
            self.cpu_s - earlier.cpu_s,
        )


@dataclass
class LoadResult:
    """Every answered frame of one run, the error count, and the run's start and stop (perf_counter seconds)."""

    completions: list[Completion]
    errors: int
    started_s: float
    stopped_s: float
    error_examples: list[str] = field(default_factory=list)
    cpu_s: float = 0.0  # CPU seconds of this (the load generator's or the baseline's) process during the run


@dataclass(frozen=True)
class LoadSettings:
    streams: int
    duration_s: float  # measured seconds after the warm-up
    warmup_s: float
    max_frames: int = 0  # per stream; 0 = until the time is up
    window: int = 8  # frames one stream may have unanswered
    stream_fps: float = 0.0  # 0 = as fast as the window allows (saturation)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServiceProcess:
    """``with ServiceProcess(overrides, log_path) as service:`` a SERVING `detector serve` on loopback."""

    def __init__(
        self,
        overrides: list[str],
        log_path: Path,
        config_path: Path | None = None,
        startup_timeout_s: float = 600.0,
    ) -> None:
        self.port = free_port()
        self.metrics_port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self._log_path = log_path
        self._timeout_s = startup_timeout_s
        self._command = [sys.executable, "-m", "detector.cli", "serve"]
        if config_path is not None:
            self._command += ["--config", str(config_path)]
        sets = [
            *overrides,
            "server.host=127.0.0.1",
            f"server.port={self.port}",
            f"server.metrics_port={self.metrics_port}",
        ]
        for item in sets:
            self._command += ["--set", item]
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServiceProcess:
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(self._command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        try:
            self._wait_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)  # the graceful path: drain, then exit 0
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _wait_serving(self) -> None:
        deadline = time.monotonic() + self._timeout_s
        with HealthProbe(self.target) as probe:
            while time.monotonic() < deadline:
                assert self._process is not None
                if self._process.poll() is not None:
                    raise ServiceStartError(
                        f"detector serve exited with {self._process.returncode}; its log "
                        f"({self._log_path}) ends:\n{self.log_tail()}"
                    )
                if probe.serving(timeout_s=1):
                    return
                time.sleep(0.25)
        raise ServiceStartError(f"detector serve was not SERVING after {self._timeout_s:.0f} s:\n{self.log_tail()}")

    def scrape(self) -> StageTotals:
        """The service's cumulative stage and batch timings from its /metrics endpoint."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        at = time.perf_counter()
        sums: dict[str, float] = {}
        counts: dict[str, float] = {}
        batches = batch_frames = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "streetwatch_stage_ms_sum":
                    sums[sample.labels["stage"]] = sample.value
                elif sample.name == "streetwatch_stage_ms_count":
                    counts[sample.labels["stage"]] = sample.value
                elif sample.name == "streetwatch_batch_size_count":
                    batches = sample.value
                elif sample.name == "streetwatch_batch_size_sum":
                    batch_frames = sample.value
        return StageTotals(at, sums, counts, batches, batch_frames, self.cpu_seconds())

    def cpu_seconds(self) -> float:
        if self._process is None:
            return 0.0
        try:
            times = psutil.Process(self._process.pid).cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)


async def drive_streams(
    target: str, frames: FrameSet, settings: LoadSettings, label: str, progress: bool
) -> LoadResult:
    """Open ``settings.streams`` StreamFrames calls and push LOSSLESS frames until the time (or frame cap) is up."""
    clients = [IngestClient(target) for _ in range(settings.streams)]
    await asyncio.gather(*(c.wait_ready(30) for c in clients))
    completions: list[Completion] = []
    errors: list[str] = []
    cpu_before = process_cpu_s()
    started = time.perf_counter()
    stop_at = started + settings.warmup_s + settings.duration_s
    bar = tqdm(total=round(stop_at - started), desc=label, unit="s", leave=False, disable=not progress)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.5)
            elapsed = min(time.perf_counter(), stop_at) - started
            bar.n = round(elapsed)
            bar.set_postfix(frames=len(completions), fps=f"{len(completions) / max(elapsed, 1e-9):.1f}")

    async def one_stream(index: int, client: IngestClient) -> None:
        slots = asyncio.Semaphore(settings.window)
        sent_at: dict[int, float] = {}
        source_id = f"bench-{index:03d}"

        async def requests() -> AsyncIterator[OutgoingFrame]:
            seq = 0
            next_at = started
            while settings.max_frames == 0 or seq < settings.max_frames:
                await slots.acquire()
                if settings.stream_fps > 0:
                    await asyncio.sleep(max(next_at - time.perf_counter(), 0.0))
                    next_at += 1.0 / settings.stream_fps
                if time.perf_counter() >= stop_at:
                    return
                seq += 1
                # Streams start at different photos, so that a batch does not hold one picture many times.
                jpeg = frames.jpegs[(index * 7 + seq) % len(frames.jpegs)]
                frame = OutgoingFrame(source_id, seq, time.time(), jpeg=jpeg, mode=DeliveryMode.LOSSLESS)
                sent_at[seq] = time.perf_counter()
                yield frame

        async for answer in client.send(requests()):
            done = time.perf_counter()
            slots.release()
            sent = sent_at.pop(answer.seq, done)
            if answer.error is not None:
                errors.append(f"{answer.source_id}#{answer.seq}: {answer.error.value} {answer.error_message}")
                continue
            completions.append(
                Completion(sent, done, answer.batch_size, answer.decode_ms, answer.queued_ms, answer.inference_ms)
            )

    tick = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*(one_stream(i, c) for i, c in enumerate(clients)))
    finally:
        tick.cancel()
        bar.close()
        await asyncio.gather(*(c.close() for c in clients))
    stopped = min(stop_at, time.perf_counter())
    return LoadResult(completions, len(errors), started, stopped, errors[:5], process_cpu_s() - cpu_before)


def process_cpu_s() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)
