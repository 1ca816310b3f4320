"""examples/: every settings file loads as `detector serve --config` loads it (paths relative to the file), the
pole camera's calibration fits, the systemd unit runs a config that is there and waits longer than it drains, and
the certificates TLS.md's openssl commands make are the ones a service started with auth-tls.yaml accepts."""

from __future__ import annotations

import configparser
import logging
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from detector.api.auth import new_token
from detector.api.client import ChannelSecurity
from detector.api.incidents_client import IncidentsClient
from detector.config import DEFAULT_WEIGHTS, load_config
from detector.geo.stage import GeoStage
from detector.inference.tiling import TilingPolicy, TilingSpec
from detector.rules import FixedCamera, MovingCamera
from detector.rules.zones import zone_summaries
from detector.server import start_service

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
INSTALL_ROOT = "/opt/streetwatch/"  # where streetwatch.service expects the repository


def test_the_pole_camera_has_its_zone_and_a_calibration_that_fits() -> None:
    config = load_config(EXAMPLES / "pole-camera.yaml", environ={})
    assert config.model.weights == DEFAULT_WEIGHTS, "relative to the file"
    camera = config.rules.sources["market-north"]
    assert isinstance(camera, FixedCamera) and [z.id for z in camera.zones] == ["no-vending"]
    report = GeoStage(config.rules).calibration_reports()["market-north"]
    assert report.rms_error_m < 0.5 and not report.outliers
    gate = config.rules.sources["car-park-gate"]
    assert isinstance(gate, FixedCamera) and gate.no_zones == "off"
    said = "\n".join(zone_summaries(config.rules))
    assert "car-park-gate: no zones and no_zones: off" in said and "market-north: 1 prohibited zone" in said


def test_the_drone_has_a_camera_profile_and_tiles() -> None:
    config = load_config(EXAMPLES / "drone.yaml", environ={})
    drone = config.rules.sources["drone-7"]
    assert isinstance(drone, MovingCamera) and drone.geo.camera_profile is not None
    assert drone.geo.camera_profile.focal_35mm_mm == 24.0
    spec = TilingPolicy(config.tiling, 416).spec("drone-7", 1080, 1920)
    assert spec == TilingSpec(tile_px=624, overlap_px=125, full_frame=True)


def test_auth_tls_names_its_certificates_next_to_it_and_hashed_tokens() -> None:
    config = load_config(EXAMPLES / "auth-tls.yaml", environ={})
    tls = config.server.tls
    assert tls is not None and config.server.host == "0.0.0.0"
    assert (tls.cert_file, tls.key_file, tls.client_ca_file) == (
        EXAMPLES / "tls/server.pem",
        EXAMPLES / "tls/server.key",
        EXAMPLES / "tls/ca.pem",
    )
    assert config.auth.enabled and {t.name for t in config.auth.tokens} == {
        "gate-7",
        "drone-uplink",
        "city-cases",
        "prometheus",
    }


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)  # systemd repeats Environment=
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(EXAMPLES / "streetwatch.service")
    return unit


def test_the_systemd_unit_serves_an_example_config_as_its_own_user_and_outwaits_the_drain() -> None:
    service = _unit()["Service"]
    binary, command, flag, config_path = shlex.split(service["ExecStart"])
    assert binary == INSTALL_ROOT + ".venv/bin/detector" and (command, flag) == ("serve", "--config")
    assert config_path.startswith(INSTALL_ROOT)
    local = EXAMPLES.parent / config_path.removeprefix(INSTALL_ROOT)
    assert local.parent == EXAMPLES and local.is_file(), f"ExecStart names {config_path}, not in examples/"
    config = load_config(local, environ={})
    assert float(service["TimeoutStopSec"]) > config.server.grace_s + 5, "systemd must not kill a drain"
    assert service["User"] not in ("", "root") and service["Restart"] == "on-failure"
    assert config.store.data_dir == Path("/var/lib/" + service["StateDirectory"])


def _guide_commands() -> str:
    """The shell blocks of TLS.md's certificate sections (1 to 3), run as written."""
    text = (EXAMPLES / "TLS.md").read_text()
    sections = text.split("\n## ")[1:4]
    assert [s.split("\n", 1)[0][:2] for s in sections] == ["1.", "2.", "3."]
    blocks = [b for s in sections for b in re.findall(r"```sh\n(.*?)```", s, re.S)]
    return "set -euo pipefail\n" + "\n".join(blocks)


def test_the_tls_guide_makes_certificates_that_a_service_on_auth_tls_yaml_accepts(
    tmp_path: Path, loop_thread, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="detector.server")
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is not installed; TLS.md's commands need it")
    repo = tmp_path / "repo"  # the guide runs from the repository root and writes examples/tls/
    (repo / "examples").mkdir(parents=True)
    shutil.copy(EXAMPLES / "auth-tls.yaml", repo / "examples" / "auth-tls.yaml")
    made = subprocess.run(["bash", "-c", _guide_commands()], cwd=repo, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    tls = repo / "examples" / "tls"
    token, digest = new_token()
    config = load_config(
        repo / "examples" / "auth-tls.yaml",
        environ={},
        overrides=[
            "server.host=127.0.0.1",
            "server.port=0",
            "server.metrics_port=0",
            f"store.data_dir={tmp_path / 'data'}",
            f"auth.tokens=[{{name: city-cases, sha256: '{digest}', roles: [subscribe]}}]",
        ],
    )
    service = loop_thread.run(start_service(config))
    try:
        client_files = (tls / "ca.pem", tls / "gate-7.pem", tls / "gate-7.key")

        async def listed(security: ChannelSecurity) -> int:
            async with IncidentsClient(f"localhost:{service.port}", security) as client:  # a name in the SAN
                return len((await client.list()).items)

        assert loop_thread.run(listed(ChannelSecurity(token, *client_files))) == 0
        with pytest.raises(grpc.aio.AioRpcError) as refused:  # no client certificate: the handshake fails
            loop_thread.run(listed(ChannelSecurity(token, tls / "ca.pem")))
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        loop_thread.run(service.stop(1))
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("zones: ")]
    assert said == [
        "zones: default_source (sources not listed): no zones configured, so the whole view is one prohibited "
        "zone ('whole-view') for cart, goods, stall (dwell 120 s); draw rules.sources.<id>.zones to narrow it, or "
        "set no_zones: off"
    ], "the start-up log says where stalls can open"
