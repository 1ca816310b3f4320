"""A peer away for OUTAGE_S while events keep being appended: when it is back, every event arrives, in log order,
none lost. Real peers: an aiohttp webhook receiver whose port is closed and opened again, and our own Mosquitto
and nats-server processes (not the system brokers), stopped and started again on the same port and data folder.

The outage is a real span of time (the issue's 30 s), not a wait for something; the tests then wait for the
condition "every event arrived" with a generous timeout. Duplicates (a peer that took an event whose ack was
lost) are allowed by design: order and completeness are checked on first arrivals, by ``event_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import json
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import aiomqtt
import nats
import pytest

from detector.delivery.runner import DeliveryRunner
from detector.delivery.settings import DeliverySettings
from detector.store import SqliteStore
from tests.delivery.test_webhook_delivery import SECRET, Receiver, wait_until
from tests.store.factories import make_event

OUTAGE_S = 30.0  # how long the peer is away while events flow (issue 16)
APPEND_EVERY_S = 1.0  # one event a second meanwhile: about 30 events the peer must catch up on
UNHEALTHY_AFTER_S = OUTAGE_S / 6  # well inside the outage
CATCH_UP_TIMEOUT_S = 90.0
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def first_arrivals(event_ids: list[str]) -> list[str]:
    return list(dict.fromkeys(event_ids))


async def answering(port: int, timeout_s: float = 20.0) -> None:
    """Until something accepts connections on the port."""

    async def poll() -> None:
        while True:
            try:
                _, writer = await asyncio.open_connection(HOST, port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return

    await asyncio.wait_for(poll(), timeout_s)


class Peer(Protocol):
    connector: dict[str, Any]

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def received(self) -> list[str]: ...  # event ids, in order of arrival
    async def close(self) -> None: ...


class WebhookPeer:
    def __init__(self, tmp: Path) -> None:
        self.receiver = Receiver()
        self.connector: dict[str, Any] = {"url": "", "secret": SECRET, "timeout_s": 2.0}

    async def start(self) -> None:
        await self.receiver.start()  # the same port after the first start
        self.connector["url"] = self.receiver.url

    async def stop(self) -> None:
        await self.receiver.stop()

    async def received(self) -> list[str]:
        return list(self.receiver.keys)

    async def close(self) -> None:
        await self.receiver.stop()


class MosquittoPeer:
    """Our own Mosquitto with persistence. Stopped with SIGTERM, so that it writes its persistence file (the
    subscriber's session and its queued messages survive, as on a broker restarted for maintenance)."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.prefix = f"outage-{uuid.uuid4().hex[:8]}"
        (tmp / "mosquitto").mkdir()
        self.conf = tmp / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} {HOST}\nallow_anonymous true\npersistence true\n"
            f"persistence_location {tmp / 'mosquitto'}/\nautosave_interval 1\n"
            # Started as root, Mosquitto drops to the user 'mosquitto', which cannot write into this test's
            # folder: the subscriber's session was then not saved, and whether the catch-up reached it depended
            # on who reconnected first. Staying the user that runs the test keeps the persistence working.
            f"user {getpass.getuser()}\n"
        )
        self.log = (tmp / "mosquitto.log").open("ab")
        self.proc: subprocess.Popen[bytes] | None = None
        self.ids: list[str] = []
        self.subscribed = asyncio.Event()
        self.connector: dict[str, Any] = {"host": HOST, "port": self.port, "topic_prefix": self.prefix, "timeout_s": 2}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=self.log, stderr=self.log)
        await answering(self.port)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())
            await asyncio.wait_for(self.subscribed.wait(), 20)

    async def _read(self) -> None:
        """A subscriber with a persistent session (QoS 1) that reconnects whenever the broker is away."""
        while True:
            try:
                async with aiomqtt.Client(HOST, self.port, identifier=f"sub-{self.prefix}", clean_session=False) as c:
                    await c.subscribe(f"{self.prefix}/events/#", qos=1)
                    self.subscribed.set()
                    async for message in c.messages:
                        assert isinstance(message.payload, bytes)
                        self.ids.append(json.loads(message.payload)["event_id"])
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)  # the broker is away: try again shortly

    async def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(self.proc.wait, 20)

    async def received(self) -> list[str]:
        return list(self.ids)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


