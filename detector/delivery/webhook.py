"""Kind ``webhook``: ``POST url`` with the event's JSON (the same line ``detector subscribe --json`` prints).

Headers: ``Content-Type: application/json``, ``Idempotency-Key: <event_id>`` (the same on every redelivery),
``X-StreetWatch-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>`` and
``X-StreetWatch-Schema: streetwatch.v1.IncidentEvent``. 2xx is delivered; 5xx, 408, 429 (honouring
Retry-After, seconds or an HTTP date), timeouts and connection errors are retried; any other status is permanent.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import time
from typing import Any

import aiohttp
from pydantic import Field

from detector.delivery.base import Connector, PermanentError, RetryableError, register_connector
from detector.delivery.payload import event_to_json
from detector.delivery.settings import ConnectorSettings, register_settings
from detector.types import IncidentEvent

SCHEMA = "streetwatch.v1.IncidentEvent"
RETRYABLE_4XX = frozenset({408, 429})


class WebhookSettings(ConnectorSettings):
    url: str = Field(..., pattern=r"^https?://", description="Where events are POSTed.")
    secret: str = Field(..., min_length=16, description="HMAC-SHA256 key for X-StreetWatch-Signature.")
    timeout_s: float = Field(10.0, gt=0, description="Whole-request timeout, in seconds.")
    connect_timeout_s: float = Field(5.0, gt=0, description="Connection timeout, in seconds.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers (e.g. Authorization).")


register_settings("webhook", WebhookSettings)


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def retry_after_s(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds (``120``) or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class WebhookConnector(Connector):
    kind = "webhook"

    def __init__(self, settings: WebhookSettings) -> None:
        self.name = settings.name
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            s = self._settings
            timeout = aiohttp.ClientTimeout(total=s.timeout_s, sock_connect=s.connect_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)

    async def deliver(self, event: IncidentEvent) -> None:
        await self.start()
        assert self._session is not None
        body = event_to_json(event)
        headers = {
            **self._settings.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": event.event_id,
            "X-StreetWatch-Signature": sign(body, self._settings.secret),
            "X-StreetWatch-Schema": SCHEMA,
        }
        try:
            async with self._session.post(self._settings.url, data=body, headers=headers) as response:
                status = response.status
                retry_after = retry_after_s(response.headers.get("Retry-After"))
                await response.read()
        except TimeoutError as exc:
            raise RetryableError("timeout") from exc
        except aiohttp.ClientError as exc:
            raise RetryableError(f"connection: {type(exc).__name__}") from exc
        if 200 <= status < 300:
            return
        if status >= 500 or status in RETRYABLE_4XX:
            raise RetryableError(f"HTTP {status}", retry_after)
        raise PermanentError(f"HTTP {status}")

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            await asyncio.sleep(0)


@register_connector("webhook")
def _factory(settings: dict[str, Any]) -> Connector:
    return WebhookConnector(WebhookSettings.model_validate(settings))
