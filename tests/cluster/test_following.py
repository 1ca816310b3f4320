"""The command-line clients follow a source's owner: `detector gateway` and `detector replay`, given the replica
that does not own the source first (`--target b --target a`, or `b,a` in the gateway's settings), are refused by
it, redirected to the owner, and every frame is answered there. Two in-process replicas on one PostgreSQL
schema, the colour-blob engine, a rendered file camera."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.api.client import IngestClient
from detector.cli import main
from detector.gateway.config import GatewayConfig
from detector.gateway.gateway import Gateway
from detector.server import Service
from tests.api.scripted import stall_frames
from tests.api.serving import frames_of
from tests.cluster.test_ownership import _config, _start
from tests.conftest import LoopThread
from tests.gateway.media import render_clip


@pytest.fixture
def replicas(tmp_path: Path, loop_thread: LoopThread) -> Iterator[list[tuple[Service, str]]]:
    started = [loop_thread.run(_start(_config(tmp_path, name))) for name in ("a", "b")]
    yield started
    for service, _ in reversed(started):
        loop_thread.run(service.stop(grace_s=2))


def _own(target: str, source_id: str) -> None:
    """Make the replica at ``target`` the source's owner: it takes the lease at the source's first frame."""

    async def one() -> None:
        async with IngestClient(target) as client:
            [result] = [r async for r in client.stream(frames_of(stall_frames(source_id, 1, 1, [])))]
            assert not result.HasField("error")

    asyncio.run(one())


def test_the_gateway_is_redirected_to_the_owner_of_its_camera(
    replicas: list[tuple[Service, str]], loop_thread: LoopThread, tmp_path: Path
) -> None:
    (a, target_a), (_, target_b) = replicas
    _own(target_a, "cam-1")
    clip = render_clip(tmp_path / "clip.mp4", seconds=1, fps=10, size=(320, 240))
    config = GatewayConfig.model_validate(
        {
            "target": f"{target_b},{target_a}",
            "cameras": [{"id": "cam-1", "url": str(clip)}],
            "fps": 0,
            "service_reconnect": {"initial_s": 0.05, "max_s": 0.5},
        }
    )
    gateway = Gateway(config)
    summary = loop_thread.run(asyncio.wait_for(gateway.run(asyncio.Event()), 60))
    [camera] = summary.cameras
    assert camera.frames_read == 10
    assert camera.answered_ok == 10, summary.text()
    assert summary.service_failures == {"FAILED_PRECONDITION": 1}
    assert gateway.target == target_a
    assert a.replica is not None and a.replica.held == ["source:cam-1"]


def test_replay_with_several_targets_follows_the_owner(
    replicas: list[tuple[Service, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (_, target_a), (_, target_b) = replicas
    _own(target_a, "cam-2")
    clip = render_clip(tmp_path / "clip.mp4", seconds=1, fps=10, size=(320, 240))
    code = main(["replay", str(clip), "--source-id", "cam-2", "--target", target_b, "--target", target_a, "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (summary["frames_sent"], summary["frames_ok"], summary["errors"]) == (10, 10, {})


def test_an_upload_of_a_source_another_replica_owns_is_refused_at_its_header_naming_the_owner(
    replicas: list[tuple[Service, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (_, target_a), (b, target_b) = replicas
    _own(target_a, "cam-3")
    clip = render_clip(tmp_path / "clip.mp4", seconds=1, fps=10, size=(320, 240))
    code = main(["replay", str(clip), "--source-id", "cam-3", "--upload", "--target", target_b])
    err = capsys.readouterr().err
    assert code == 1
    assert "FAILED_PRECONDITION" in err and f"replica a at {target_a}" in err
    assert b.replica is not None and b.replica.held == []