class NatsPeer:
    """Our own nats-server with JetStream on a file store; killed (SIGKILL) for the outage. The stream is the
    receiver: what it holds, in stream order, is what arrived."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.store_dir = tmp / "jetstream"
        self.log = (tmp / "nats.log").open("ab")
        self.proc: subprocess.Popen[bytes] | None = None
        self.stream = f"OUTAGE_{uuid.uuid4().hex[:8]}"
        self.connector: dict[str, Any] = {
            "servers": [f"nats://{HOST}:{self.port}"],
            "subject_prefix": f"outage{uuid.uuid4().hex[:8]}",
            "stream": self.stream,
            "timeout_s": 2,
        }

    async def start(self) -> None:
        command = ["nats-server", "-a", HOST, "-p", str(self.port), "-js", "-sd", str(self.store_dir)]
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=self.log)
        await answering(self.port)

    async def stop(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        await asyncio.to_thread(self.proc.wait, 20)

    async def received(self) -> list[str]:
        try:
            nc = await nats.connect(f"nats://{HOST}:{self.port}", allow_reconnect=False)
        except (nats.errors.Error, OSError):
            return []
        try:
            js = nc.jetstream()
            try:
                info = await js.stream_info(self.stream)
            except nats.js.errors.NotFoundError:
                return []
            ids = []
            if info.state.messages == 0:  # a stream just created holds nothing yet (first_seq 0: no message 0)
                return ids
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                message = await js.get_msg(self.stream, seq)
                assert message.data is not None
                ids.append(json.loads(message.data)["event_id"])
            return ids
        finally:
            await nc.close()

    async def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


PEERS: dict[str, tuple[Callable[[Path], Peer], str | None]] = {
    "webhook": (WebhookPeer, None),
    "mqtt": (MosquittoPeer, "mosquitto"),
    "nats": (NatsPeer, "nats-server"),
}


@pytest.mark.parametrize("kind", sorted(PEERS))
def test_a_peer_away_for_the_outage_gets_every_event_in_order_when_it_is_back(kind: str, tmp_path: Path) -> None:
    make_peer, binary = PEERS[kind]
    if binary is not None and shutil.which(binary) is None:
        pytest.skip(f"needs the {binary} binary on PATH (apt-get install {binary}) to run our own broker")

    async def scenario() -> None:
        peer = make_peer(tmp_path)
        health: list[bool] = []

        async def on_health(name: str, serving: bool) -> None:
            health.append(serving)

        try:
            await peer.start()
            connector = {"name": f"outage-{kind}", "kind": kind, **peer.connector}
            delivery = DeliverySettings.model_validate(
                {
                    "connectors": [connector],
                    "backoff": {"initial_s": 0.1, "max_s": 1.0, "jitter": 1.0},
                    "unhealthy_after_s": UNHEALTHY_AFTER_S,
                }
            )
            with SqliteStore(tmp_path / "data") as store:
                runner = DeliveryRunner(store, delivery, on_health=on_health)
                await runner.start()
                try:
                    ids, during = await _outage(store, runner, peer)
                finally:
                    await runner.stop()
            received = await peer.received()
            delivered = first_arrivals(received)
            assert delivered == ids  # every event, in log order
            assert health == [False, True]  # unhealthy during the outage, serving again after it
            print(  # the outage figures (pytest -s shows them)
                f"{kind}: {during} events appended during the {OUTAGE_S:.0f} s outage; {len(ids)} in all, "
                f"{len(delivered)} delivered in log order, {len(received) - len(delivered)} redelivered, "
                f"lost {len(set(ids) - set(delivered))}"
            )
        finally:
            await peer.close()

    asyncio.run(asyncio.wait_for(scenario(), OUTAGE_S + CATCH_UP_TIMEOUT_S + 60))


async def _outage(store: SqliteStore, runner: DeliveryRunner, peer: Peer) -> tuple[list[str], int]:
    """The ids of every event appended (before, during and after the outage), and how many during it."""
    loop = asyncio.get_running_loop()

    def append(i: int) -> str:
        return store.append([make_event(incident_id=f"inc-{i}")])[0].event_id

    ids = [await asyncio.to_thread(append, i) for i in range(3)]
    await _until(lambda: _has(peer, ids))
    await peer.stop()
    end = loop.time() + OUTAGE_S
    while loop.time() < end:
        ids.append(await asyncio.to_thread(append, len(ids)))
        await asyncio.sleep(APPEND_EVERY_S)  # the pace events are produced at during the outage
    during = len(ids) - 3
    status = runner.status()[0]
    assert status.last_error, "the outage was never noticed"
    assert status.lag_events > 0 and not status.healthy
    await peer.start()
    ids += [await asyncio.to_thread(append, len(ids) + i) for i in range(3)]
    await _until(lambda: _has(peer, ids), CATCH_UP_TIMEOUT_S)
    await wait_until(lambda: runner.status()[0].lag_events == 0)
    return ids, during


async def _has(peer: Peer, ids: list[str]) -> bool:
    return set(ids) <= set(await peer.received())


async def _until(condition: Callable[[], Awaitable[bool]], timeout_s: float = 20.0) -> None:
    async def poll() -> None:
        while not await condition():
            await asyncio.sleep(0.1)

    await asyncio.wait_for(poll(), timeout_s)
