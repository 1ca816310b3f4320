"""Start the real service in-process on a free loopback port (the test's own event loop)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from detector.config import ServiceConfig
from detector.inference.engine import Engine
from detector.server import Service, start_service


@asynccontextmanager
async def serving(config: ServiceConfig, engine: Engine) -> AsyncIterator[tuple[Service, str]]:
    service = await start_service(config, engine=engine)
    try:
        yield service, f"127.0.0.1:{service.port}"
    finally:
        await service.stop(grace_s=2)


async def frames_of(messages: list) -> AsyncIterator:  # type: ignore[type-arg]
    for m in messages:
        yield m
