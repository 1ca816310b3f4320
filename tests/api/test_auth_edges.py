"""Auth at its edges, over real gRPC and HTTP on loopback: a frame for a source the token does not list is a
per-frame PERMISSION_DENIED while the other cameras' frames go on; a subscribe token acks only its consumers;
`auth new-token` refuses an ingest token that could send nothing; the missing-token message names --token and
STREETWATCH_TOKEN; the /metrics listener on its own host wants a metrics token."""

from __future__ import annotations

import asyncio
import socket
import urllib.error
import urllib.request

import grpc
import pytest

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.auth import hash_token
from detector.api.client import ChannelSecurity, open_channel
from detector.cli import main
from detector.server import start_service
from tests.api.test_auth import _config, _frame, _stream
from tests.conftest import run

GATEWAY, CASE, BOUND, SCRAPER, ADMIN = "gw-secret-1", "case-secret-2", "bound-secret-3", "scrape-4", "admin-5"
TOKENS = (
    "{enabled: true, tokens: ["
    f"{{name: gateway-1, sha256: '{hash_token(GATEWAY)}', roles: [ingest], sources: [cam-1]}}, "
    f"{{name: case-system, sha256: '{hash_token(CASE)}', roles: [subscribe]}}, "
    f"{{name: bound, sha256: '{hash_token(BOUND)}', roles: [subscribe], consumers: [cases-a, cases-b]}}, "
    f"{{name: prometheus, sha256: '{hash_token(SCRAPER)}', roles: [metrics]}}, "
    f"{{name: ops, sha256: '{hash_token(ADMIN)}', roles: [admin]}}]}}"
)


async def _ack(target: str, token: str, consumer: str) -> str:
    async with open_channel(target, ChannelSecurity(token=token)) as channel:
        try:
            await incidents_pb2_grpc.IncidentsStub(channel).Ack(ipb.AckRequest(consumer=consumer), timeout=10)
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
    return "OK"


async def _resume_refused(target: str, token: str, consumer: str) -> str:
    """The code a Subscribe from the consumer's committed offset is refused with."""
    async with open_channel(target, ChannelSecurity(token=token)) as channel:
        call = incidents_pb2_grpc.IncidentsStub(channel).Subscribe(ipb.SubscribeRequest(consumer=consumer), timeout=30)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            _ = [event async for event in call]
        return refused.value.code().name


def test_a_forbidden_source_is_a_per_frame_error_and_the_stream_goes_on(tmp_path):
    config = _config(tmp_path, f"auth={TOKENS}")

    async def go() -> None:
        service = await start_service(config)
        target = f"127.0.0.1:{service.port}"
        try:
            gateway = ChannelSecurity(token=GATEWAY)
            answers, ended = await _stream(target, gateway, _frame("cam-1", 1), _frame("cam-2", 1), _frame("cam-1", 2))
            assert ended == "OK"
            assert [(a.source_id, a.seq) for a in answers] == [("cam-1", 1), ("cam-2", 1), ("cam-1", 2)]
            refused = answers[1]
            assert refused.error.code == pb.PERMISSION_DENIED
            assert "gateway-1" in refused.error.message and "cam-2" in refused.error.message
            assert [d.label for d in answers[0].detections] == ["stall"] and not answers[2].HasField("error")
            assert [d.label for d in answers[2].detections] == ["stall"]

            # A subscribe token acks, and resumes from the offset of, only its consumers (default: its own name).
            assert await _ack(target, CASE, "case-system") == "OK"
            assert (await _ack(target, CASE, "cases-a")).startswith("PERMISSION_DENIED: token 'case-system' may not")
            assert await _ack(target, BOUND, "cases-b") == "OK"
            assert (await _ack(target, BOUND, "case-system")).startswith("PERMISSION_DENIED")
            assert await _ack(target, ADMIN, "anyone") == "OK"
            assert await _resume_refused(target, BOUND, "case-system") == "PERMISSION_DENIED"
        finally:
            await service.stop(1)

    run(go())


def test_the_cli_says_how_to_pass_a_token(tmp_path, loop_thread, capsys):
    service = loop_thread.run(start_service(_config(tmp_path, f"auth={TOKENS}")))
    try:
        code = main(["incidents", "list", "--target", f"127.0.0.1:{service.port}"])
    finally:
        loop_thread.run(service.stop(1))
    err = capsys.readouterr().err
    assert code == 1 and "UNAUTHENTICATED" in err and "--token" in err and "STREETWATCH_TOKEN" in err


def test_new_token_refuses_an_ingest_token_without_sources(capsys):
    assert main(["auth", "new-token", "--name", "gw", "--role", "ingest"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--source" in captured.err
    assert main(["auth", "new-token", "--name", "gw", "--source", "*"]) == 0
    assert main(["auth", "new-token", "--name", "cases", "--role", "subscribe", "--consumer", "cases-a"]) == 0
    assert '"consumers": ["cases-a"]' in capsys.readouterr().out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(port: int, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.parametrize("open_metrics", [False, True])
def test_metrics_listen_on_their_own_host_and_want_a_metrics_token(tmp_path, open_metrics):
    port = _free_port()
    extra = [f"auth={TOKENS}", f"server.metrics_port={port}", "server.metrics_host=127.0.0.1", "server.host=localhost"]
    if open_metrics:
        extra.append("auth.open_metrics=true")
    config = _config(tmp_path, *extra)

    async def go() -> list[tuple[int, str]]:
        service = await start_service(config)
        try:
            return [await asyncio.to_thread(_scrape, port, t) for t in (None, "guessed", CASE, SCRAPER, ADMIN)]
        finally:
            await service.stop(1)

    answers = run(go())
    codes = [code for code, _ in answers]
    if open_metrics:
        assert codes == [200] * 5
    else:
        assert codes == [401, 401, 403, 200, 200]
        assert "metrics role" in answers[0][1]
    assert "streetwatch" in answers[3][1]
