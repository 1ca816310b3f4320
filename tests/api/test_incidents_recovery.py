"""Getting evidence and incidents back, and clients that survive the service: a cleared incident keeps its
photo, `detector incidents list/show/evidence`, `detector subscribe` across a real restart on the same port,
and a shutdown that does not wait for idle subscribers. Real service on loopback, real SQLite, colour-blob
engine (tests/api/scripted.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import queue
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest

from detector.api.client import IngestClient
from detector.api.incidents_client import IncidentsClient
from detector.config import ServiceConfig, load_config
from detector.server import Service, start_service
from detector.store.model import IncidentState
from detector.types import EventType, IncidentEvent
from tests.api.scripted import scripted_overrides, stall_frames, write_spec
from tests.api.serving import frames_of
from tests.conftest import LoopThread


def _config(tmp_path: Path, port: int = 0) -> ServiceConfig:
    spec = write_spec(tmp_path / "blobs.yaml")
    return load_config(None, environ={}, overrides=[f"server.port={port}", *scripted_overrides(spec, tmp_path / "d")])


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "detector.cli", *args], capture_output=True, text=True, timeout=120)


async def _send(target: str, frames: list) -> None:  # type: ignore[type-arg]
    async with IngestClient(target) as client:
        _ = [r async for r in client.stream(frames_of(frames))]


async def _events(target: str, after: int, count: int) -> list[IncidentEvent]:
    async with IncidentsClient(target) as client, client.subscribe("reader", after, idle_timeout_s=30) as events:
        out: list[IncidentEvent] = []
        async for event in events:
            out.append(event)
            if len(out) == count:
                break
        return out


def test_a_cleared_incident_keeps_its_evidence_and_the_cli_lists_shows_and_fetches_it(tmp_path, loop_thread):
    service = loop_thread.run(start_service(_config(tmp_path)))
    target = f"127.0.0.1:{service.port}"
    out_dir = tmp_path / "evidence"
    try:
        loop_thread.run(_send(target, stall_frames("cam-7", seconds=200, fps=1, present=[(0, 130)])))
        loop_thread.run(_send(target, stall_frames("cam-8", seconds=130, fps=1, present=[(0, 130)])))

        async def look() -> tuple[list[IncidentEvent], dict[str, object], dict[str, bytes]]:
            events = await _events(target, 0, 3)
            async with IncidentsClient(target) as client:
                cleared = next(e for e in events if e.type is EventType.CLEARED)
                got = await client.get(cleared.incident_id)
                listed = {r.incident_id: r for r in await client.list_all(IncidentState.CLEARED)}
                photos = {e.sha256: await client.evidence(e.sha256) for e in got.last_event.evidence}
            return events, {"got": got, "listed": listed}, photos

        events, found, photos = loop_thread.run(look())
        cam7 = [e for e in events if e.source_id == "cam-7"]
        cam8 = next(e for e in events if e.source_id == "cam-8")
        incident_id = cam7[0].incident_id
        prefix = incident_id[:8]
        fetched = _cli("incidents", "evidence", prefix, "--out", str(out_dir), "--target", target)
        shown = _cli("incidents", "show", prefix, "--target", target)
        all_json = _cli("incidents", "list", "--json", "--target", target)
        by_source = _cli("incidents", "list", "--json", "--source", "cam-7", "--target", target)
        limited = _cli("incidents", "list", "--json", "--limit", "1", "--target", target)
        no_garbage = _cli("incidents", "list", "--category", "EXPOSED_GARBAGE", "--target", target)
        no_garbage_json = _cli("incidents", "list", "--json", "--category", "EXPOSED_GARBAGE", "--target", target)
        open_text = _cli("incidents", "list", "--state", "open", "--target", target)
        text = _cli("incidents", "list", "--target", target)
        unknown = _cli("incidents", "evidence", "zzzz", "--out", str(out_dir), "--target", target)
    finally:
        loop_thread.run(service.stop(1))

    # The store keeps the OPENED photo on the CLEARED event, so the cleared incident still has it.
    assert [e.type for e in cam7] == [EventType.OPENED, EventType.CLEARED]
    assert cam7[0].evidence and cam7[1].evidence == cam7[0].evidence
    got, listed = found["got"], found["listed"]
    assert got.state is IncidentState.CLEARED and got.last_event.type is EventType.CLEARED  # type: ignore[attr-defined]
    assert got.last_event.evidence == cam7[0].evidence  # type: ignore[attr-defined]
    assert listed[incident_id].last_event.evidence == cam7[0].evidence  # type: ignore[index]

    assert fetched.returncode == 0, fetched.stderr
    written = [Path(line) for line in fetched.stdout.splitlines()]
    assert {p.name for p in written} == {f"{incident_id}-frame_jpeg.jpg", f"{incident_id}-crop_jpeg.jpg"}
    for evidence in cam7[0].evidence:
        path = out_dir / f"{incident_id}-{evidence.kind.value}.jpg"
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == evidence.sha256 and data == photos[evidence.sha256]
        assert data[:2] == b"\xff\xd8"

    assert shown.returncode == 0 and json.loads(shown.stdout)["incident_id"] == incident_id
    every = [json.loads(line) for line in all_json.stdout.splitlines()]
    assert {i["incident_id"] for i in every} == {incident_id, cam8.incident_id}, "full ids, one JSON per line"
    assert [json.loads(line)["incident_id"] for line in by_source.stdout.splitlines()] == [incident_id]
    assert len(limited.stdout.splitlines()) == 1
    assert no_garbage.returncode == 0 and no_garbage.stdout == "no incidents\n"
    assert no_garbage_json.returncode == 0 and no_garbage_json.stdout == ""
    assert open_text.stdout.splitlines() == [line for line in text.stdout.splitlines() if " OPEN " in line]
    assert cam8.incident_id in open_text.stdout and incident_id not in open_text.stdout
    assert incident_id in text.stdout and cam8.incident_id in text.stdout
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr


class _Lines:
    """The lines a subprocess prints, read by a thread, waited for with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        self._thread = threading.Thread(target=lambda: [self._queue.put(line) for line in stdout], daemon=True)
        self._thread.start()

    def take(self, count: int, timeout_s: float = 60) -> list[str]:
        """``count`` more lines; fewer when they did not come within ``timeout_s`` each."""
        out = []
        for _ in range(count):
            try:
                out.append(self._queue.get(timeout=timeout_s))
            except queue.Empty:
                break
        return out


