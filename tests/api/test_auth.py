"""Who may connect, over real gRPC on loopback: TLS and mTLS with certificates made by the openssl CLI, bearer
tokens with roles, per-source ingest tokens, open health, and the channel helper every client command uses.

The colour-blob engine stands in for the model (who may call is under test, not YOLO).
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.auth import hash_token
from detector.api.client import ChannelSecurity, IngestClient, InsecureChannel, make_frame, open_channel
from detector.cli import main
from detector.config import ConfigError, ServiceConfig, load_config
from detector.types import DeliveryMode
from tests.api.scripted import RED, T0, scene, scripted_overrides, write_spec
from tests.api.serving import serving
from tests.conftest import run

GATEWAY, CASE, ADMIN = "gateway-secret-1", "case-secret-2", "admin-secret-3"
TOKENS = (
    "{enabled: true, tokens: ["
    f"{{name: gateway-1, sha256: '{hash_token(GATEWAY)}', roles: [ingest], sources: [cam-1]}}, "
    f"{{name: case-system, sha256: '{hash_token(CASE)}', roles: [subscribe]}}, "
    f"{{name: ops, sha256: '{hash_token(ADMIN)}', roles: [admin]}}]}}"
)


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # self-signed: a client certificate the CA never signed
    rogue_key: Path


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, both signed by the CA."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed; it makes the test certificates")
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=streetwatch-test-ca",
             "-keyout", d / "ca.key", "-out", d / "ca.pem")  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                 "-keyout", d / f"{name}.key", "-out", d / f"{name}.csr")  # fmt: skip
        _openssl("x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca.pem", "-CAkey", d / "ca.key",
                 "-CAcreateserial", "-days", "2", "-extfile", d / f"{name}.ext", "-out", d / f"{name}.pem")  # fmt: skip
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=client",
             "-keyout", d / "rogue.key", "-out", d / "rogue.pem")  # fmt: skip
    return Pki(*(d / f for f in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")),
               d / "rogue.pem", d / "rogue.key")  # fmt: skip


def _config(tmp_path: Path, *extra: str) -> ServiceConfig:
    spec = write_spec(tmp_path / "blobs.yaml")
    return load_config(
        None, environ={}, overrides=["server.port=0", *scripted_overrides(spec, tmp_path / "data"), *extra]
    )


def _tls(pki: Pki, mtls: bool = False) -> str:
    client_ca = f", client_ca_file: {pki.ca}" if mtls else ""
    return f"server.tls={{cert_file: {pki.server_cert}, key_file: {pki.server_key}{client_ca}}}"


def _frame(source_id: str, seq: int) -> pb.Frame:
    return make_frame(source_id, seq, T0 + seq, image=scene([(RED, (100, 150, 140, 190))]), mode=DeliveryMode.LOSSLESS)


async def _frames(*frames: pb.Frame) -> AsyncIterator[pb.Frame]:
    for frame in frames:
        yield frame


async def _stream(target: str, security: ChannelSecurity, *frames: pb.Frame) -> tuple[list[pb.FrameResult], str]:
    """The answers, and how the call ended ('OK' or the status code's name)."""
    answers: list[pb.FrameResult] = []
    async with IngestClient(target, security=security) as client:
        try:
            async for result in client.stream(_frames(*frames)):
                answers.append(result)
        except grpc.aio.AioRpcError as exc:
            return answers, exc.code().name
    return answers, "OK"


async def _list(target: str, security: ChannelSecurity) -> str:
    async with open_channel(target, security) as channel:
        try:
            await incidents_pb2_grpc.IncidentsStub(channel).ListIncidents(ipb.ListIncidentsRequest(), timeout=10)
        except grpc.aio.AioRpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
    return "OK"


async def _health(target: str, security: ChannelSecurity) -> int:
    async with open_channel(target, security) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        return int(response.status)


def test_tls_with_tokens_lets_each_role_do_its_job_and_nothing_else(tmp_path, pki):
    config = _config(tmp_path, _tls(pki), f"auth={TOKENS}")

    async def go() -> None:
        async with serving(config, engine=None) as (_, target):
            tls = ChannelSecurity(ca_file=pki.ca)
            gateway, case, admin = (ChannelSecurity(token=t, ca_file=pki.ca) for t in (GATEWAY, CASE, ADMIN))
            # Health stays open without a token, so load balancers and `make serve` probes keep working.
            assert await _health(target, tls) == health_pb2.HealthCheckResponse.SERVING

            answers, ended = await _stream(target, gateway, _frame("cam-1", 1), _frame("cam-1", 2))
            assert ended == "OK" and [a.seq for a in answers] == [1, 2]
            assert all(not a.HasField("error") and [d.label for d in a.detections] == ["stall"] for a in answers)

            # The gateway's token is for cam-1 only: a cam-2 frame is refused on its own; the stream goes on.
            answers, ended = await _stream(target, gateway, _frame("cam-1", 3), _frame("cam-2", 1), _frame("cam-1", 4))
            assert ended == "OK" and [a.seq for a in answers] == [3, 1, 4]
            assert [a.error.code for a in answers] == [0, pb.PERMISSION_DENIED, 0]

            _, ended = await _stream(target, case, _frame("cam-1", 5))
            assert ended == "PERMISSION_DENIED", "a case system may not inject frames"
            _, ended = await _stream(target, ChannelSecurity(ca_file=pki.ca), _frame("cam-1", 5))
            assert ended == "UNAUTHENTICATED"
            _, ended = await _stream(target, ChannelSecurity(token="guessed", ca_file=pki.ca), _frame("cam-1", 5))
            assert ended == "UNAUTHENTICATED"
            _, ended = await _stream(target, admin, _frame("cam-9", 1))
            assert ended == "OK", "admin may send any source"

            assert await _list(target, case) == "OK"
            assert (await _list(target, admin)) == "OK"
            assert (await _list(target, gateway)).startswith("PERMISSION_DENIED: token 'gateway-1' lacks")
            assert (await _list(target, tls)).startswith("UNAUTHENTICATED")
            assert (await _list(target, ChannelSecurity(token="case-secret-2x", ca_file=pki.ca))).startswith(
                "UNAUTHENTICATED"
            )
            # A plain-text client cannot talk to the TLS port at all.
            async with grpc.aio.insecure_channel(target) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE

    run(go())


def test_mtls_refuses_a_client_without_a_certificate_signed_by_the_ca(tmp_path, pki):
    config = _config(tmp_path, _tls(pki, mtls=True), f"auth={TOKENS}")

    async def go() -> None:
        async with serving(config, engine=None) as (_, target):
            with_cert = ChannelSecurity(token=CASE, ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)
            assert await _list(target, with_cert) == "OK"
            assert (await _list(target, ChannelSecurity(token=CASE, ca_file=pki.ca))).startswith("UNAVAILABLE")
            # A certificate the CA never signed is refused too, even with a valid token.
            forged = ChannelSecurity(token=CASE, ca_file=pki.ca, cert_file=pki.rogue_cert, key_file=pki.rogue_key)
            assert (await _list(target, forged)).startswith("UNAVAILABLE")

    run(go())


def test_tokens_over_plain_text_are_sent_only_to_loopback(tmp_path):
    config = _config(tmp_path, f"auth={TOKENS}")

    async def go() -> None:
        async with serving(config, engine=None) as (_, target):
            assert await _list(target, ChannelSecurity(token=CASE)) == "OK"
            assert (await _list(target, ChannelSecurity())).startswith("UNAUTHENTICATED")

    run(go())
    with pytest.raises(InsecureChannel, match="plain text"):
        open_channel("10.20.30.40:50051", ChannelSecurity(token=CASE))


def test_the_log_says_loudly_when_auth_is_off_and_when_a_public_address_has_no_tls(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="detector.server")

    async def go(*extra: str) -> None:
        async with serving(_config(tmp_path, *extra), engine=None):
            pass

    run(go())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("authentication is OFF" in w for w in warnings)
    assert not any("WITHOUT TLS" in w for w in warnings), "loopback without TLS is the quiet default"
    caplog.clear()
    run(go("server.host=0.0.0.0", f"auth={TOKENS}"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("WITHOUT TLS" in w for w in warnings)
    assert not any("authentication is OFF" in w for w in warnings)


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        ("{enabled: true}", "auth.tokens is empty"),
        ("{tokens: [{name: a, sha256: my-plain-secret, roles: [ingest]}]}", "never the token itself"),
        ("{tokens: [{name: a, sha256: 'sha256:" + "0" * 64 + "', roles: [root]}]}", "auth.tokens.0.roles.0"),
        ("{tokens: [{name: a, sha256: 'sha256:" + "0" * 64 + "', roles: []}]}", "auth.tokens.0.roles"),
    ],
)
def test_bad_auth_settings_are_refused_with_a_message_naming_them(auth, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, environ={}, overrides=[f"auth={auth}"])


def test_new_token_prints_a_token_and_a_config_entry_that_accepts_it(capsys):
    assert main(["auth", "new-token", "--name", "gw-7", "--role", "ingest", "--source", "cam-7"]) == 0
    out = capsys.readouterr().out.splitlines()
    token = out[0].rsplit(" ", 1)[1]
    entry = json.loads(out[2].strip().removeprefix("- "))
    assert entry == {"name": "gw-7", "sha256": hash_token(token), "roles": ["ingest"], "sources": ["cam-7"]}
    assert token not in "\n".join(out[1:]), "only the hash goes into the config"
    config = load_config(None, environ={}, overrides=[f"auth={json.dumps({'enabled': True, 'tokens': [entry]})}"])
    assert config.auth.tokens[0].sha256 == hash_token(token)
