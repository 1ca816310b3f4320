"""The operator console's HTTP side (aiohttp, on the service's event loop): one static page and read-only JSON.

- ``GET /`` the page (``static/``: HTML, JS and CSS, no framework, nothing fetched from elsewhere);
- ``GET /api/config`` what the page needs to draw (poll interval, basemap);
- ``GET /api/incidents?state=open|cleared|all&limit=N``, ``GET /api/incidents/{id}``;
- ``GET /api/evidence/{sha256}`` a stored evidence JPEG;
- ``GET /api/sources`` stream health per source; ``GET /api/sources/{id}/frame.jpg`` its newest frame, annotated;
- ``GET /api/basemap`` the configured basemap image;
- ``GET /evidence/<sha256>.jpg?exp=..&sig=..`` (with ``server.evidence_links``) a signed, expiring link for case
  systems, outside ``/api/``: the signature is its credential (``detector/api/evidence_http.py``).

With ``auth.enabled`` every ``/api/`` request needs ``Authorization: Bearer <token>`` of a token with the role the
``streetwatch.v1.Incidents`` service needs (or admin): 401 without a valid token, 403 without the role, as JSON.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from detector.api.auth import _SERVICE_ROLE, AuthSettings, hash_token
from detector.api.console.health import SourceHealth
from detector.api.console.settings import ConsoleSettings
from detector.api.evidence_http import ROUTE, EvidenceLinks, evidence_handler
from detector.store.base import IncidentStore
from detector.store.errors import EvidenceCorrupt, EvidenceMissing, StoreError
from detector.store.model import IncidentRecord, IncidentState
from detector.types import IncidentEvent

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
READ_ROLE = _SERVICE_ROLE["streetwatch.v1.Incidents"]  # reading incidents needs what the Incidents service needs
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PAGES = {"/": ("index.html", "text/html"), "/console.js": ("console.js", "text/javascript")}
_PAGES["/console.css"] = ("console.css", "text/css")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class ConsoleServer:
    """The console's HTTP server; ``start`` binds ``host:port`` (0: a free port) and returns the bound port."""

    def __init__(
        self,
        settings: ConsoleSettings,
        auth: AuthSettings,
        store: IncidentStore,
        health: SourceHealth,
        host: str,
        port: int,
        evidence_links: EvidenceLinks | None = None,
    ) -> None:
        self._settings = settings
        self._auth = auth
        self._store = store
        self._health = health
        self._host = host
        self._port = port
        self._evidence_links = evidence_links
        self._roles_by_hash = {t.sha256: (t.name, frozenset(t.roles)) for t in auth.tokens}
        self._runner: web.AppRunner | None = None
        self.port = 0

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        for path in _PAGES:
            app.router.add_get(path, self._page)
        app.router.add_get("/api/config", self._config)
        app.router.add_get("/api/incidents", self._incidents)
        app.router.add_get("/api/incidents/{incident_id}", self._incident)
        app.router.add_get("/api/evidence/{sha256}", self._evidence)
        app.router.add_get("/api/sources", self._sources)
        app.router.add_get("/api/sources/{source_id}/frame.jpg", self._frame)
        app.router.add_get("/api/basemap", self._basemap)
        if self._evidence_links is not None:
            app.router.add_get(ROUTE, evidence_handler(self._evidence_links, self._store, time.time))
        return app

    async def start(self) -> int:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else self._port
        url = f"http://{f'[{self._host}]' if ':' in self._host else self._host}:{self.port}/"
        log.info("operator console at %s", url, extra={"console_url": url, "auth": self._auth.enabled})
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- auth -----------------------------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/") and self._auth.enabled:
            refusal = self._refusal(request.headers.get("Authorization", ""))
            if refusal is not None:
                return refusal
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400:
                return _error(exc.status, exc.reason)
            raise

    def _refusal(self, header: str) -> web.Response | None:
        if header.startswith("Bearer "):
            offered = hash_token(header.removeprefix("Bearer ").strip())
            for known, (name, roles) in self._roles_by_hash.items():
                if hmac.compare_digest(known, offered):
                    if READ_ROLE in roles or "admin" in roles:
                        return None
                    return _error(403, f"token {name!r} lacks the {READ_ROLE!r} role needed to read incidents")
        return _error(
            401, "a valid token is required: 'Authorization: Bearer <token>'", **{"WWW-Authenticate": "Bearer"}
        )

    # -- handlers -------------------------------------------------------------------------------------------

    async def _page(self, request: web.Request) -> web.StreamResponse:
        name, content_type = _PAGES[request.path]
        body = await asyncio.to_thread((STATIC / name).read_bytes)
        return web.Response(
            body=body, content_type=content_type, charset="utf-8", headers={"Cache-Control": "no-store"}
        )

    async def _config(self, _request: web.Request) -> web.Response:
        s = self._settings
        bounds = s.basemap_bounds.model_dump() if s.basemap_bounds is not None else None
        return web.json_response(
            {
                "poll_interval_s": s.poll_interval_s,
                "auth": self._auth.enabled,
                "basemap": {
                    "kind": s.basemap_kind,
                    "bounds": bounds,
                    "tile_url": s.tile_url,
                    "attribution": s.tile_attribution,
                },
            }
        )

    async def _incidents(self, request: web.Request) -> web.Response:
        state_text = request.query.get("state", "open")
        states = {"open": IncidentState.OPEN, "cleared": IncidentState.CLEARED, "all": None}
        if state_text not in states:
            return _error(400, f"state must be open, cleared or all, not {state_text!r}")
        try:
            limit = int(request.query.get("limit", "200"))
        except ValueError:
            return _error(400, "limit must be an integer")
        limit = min(max(limit, 1), 1000)
        try:
            page = await asyncio.to_thread(self._store.list_incidents, state=states[state_text], page_size=limit)
        except StoreError as exc:
            return _error(503, f"the incident store cannot answer: {exc}")
        return web.json_response({"incidents": [incident_json(r) for r in page.items]})

    async def _incident(self, request: web.Request) -> web.Response:
        incident_id = request.match_info["incident_id"]
        try:
            record = await asyncio.to_thread(self._store.get_incident, incident_id)
        except StoreError as exc:
            return _error(503, f"the incident store cannot answer: {exc}")
        if record is None:
            return _error(404, f"no incident {incident_id!r}")
        return web.json_response(incident_json(record))

    async def _evidence(self, request: web.Request) -> web.Response:
        sha256 = request.match_info["sha256"]
        if not _SHA256.match(sha256):
            return _error(400, "evidence is named by its sha256: 64 lowercase hex digits")
        try:
            data = await asyncio.to_thread(self._read_evidence, sha256)
        except EvidenceMissing:
            return _error(404, f"no evidence {sha256}")
        except EvidenceCorrupt as exc:
            return _error(500, f"evidence {sha256} is damaged: {exc}")
        except StoreError as exc:
            return _error(503, f"the incident store cannot answer: {exc}")
        headers = {"Cache-Control": "private, max-age=31536000, immutable"}  # content-addressed
        return web.Response(body=data, content_type="image/jpeg", headers=headers)

    def _read_evidence(self, sha256: str) -> bytes:
        with self._store.open_evidence(sha256) as f:
            return f.read()

    async def _sources(self, _request: web.Request) -> web.Response:
        return web.json_response({"sources": self._health.snapshot()})

    async def _frame(self, request: web.Request) -> web.Response:
        source_id = request.match_info["source_id"]
        latest = self._health.latest(source_id)
        if latest is None:
            return _error(404, f"no frame from source {source_id!r} yet")
        jpeg = await asyncio.to_thread(self._health.annotated_jpeg, latest)
        return web.Response(body=jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _basemap(self, _request: web.Request) -> web.Response:
        path = self._settings.basemap_image
        if path is None:
            return _error(404, "no basemap_image is configured")
        data = await asyncio.to_thread(path.read_bytes)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return web.Response(body=data, content_type=content_type)


def incident_json(record: IncidentRecord) -> dict[str, Any]:
    """An incident as the page shows it: its state and the fields of its last event."""
    e: IncidentEvent = record.last_event
    location = e.location
    return {
        "incident_id": record.incident_id,
        "state": record.state.value,
        "opened_count": record.opened_count,
        "last_event": e.type.value,
        "sequence": e.sequence,
        "category": e.category,
        "case_code": e.case_code,
        "label": e.label,
        "severity": e.severity.value,
        "confidence": round(e.confidence, 3),
        "source_id": e.source_id,
        "first_seen_ts": e.first_seen_ts,
        "last_seen_ts": e.last_seen_ts,
        "duration_s": round(e.duration_s, 3),
        "box_xyxy": list(e.box_xyxy),
        "zone_id": e.zone_id,
        "rule": e.rule,
        "model_version": e.model_version,
        "location": None
        if location is None
        else {
            "lat": location.lat,
            "lon": location.lon,
            "accuracy_m": round(location.accuracy_m, 2),
            "method": location.method.value,
        },
        "location_note": e.location_note,
        "evidence": [
            {"kind": ev.kind.value, "sha256": ev.sha256, "url": f"/api/evidence/{ev.sha256}"} for ev in e.evidence
        ],
    }
