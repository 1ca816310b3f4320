"""Evidence over HTTP for case systems: signed, expiring links to stored evidence JPEGs.

``GET /evidence/<sha256>.jpg?exp=<unix seconds>&sig=<hex>`` on ``server.http_port`` (mounted on the console's
app), where ``sig`` is HMAC-SHA256 of ``"<sha256>:<exp>"`` with ``server.evidence_links.secret``. The link is
the credential: no bearer token is asked, so a case system (an Open311 back office) can fetch the ``media_url``
it was sent. A bad or expired signature gets 403 (checked before the store is read, so a refusal says nothing
about what exists), unknown evidence 404; nothing is ever listed.

``EvidenceLinks.evidence_url(sha256, now)`` builds a link valid ``ttl_s`` from ``now``. With no secret
configured one is generated at start-up: links then die on restart (logged).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from detector.store.base import IncidentStore
from detector.store.errors import EvidenceCorrupt, EvidenceMissing, StoreError

log = logging.getLogger(__name__)

ROUTE = "/evidence/{sha256:[0-9a-f]{64}}.jpg"


class EvidenceLinkSettings(BaseModel):
    """``server.evidence_links``: signed links to evidence for case systems (off when the section is absent)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        ...,
        pattern=r"^https?://[^/?#]+(/[^?#]*)?$",
        description="How a case system reaches server.http_port, e.g. 'https://streetwatch.city.lan' (a reverse "
        "proxy) or 'http://10.1.2.3:8080'; links are <base_url>/evidence/<sha256>.jpg?exp=..&sig=..",
    )
    secret: str | None = Field(
        None,
        min_length=16,
        description="HMAC-SHA256 key of the links (e.g. from STREETWATCH__SERVER__EVIDENCE_LINKS__SECRET). "
        "None: a random one per start, so links die on restart.",
    )
    ttl_s: int = Field(604800, ge=60, description="How long a link stays valid, in seconds (default 7 days).")


class EvidenceLinks:
    """Builds and checks signed evidence links (one secret, one base URL)."""

    def __init__(self, settings: EvidenceLinkSettings) -> None:
        self._base_url = settings.base_url.rstrip("/")
        self._ttl_s = settings.ttl_s
        if settings.secret is None:
            log.warning(
                "server.evidence_links.secret is not set: a random one was generated, so evidence links "
                "sent to case systems stop working when the service restarts"
            )
        self._secret = (settings.secret or secrets.token_hex(32)).encode()

    def signature(self, sha256: str, exp: int) -> str:
        return hmac.new(self._secret, f"{sha256}:{exp}".encode(), hashlib.sha256).hexdigest()

    def evidence_url(self, sha256: str, now: float) -> str:
        """The link to evidence ``sha256``, valid until ``now + ttl_s``."""
        exp = int(now) + self._ttl_s
        return f"{self._base_url}/evidence/{sha256}.jpg?exp={exp}&sig={self.signature(sha256, exp)}"

    def verify(self, sha256: str, exp_text: str, sig: str, now: float) -> bool:
        """Whether ``sig`` signs ``sha256`` until ``exp_text`` and that time has not passed."""
        if not exp_text.isdigit() or int(exp_text) < now:
            return False
        return hmac.compare_digest(self.signature(sha256, int(exp_text)), sig.lower())


def evidence_handler(
    links: EvidenceLinks, store: IncidentStore, clock: Callable[[], float]
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The aiohttp handler of ``ROUTE`` (``app.router.add_get(ROUTE, evidence_handler(...))``)."""

    async def handle(request: web.Request) -> web.Response:
        sha256 = request.match_info["sha256"]
        exp, sig = request.query.get("exp", ""), request.query.get("sig", "")
        private = {"Cache-Control": "private, no-store"}
        if not links.verify(sha256, exp, sig, clock()):
            return web.Response(status=403, text="the link is invalid or has expired\n", headers=private)
        try:
            data = await asyncio.to_thread(_read, store, sha256)
        except EvidenceMissing:
            return web.Response(status=404, text="no such evidence (removed by retention?)\n", headers=private)
        except EvidenceCorrupt:
            return web.Response(status=500, text="the evidence file is damaged\n", headers=private)
        except StoreError:
            return web.Response(status=503, text="the evidence store cannot answer\n", headers=private)
        return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "private"})

    return handle


def _read(store: IncidentStore, sha256: str) -> bytes:
    with store.open_evidence(sha256) as f:
        return f.read()
