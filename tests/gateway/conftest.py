"""Fixtures for the gateway tests: a rendered clip, the real service (colour-blob engine) that can be restarted on
its port, and a record of every frame the service read (with ``gap_before_s``), taken at ``StreamFrames``."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from detector.api.ingest_service import IngestService
from detector.config import ServiceConfig, load_config
from detector.server import start_service
from tests.api.scripted import scripted_overrides, write_spec
from tests.conftest import LoopThread
from tests.gateway.media import render_clip


@dataclass(frozen=True)
class Received:
    """One frame as a service read it: which service and call, and the fields the gateway set."""

    service: int
    call: int
    source_id: str
    seq: int
    capture_ts: float
    gap_before_s: float


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s at 10 frames/s, 640x360: longer than any test streams it."""
    return render_clip(tmp_path_factory.mktemp("gateway-clip") / "street.mp4", seconds=60, fps=10)


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 s at 10 frames/s."""
    return render_clip(tmp_path_factory.mktemp("gateway-short") / "short.mp4", seconds=2, fps=10)


@pytest.fixture
def blob_service_config(tmp_path: Path) -> Callable[[int], ServiceConfig]:
    """Settings of a service with the colour-blob engine on the given port (0: a free one); same data dir."""
    spec = write_spec(tmp_path / "blobs.yaml")

    def make(port: int = 0) -> ServiceConfig:
        return load_config(
            None, environ={}, overrides=[f"server.port={port}", *scripted_overrides(spec, tmp_path / "data")]
        )

    return make


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[Received]:
    """Every Frame any in-process service reads from now on, in order."""
    log: list[Received] = []
    calls = itertools.count(1)
    services: dict[int, int] = {}
    original = IngestService.StreamFrames

    async def spy(self: IngestService, request_iterator: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        service = services.setdefault(id(self), len(services) + 1)
        call = next(calls)

        async def tap() -> AsyncIterator[Any]:
            async for frame in request_iterator:
                ts = frame.capture_time.seconds + frame.capture_time.nanos / 1e9
                log.append(Received(service, call, frame.source_id, frame.seq, ts, frame.gap_before_s))
                yield frame

        async for result in original(self, tap(), context):
            yield result

    monkeypatch.setattr(IngestService, "StreamFrames", spy)
    return log


async def until(predicate: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Wait for a condition (checked every 50 ms), failing with ``what`` after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def first_copies(frames: list[Received], source_id: str) -> list[Received]:
    """Each seq of a source once (the first time a service read it; a resend reads it again), by seq."""
    seen: dict[int, Received] = {}
    for f in frames:
        if f.source_id == source_id:
            seen.setdefault(f.seq, f)
    return [seen[s] for s in sorted(seen)]


def max_per_second(times: list[float]) -> int:
    """The most capture times in any one-second window that starts at one of them."""
    times = sorted(times)
    return max((sum(1 for u in times[i:] if u < t + 1.0) for i, t in enumerate(times)), default=0)


@contextmanager
def gateway_process(
    config: ServiceConfig, argv: list[str], log_level: str
) -> Iterator[tuple[LoopThread, subprocess.Popen[str]]]:
    """The real service (in-process, on its own loop thread) and a ``detector gateway`` process aimed at it,
    started with ``argv`` plus ``--target``. Both are stopped on the way out, the process killed if still running."""
    loop = LoopThread()
    try:
        service = loop.run(start_service(config))
        try:
            command = [*argv, "--target", f"127.0.0.1:{service.port}", "--log-level", log_level]
            proc = subprocess.Popen(
                [sys.executable, "-m", "detector.cli", *command],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                yield loop, proc
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        finally:
            loop.run(service.stop(1))
    finally:
        loop.close()
