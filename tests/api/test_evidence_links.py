"""Signed evidence links on the console's HTTP server: a case system fetches the media_url an Open311 request
carried and gets the stored JPEG; expired, tampered or foreign links get 403, unknown evidence 404."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest

from detector.api.auth import AuthSettings, TokenSettings, hash_token
from detector.api.console.health import SourceHealth
from detector.api.console.http import ConsoleServer
from detector.api.console.settings import ConsoleSettings
from detector.api.evidence_http import EvidenceLinks, EvidenceLinkSettings
from detector.config import ConfigError, load_config
from detector.delivery.runner import DeliveryRunner
from detector.delivery.settings import DeliverySettings
from detector.inference.engine import build_engine
from detector.rules.config import RulesConfig
from detector.store import IncidentStore, SqliteStore
from detector.types import EvidenceKind
from tests.api.scripted import scripted_overrides, write_spec
from tests.api.serving import serving
from tests.api.test_console import free_port
from tests.conftest import run
from tests.delivery.georeport import API_KEY, GeoReportServer
from tests.store.factories import make_event

SECRET = "evidence-link-secret-0123456789"
TTL_S = 3600


def a_jpeg() -> bytes:
    image = np.zeros((48, 64, 3), np.uint8)
    image[10:30, 20:50] = (0, 0, 255)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    return encoded.tobytes()


@asynccontextmanager
async def console(store: SqliteStore, links: EvidenceLinks, port: int) -> AsyncIterator[str]:
    """The console's server with auth on (its /api/ needs a token; the links need none)."""
    token = TokenSettings(name="operator", sha256=hash_token("operator-token-0123456789"), roles=["subscribe"])
    auth = AuthSettings(enabled=True, tokens=[token])
    health = SourceHealth(ConsoleSettings(), RulesConfig(), [])
    server = ConsoleServer(ConsoleSettings(), auth, store, health, "127.0.0.1", port, links)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


def links_for(port: int, secret: str | None = SECRET) -> EvidenceLinks:
    return EvidenceLinks(EvidenceLinkSettings(base_url=f"http://127.0.0.1:{port}", secret=secret, ttl_s=TTL_S))


async def fetch(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes, dict[str, str]]:
    async with session.get(url) as response:
        return response.status, await response.read(), dict(response.headers)