def _restartable(loop_thread: LoopThread, tmp_path: Path) -> tuple[Service, int]:
    service = loop_thread.run(start_service(_config(tmp_path)))
    return service, service.port


def test_subscribe_reconnects_across_a_restart_and_resumes_after_its_committed_offset(tmp_path, loop_thread):
    service, port = _restartable(loop_thread, tmp_path)
    target = f"127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "detector.cli", "subscribe", "--target", target]
    process = subprocess.Popen(
        [*cmd, "--consumer", "cases", "--ack", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = _Lines(process)
    try:
        loop_thread.run(_send(target, stall_frames("cam-1", seconds=200, fps=1, present=[(0, 130)])))
        before = [json.loads(line) for line in lines.take(2)]
        # The subscriber is connected and idle: stop must not wait the 300 s grace for it.
        loop_thread.run(asyncio.wait_for(service.stop(grace_s=300), 30), timeout=60)
        service = loop_thread.run(start_service(_config(tmp_path, port)))
        second = stall_frames("cam-1", seconds=200, fps=1, present=[(400, 530)], box=(220, 150, 260, 190), t0=400)
        loop_thread.run(_send(target, second))
        after = [json.loads(line) for line in lines.take(2)]

        async def committed() -> int:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while (offset := await asyncio.to_thread(service.store.get_offset, "cases")) < 4:
                if loop.time() > deadline:
                    break
                await asyncio.sleep(0.05)  # waiting on the condition "offset is 4", bounded by the deadline
            return offset

        offset = loop_thread.run(committed())
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
        loop_thread.run(service.stop(1))

    assert [e["type"] for e in before] == ["OPENED", "CLEARED"], stderr
    assert [e["type"] for e in after] == ["OPENED", "CLEARED"], stderr
    assert [int(e["sequence"]) for e in before + after] == [1, 2, 3, 4], "no duplicate, nothing lost"
    assert offset == 4
    # The service went away (UNAVAILABLE "shutting down", or CANCELLED for an ack that reached it while stopping).
    assert "resubscribing" in stderr and ("UNAVAILABLE" in stderr or "CANCELLED" in stderr), stderr


def test_shutdown_ends_an_idle_subscribe_call_at_once_with_unavailable(tmp_path, loop_thread):
    service = loop_thread.run(start_service(_config(tmp_path)))
    target = f"127.0.0.1:{service.port}"

    async def go() -> grpc.StatusCode:
        await _send(target, stall_frames("cam-1", seconds=130, fps=1, present=[(0, 130)]))
        async with IncidentsClient(target) as client, client.subscribe("idle", 0) as events:
            iterator = aiter(events)
            first = await asyncio.wait_for(anext(iterator), 30)
            assert first.type is EventType.OPENED  # connected; nothing more will come: idle
            stopping = asyncio.ensure_future(service.stop(grace_s=300))
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await asyncio.wait_for(anext(iterator), 30)
            await asyncio.wait_for(stopping, 30)
            assert "shutting down" in (ended.value.details() or "")
            return ended.value.code()

    assert loop_thread.run(go(), timeout=90) == grpc.StatusCode.UNAVAILABLE
