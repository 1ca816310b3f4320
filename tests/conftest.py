"""Shared fixtures: the real model, real street photos from ../shared, and an in-process service on a free port."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import pytest

from detector.config import DEFAULT_WEIGHTS, ServiceConfig, load_config
from detector.inference.engine import Engine, ModelSettings, build_engine

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
T = TypeVar("T")


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with the reason when ../shared is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (the read-only ../shared checkout beside the repo); it is absent here")
    return path


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture(scope="session")
def engine() -> Engine:
    """The committed model on the CPU, at the service's default input size, with a low threshold so that
    comparisons see many boxes."""
    return build_engine("torch", ModelSettings(weights=DEFAULT_WEIGHTS, device="cpu", imgsz=320, conf=0.05))


@pytest.fixture(scope="session")
def street_photos() -> list[np.ndarray]:
    """Eight real street photos (city-garbage and potholes), decoded as BGR."""
    files = sorted(shared_path("datasets", "city-garbage", "images", "train").glob("*.jpg"))[:4]
    files += sorted(shared_path("datasets", "potholes", "images").rglob("*.jpg"))[:4]
    images = [cv2.imread(str(f)) for f in files]
    assert all(im is not None for im in images)
    return images


@pytest.fixture
def service_config(tmp_path: Path) -> Callable[..., ServiceConfig]:
    """Settings for an in-process service on a free loopback port; keyword overrides are 'section.key' strings."""

    def make(**overrides: object) -> ServiceConfig:
        sets = [
            "server.port=0",
            "server.grace_s=5",
            f"store.data_dir={tmp_path}/data",
            "model.device=cpu",
            "model.conf=0.05",
        ]
        sets += [f"{k.replace('__', '.')}={v}" for k, v in overrides.items()]
        return load_config(None, environ={}, overrides=sets)

    return make


class LoopThread:
    """An asyncio loop in a thread, so that synchronous tests can drive async servers and clients."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return bytes(buf.tobytes())