def open311_entry(endpoint: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": "city311", "kind": "open311", "endpoint": endpoint, "api_key": API_KEY}
    return entry | {"service_codes": {"200501": "STALL"}, "poll_interval_s": 0}


async def filed(store: IncidentStore, incident_id: str) -> None:
    """Returns once the incident has a case id; wakes on appends (the FILED verdict is one)."""
    while True:
        seen = store.last_sequence()
        record = store.get_incident(incident_id)
        if record is not None and record.case_id:
            return
        await store.wait_for_async(seen, 5.0)


def test_a_case_system_fetches_the_media_url_of_its_open311_request(tmp_path: Path) -> None:
    async def scenario() -> None:
        port = free_port()
        links = links_for(port)
        city = GeoReportServer()
        await city.start()
        jpeg = a_jpeg()
        with SqliteStore(tmp_path / "data") as store:
            frame = store.put_evidence(EvidenceKind.FRAME_JPEG, jpeg)
            crop = store.put_evidence(EvidenceKind.CROP_JPEG, b"not this one")
            store.append([make_event("inc-1", evidence=(crop, frame))])
            entry = open311_entry(city.endpoint)
            runner = DeliveryRunner(store, DeliverySettings(connectors=[entry]), evidence_url=links.evidence_url)
            async with console(store, links, port) as base:
                await runner.start()
                try:
                    await asyncio.wait_for(filed(store, "inc-1"), 20)
                finally:
                    await runner.stop()
                    await city.stop()
                [request] = city.requests.values()
                media_url = request.form["media_url"]
                assert media_url.startswith(f"{base}/evidence/{frame.sha256}.jpg?exp=")
                async with aiohttp.ClientSession() as session:
                    status, body, headers = await fetch(session, media_url)
                    api_status, _, _ = await fetch(session, f"{base}/api/evidence/{frame.sha256}")
            assert (status, body) == (200, jpeg)
            assert headers["Content-Type"] == "image/jpeg"
            assert headers["Cache-Control"] == "private"
            assert api_status == 401  # the console's API still wants a token; the link is its own credential

    run(scenario())


def test_the_service_serves_the_links_its_open311_connector_sends(tmp_path: Path) -> None:
    """`detector serve` wiring: server.evidence_links signs the media_url and http_port serves it."""
    port = free_port()
    spec = write_spec(tmp_path / "blobs.yaml")
    links = f"server.evidence_links={{base_url: 'http://127.0.0.1:{port}', secret: {SECRET}}}"
    overrides = [*scripted_overrides(spec, tmp_path / "data"), "server.port=0", f"server.http_port={port}", links]
    config = load_config(None, environ={}, overrides=overrides)
    engine = build_engine("colour-blobs", config.model)
    jpeg = a_jpeg()

    async def scenario() -> None:
        city = GeoReportServer()
        await city.start()
        entry = open311_entry(city.endpoint)
        delivery = DeliverySettings.model_validate({"connectors": [entry], "backoff": {"initial_s": 0.01}})
        try:
            async with serving(config.model_copy(update={"delivery": delivery}), engine) as (service, _):
                store = service.store
                frame = await asyncio.to_thread(store.put_evidence, EvidenceKind.FRAME_JPEG, jpeg)
                await asyncio.to_thread(store.append, [make_event("inc-1", evidence=(frame,))])
                await asyncio.wait_for(filed(store, "inc-1"), 20)
                [request] = city.requests.values()
                async with aiohttp.ClientSession() as session:
                    status, body, _ = await fetch(session, request.form["media_url"])
        finally:
            await city.stop()
        assert (status, body) == (200, jpeg)

    run(scenario())


def test_expired_tampered_and_foreign_links_are_refused(tmp_path: Path) -> None:
    async def scenario() -> None:
        port = free_port()
        links = links_for(port)
        with SqliteStore(tmp_path / "data") as store:
            sha = store.put_evidence(EvidenceKind.FRAME_JPEG, a_jpeg()).sha256
            unknown = "0" * 64
            now = time.time()
            good = links.evidence_url(sha, now)
            exp = int(now) + TTL_S
            sig = links.signature(sha, exp)
            cases = {
                "valid": (good, 200),
                "expired": (links.evidence_url(sha, now - TTL_S - 5), 403),
                "signature altered": (good[:-1] + ("0" if good[-1] != "0" else "1"), 403),
                "expiry extended": (good.replace(f"exp={exp}", f"exp={exp + 86400}"), 403),
                "no signature": (good.split("&sig=")[0], 403),
                "another file's signature": (good.replace(sha, unknown), 403),
                "signed by a restarted service": (links_for(port, secret=None).evidence_url(sha, now), 403),
                "unknown evidence, validly signed": (links.evidence_url(unknown, now), 404),
                "directory": (good.split("/evidence/")[0] + "/evidence/", 404),
                "not a sha256": (good.replace(f"{sha}.jpg", "..%2F..%2Fetc%2Fpasswd.jpg"), 404),
            }
            assert sig in good
            async with console(store, links, port), aiohttp.ClientSession() as session:
                seen = {name: (await fetch(session, url))[0] for name, (url, _) in cases.items()}
        assert seen == {name: expected for name, (_, expected) in cases.items()}

    run(scenario())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["server.evidence_links={base_url: 'http://sw.city.lan'}"], "needs server.http_port"),
        (["server.http_port=8080", "server.evidence_links={base_url: 'sw.city.lan'}"], "base_url"),
        (["server.http_port=8080", "server.evidence_links={base_url: 'http://x', secret: short}"], "secret"),
    ],
)
def test_bad_evidence_link_settings_fail_with_a_readable_message(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, environ={}, overrides=overrides)


def test_the_link_secret_can_come_from_the_environment() -> None:
    environ = {"STREETWATCH__SERVER__EVIDENCE_LINKS__SECRET": SECRET}
    config = load_config(
        None, environ=environ, overrides=["server.http_port=8080", "server.evidence_links.base_url=http://sw:8080"]
    )
    assert config.server.evidence_links is not None
    assert config.server.evidence_links.secret == SECRET


def test_a_link_is_valid_until_its_expiry_and_not_after() -> None:
    links = links_for(8080)
    url = links.evidence_url("ab" * 32, 1000.0)
    assert (
        url
        == f"http://127.0.0.1:8080/evidence/{'ab' * 32}.jpg?exp={1000 + TTL_S}&sig={links.signature('ab' * 32, 4600)}"
    )
    assert links.verify("ab" * 32, str(1000 + TTL_S), links.signature("ab" * 32, 4600), now=4600.0)
    assert not links.verify("ab" * 32, str(1000 + TTL_S), links.signature("ab" * 32, 4600), now=4600.5)
