"""The operator console: the real service in-process, its page in a real headless browser (Debian's chromium,
driven by Playwright), frames streamed over gRPC, and the console's JSON API with auth on and off."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest
from aiohttp import web

from detector.api.auth import hash_token
from detector.api.client import ChannelSecurity, IngestClient, make_frame
from detector.api.console.health import SourceHealth
from detector.api.console.settings import ConsoleSettings
from detector.config import ConfigError, ServiceConfig, load_config
from detector.ingest.decode import RejectCode
from detector.pipeline.pipeline import FrameError, FrameOutcome
from detector.rules.config import RulesConfig
from detector.server import Service, start_service
from detector.types import DeliveryMode, Detections, Frame
from tests.api.scripted import GREEN, T0, scene, scripted_overrides, write_spec
from tests.api.serving import frames_of
from tests.conftest import run

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
CHROMIUM_ARGS.append("--disable-sync")
# Where cam-1 stands (SOURCE_FIXED): its incidents are located, so the map has a dot to draw.
CAMERA_POSITION = "rules.sources.cam-1={geo: {position: {lat: 31.2304, lon: 121.4737}}}"
READER, GATEWAY = "reader-secret-token-0123456789abcdef", "gateway-secret-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def console_config(tmp_path: Path, *extra: str) -> ServiceConfig:
    spec = write_spec(tmp_path / "blobs.yaml")
    overrides = [
        "server.port=0",
        f"server.http_port={free_port()}",
        "console.poll_interval_s=0.5",
        *scripted_overrides(spec, tmp_path / "data"),
        *extra,
    ]
    return load_config(None, environ={}, overrides=overrides)


def garbage_frames(seconds: float = 6, fps: float = 2) -> list[Any]:
    """A green patch (garbage, for the colour-blob engine) in every frame: it opens by confirmation (3 of 5 s)."""
    return [
        make_frame("cam-1", i + 1, T0 + i / fps, image=scene([(GREEN, (200, 40, 240, 80))]), mode=DeliveryMode.LOSSLESS)
        for i in range(int(seconds * fps))
    ]


@asynccontextmanager
async def console_service(config: ServiceConfig) -> AsyncIterator[tuple[Service, str, str]]:
    service = await start_service(config)
    try:
        assert service.console is not None
        yield service, f"127.0.0.1:{service.port}", f"http://127.0.0.1:{service.console.port}"
    finally:
        await service.stop(grace_s=2)


async def stream(target: str, frames: list[Any], token: str | None = None) -> list[Any]:
    async with IngestClient(target, security=ChannelSecurity(token=token)) as client:
        return [r async for r in client.stream(frames_of(frames))]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)")
def test_the_page_shows_an_opened_incident_its_evidence_the_stream_health_and_the_latest_frame(tmp_path: Path):
    from playwright.async_api import async_playwright

    config = console_config(tmp_path, CAMERA_POSITION)

    async def go() -> None:
        async with console_service(config) as (service, target, base), async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(base + "/")
                await page.wait_for_function("document.getElementById('status').textContent.startsWith('updated')")
                assert await page.locator("article.incident").count() == 0

                results = await stream(target, garbage_frames())
                assert all(not r.HasField("error") for r in results), results
                page_of_open = await asyncio.to_thread(service.store.list_incidents)
                assert len(page_of_open.items) == 1, page_of_open
                incident_id = page_of_open.items[0].incident_id

                card = page.locator(f'article.incident[data-incident-id="{incident_id}"]')
                await card.wait_for(timeout=30_000)
                text = await card.inner_text()
                assert "EXPOSED_GARBAGE" in text and "200102" in text and incident_id in text
                await page.wait_for_function(
                    """id => { const imgs = document.querySelectorAll(`article[data-incident-id="${id}"] img.evidence`);
                               return imgs.length > 0 && [...imgs].every(i => i.complete && i.naturalWidth > 0); }""",
                    arg=incident_id,
                    timeout=30_000,
                )
                evidence_width = await card.locator("img.evidence").first.evaluate("i => i.naturalWidth")
                assert evidence_width == 320, "the stored frame JPEG, 320 px wide"

                dot = page.locator(f'#map circle.incident-dot[data-incident-id="{incident_id}"]')
                await dot.wait_for(timeout=30_000)

                row = page.locator('#health tr[data-source-id="cam-1"]')
                await row.wait_for(timeout=30_000)
                assert "live" in await row.inner_text()
                await page.wait_for_function(
                    """() => { const i = document.querySelector('img[data-frame-source="cam-1"]');
                               return i !== null && i.complete && i.naturalWidth > 0; }""",
                    timeout=30_000,
                )
                assert await page.locator('img[data-frame-source="cam-1"]').evaluate("i => i.naturalWidth") == 320
                assert errors == [], errors
                await page.screenshot(path=str(tmp_path / "console.png"), full_page=True)  # for a person to look at
            finally:
                await browser.close()

    run(go())


TOKENS = (
    f"auth.tokens=[{{name: city-cases, sha256: '{hash_token(READER)}', roles: [subscribe]}}, "
    f"{{name: gate-1, sha256: '{hash_token(GATEWAY)}', roles: [ingest], sources: [cam-1]}}]"
)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)")
def test_with_auth_on_the_page_asks_for_a_token_once_and_sends_it_for_data_and_images(tmp_path: Path):
    from playwright.async_api import async_playwright

    basemap = tmp_path / "city.png"
    cv2.imwrite(str(basemap), np.full((200, 300, 3), 230, np.uint8))
    bounds = "console.basemap_bounds={south: 31.22, west: 121.46, north: 31.24, east: 121.48}"
    config = console_config(
        tmp_path, "auth.enabled=true", TOKENS, CAMERA_POSITION, f"console.basemap_image={basemap}", bounds
    )

    async def go() -> None:
        async with console_service(config) as (service, target, base), async_playwright() as p:
            browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(base + "/")
                form = page.locator("#token-form")
                await form.wait_for(state="visible")
                await page.fill("#token", GATEWAY)  # a token without the subscribe role: asked again, told why
                await page.click("#token-form button")
                await page.wait_for_function("document.getElementById('token-error').textContent.includes('subscribe')")
                assert await form.is_visible()
                await page.fill("#token", READER)
                await page.click("#token-form button")
                await page.wait_for_function("document.getElementById('status').textContent.startsWith('updated')")
                assert not await form.is_visible()

                await stream(target, garbage_frames(), token=GATEWAY)
                (record,) = (await asyncio.to_thread(service.store.list_incidents)).items
                await page.wait_for_function(
                    """id => { const imgs = document.querySelectorAll(`article[data-incident-id="${id}"] img.evidence`);
                               return imgs.length > 0 && [...imgs].every(i => i.complete && i.naturalWidth > 0); }""",
                    arg=record.incident_id,
                    timeout=30_000,
                )
                # The configured basemap under the map (fetched with the token), the camera's place on it.
                assert (await page.locator("#map image").get_attribute("href") or "").startswith("blob:")
                dot = page.locator(f'#map circle.incident-dot[data-incident-id="{record.incident_id}"]')
                x, y = float(await dot.get_attribute("cx") or "nan"), float(await dot.get_attribute("cy") or "nan")
                assert (x, y) == pytest.approx((411.0, 192.0), abs=0.2), "lat/lon within the basemap's bounds"
                await page.reload()  # the token is kept for the session: not asked again
                await page.wait_for_function("document.getElementById('status').textContent.startsWith('updated')")
                assert not await form.is_visible()
                assert await page.evaluate("sessionStorage.getItem('streetwatch-token')") == READER
            finally:
                await browser.close()

    run(go())


def test_with_auth_on_the_api_needs_a_token_with_the_subscribe_role(tmp_path: Path):
    config = console_config(tmp_path, "auth.enabled=true", TOKENS)

    async def go() -> None:
        async with console_service(config) as (_service, target, base), aiohttp.ClientSession() as http:
            await stream(target, garbage_frames(), token=GATEWAY)

            async with http.get(base + "/") as page:  # the page itself is code, not data: it asks for the token
                assert page.status == 200 and "operator console" in await page.text()
            async with http.get(base + "/api/incidents?state=open") as none:
                assert none.status == 401 and none.content_type == "application/json"
                assert "token" in (await none.json())["error"]
                assert none.headers["WWW-Authenticate"] == "Bearer"
            async with http.get(base + "/api/incidents", headers={"Authorization": "Bearer wrong"}) as wrong:
                assert wrong.status == 401
            ingest_only = {"Authorization": f"Bearer {GATEWAY}"}
            async with http.get(base + "/api/sources", headers=ingest_only) as forbidden:
                assert forbidden.status == 403 and "subscribe" in (await forbidden.json())["error"]

            reader = {"Authorization": f"Bearer {READER}"}
            async with http.get(base + "/api/incidents?state=open", headers=reader) as ok:
                assert ok.status == 200
                incidents = (await ok.json())["incidents"]
            assert [i["category"] for i in incidents] == ["EXPOSED_GARBAGE"]
            frame_evidence = next(e for e in incidents[0]["evidence"] if e["kind"] == "frame_jpeg")
            async with http.get(base + frame_evidence["url"]) as refused:
                assert refused.status == 401
            async with http.get(base + frame_evidence["url"], headers=reader) as photo:
                assert photo.status == 200 and photo.content_type == "image/jpeg"
                image = cv2.imdecode(np.frombuffer(await photo.read(), np.uint8), cv2.IMREAD_COLOR)
                assert image.shape == (240, 320, 3)
            async with http.get(f"{base}/api/incidents/{incidents[0]['incident_id']}", headers=reader) as one:
                assert one.status == 200 and (await one.json())["state"] == "open"
            async with http.get(f"{base}/api/incidents/nope", headers=reader) as missing:
                assert missing.status == 404
            async with http.get(f"{base}/api/evidence/{'0' * 64}", headers=reader) as gone:
                assert gone.status == 404
            async with http.get(base + "/api/sources", headers=reader) as sources:
                (cam,) = (await sources.json())["sources"]
            assert (cam["source_id"], cam["frames_received"], cam["frames_ok"], cam["errors"]) == ("cam-1", 12, 12, {})
            assert cam["fps"] == pytest.approx(2.0) and cam["has_frame"]
            async with http.get(base + "/api/sources/cam-1/frame.jpg", headers=reader) as frame:
                assert frame.status == 200 and frame.content_type == "image/jpeg"
            async with http.get(base + "/api/sources/cam-9/frame.jpg", headers=reader) as unknown:
                assert unknown.status == 404

    run(go())


def test_http_port_0_serves_no_console(tmp_path: Path):
    spec = write_spec(tmp_path / "blobs.yaml")
    config = load_config(None, environ={}, overrides=["server.port=0", *scripted_overrides(spec, tmp_path / "d")])
    assert config.server.http_port == 0

    async def go() -> None:
        service = await start_service(config)
        try:
            assert service.console is None
            observers = service.pipeline.observers
            assert not any(isinstance(getattr(o, "__self__", None), SourceHealth) for o in observers)
        finally:
            await service.stop(grace_s=1)

    run(go())


def _frame(ts: float, seq: int) -> Frame:
    return Frame("cam-1", seq, ts, np.full((120, 160, 3), 90, np.uint8))


def test_source_health_counts_frames_errors_gaps_and_frames_per_second():
    rules = RulesConfig.model_validate(
        {
            "sources": {
                "cam-1": {
                    "zones_frame_size_px": [320, 240],
                    "zones": [
                        {
                            "id": "z",
                            "polygon_px": [[0, 120], [320, 120], [320, 240], [0, 240]],
                            "prohibited_classes": ["stall"],
                        }
                    ],
                }
            }
        }
    )
    health = SourceHealth(ConsoleSettings(gap_s=5, health_window_s=10), rules, ["stall", "garbage"])
    seq = 0
    for t in [i * 0.5 for i in range(40)] + [40 + i * 0.25 for i in range(20)]:  # 2 fps, a 20.5 s gap, then 4 fps
        seq += 1
        frame = _frame(T0 + t, seq)
        boxes = Detections(xyxy=[[10, 10, 50, 50]], confidence=[0.9], class_id=[1], track_id=[7])
        health.observe(frame, FrameOutcome("cam-1", seq, 0, detections=boxes, image_size=(160, 120)))
    health.observe(None, FrameOutcome("cam-1", seq + 1, 3, FrameError(RejectCode.DROPPED, "dropped")))
    health.observe(None, FrameOutcome("cam-1", seq + 2, 3, FrameError(RejectCode.UNDECODABLE, "bad jpeg")))
    (cam,) = health.snapshot()
    assert (cam["frames_received"], cam["frames_ok"], cam["frames_dropped"]) == (62, 60, 3)
    assert cam["errors"] == {"UNDECODABLE": 1, "DROPPED": 1}
    assert (cam["gaps"], cam["gap_seconds"]) == (1, 20.5)
    assert cam["fps"] == pytest.approx(4.0), "frames per second over the last 10 s of capture time"
    assert cam["last_capture_ts"] == T0 + 40 + 19 * 0.25 and cam["frame_size"] == [160, 120]

    latest = health.latest("cam-1")
    assert latest is not None
    image = cv2.imdecode(np.frombuffer(health.annotated_jpeg(latest), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (120, 160, 3)
    assert image[58:63, 70:90, 2].min() < 150 < image[58:63, 70:90, 2].max(), "the zone's top edge, scaled to 160x120"
    assert image[8:52, 8:12, 1].max() > 150, "the garbage box (class 1, green)"
    assert health.annotated_jpeg(latest) is health.annotated_jpeg(latest), "encoded once per frame"
    assert health.latest("cam-2") is None


def test_console_settings_refuse_a_basemap_without_bounds_or_a_tile_url_without_placeholders(tmp_path: Path):
    image = tmp_path / "city.png"
    cv2.imwrite(str(image), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(ConfigError, match="basemap_bounds"):
        load_config(None, environ={}, overrides=[f"console.basemap_image={image}"])
    with pytest.raises(ConfigError, match=r"\{z\}"):
        load_config(None, environ={}, overrides=["console.tile_url=http://tiles.city.lan/tile.png"])
    bounds = "console.basemap_bounds={south: 31.22, west: 121.46, north: 31.24, east: 121.48}"
    config = load_config(None, environ={}, overrides=[f"console.basemap_image={image}", bounds])
    assert config.console.basemap_kind == "image" and config.server.http_port == 0


def _mercator_px(lat: float, lon: float, zoom: int) -> tuple[float, float]:
    scale = 256 * 2**zoom
    s = math.sin(math.radians(lat))
    return (lon + 180) / 360 * scale, (0.5 - math.log((1 + s) / (1 - s)) / (4 * math.pi)) * scale


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run installs it)")
def test_a_tile_url_draws_the_city_tile_servers_tiles_under_the_incidents(tmp_path: Path):
    from playwright.async_api import async_playwright

    ok, png = cv2.imencode(".png", np.full((256, 256, 3), 200, np.uint8))
    assert ok
    asked: list[tuple[int, int, int]] = []
    tile_asked = asyncio.Event()

    async def tile(request: web.Request) -> web.Response:  # the city's own tile server, on loopback
        z, x, y = (int(request.match_info[k]) for k in ("z", "x", "y"))
        asked.append((z, x, y))
        tile_asked.set()
        return web.Response(body=png.tobytes(), content_type="image/png")

    async def go() -> None:
        app = web.Application()
        app.router.add_get("/tiles/{z}/{x}/{y}.png", tile)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        tile_port = runner.addresses[0][1]
        config = console_config(
            tmp_path, CAMERA_POSITION, f"console.tile_url=http://127.0.0.1:{tile_port}/tiles/{{z}}/{{x}}/{{y}}.png"
        )
        try:
            async with console_service(config) as (service, target, base), async_playwright() as p:
                browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
                try:
                    page = await browser.new_page()
                    await page.goto(base + "/")
                    await stream(target, garbage_frames())
                    (record,) = (await asyncio.to_thread(service.store.list_incidents)).items
                    dot = page.locator(f'#map circle.incident-dot[data-incident-id="{record.incident_id}"]')
                    await dot.wait_for(timeout=30_000)
                    await asyncio.wait_for(tile_asked.wait(), 30)
                    cx = float(await dot.get_attribute("cx") or "nan")
                    cy = float(await dot.get_attribute("cy") or "nan")
                    tiles = await page.eval_on_selector_all(
                        "#map image",
                        "els => els.map(e => [e.getAttribute('href'), +e.getAttribute('x'), +e.getAttribute('y')])",
                    )
                finally:
                    await browser.close()
        finally:
            await runner.cleanup()
        zoom = asked[0][0]
        assert all(z == zoom for z, _, _ in asked) and 10 <= zoom <= 19, asked
        px, py = _mercator_px(31.2304, 121.4737, zoom)
        href = f"http://127.0.0.1:{tile_port}/tiles/{zoom}/{int(px // 256)}/{int(py // 256)}.png"
        (x, y) = next((x, y) for h, x, y in tiles if h == href)
        assert (cx - x, cy - y) == pytest.approx((px % 256, py % 256), abs=0.1), "the dot sits on its tile's pixel"

    run(go())


def test_an_http_port_in_use_is_refused_naming_the_setting(tmp_path: Path):
    from detector.ports import PortInUse

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = console_config(tmp_path, f"server.http_port={port}")
        with pytest.raises(PortInUse, match=f"server.http_port {port}"):
            run(start_service(config))
