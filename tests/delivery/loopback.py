"""A scripted HTTP peer on a loopback port, the base of the test receivers (webhook, GeoReport v2): it can be
stopped and started again on the same port (an outage), and answers its next calls from ``script``: an HTTP
status, ``HANG`` (no answer until the peer stops: the client's timeout ends the call first), or 429 with
``Retry-After: 1``; anything else, and an empty script, means "serve normally"."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

HANG = "hang"


class ScriptedPeer:
    def __init__(self) -> None:
        self.script: list[int | str] = []
        self.port = 0  # 0 until the first start picks a free one; later starts reuse it
        self._runner: web.AppRunner | None = None
        self._release = asyncio.Event()

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def next_action(self) -> int | str:
        return self.script.pop(0) if self.script else 200

    async def scripted_failure(self, action: int | str, error: Callable[[int], web.Response]) -> web.Response | None:
        """The answer ``action`` calls for when it is a failure (``error`` renders a status); None to serve."""
        if action == HANG:
            await self._release.wait()  # set only by stop()
            return web.Response(status=503)
        if action == 429:
            return web.Response(status=429, headers={"Retry-After": "1"})
        if isinstance(action, int) and action != 200:
            return error(action)
        return None

    async def start(self) -> None:
        self._release = asyncio.Event()
        app = web.Application()
        self.add_routes(app)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        self._release.set()  # a hanging call (long timed out by the client) ends now
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
