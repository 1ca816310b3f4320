"""Kind ``nats``: each event, as the JSON of ``detector subscribe --json``, published to NATS JetStream on
``<subject_prefix>.events.<category>.<source_id>`` with the header ``Nats-Msg-Id: <event_id>``, so that the
stream's duplicate window drops a redelivered event; delivered when the stream's PubAck came back.

The stream (``stream``, default ``STREETWATCH_EVENTS``, subjects ``<subject_prefix>.events.>``, file storage,
``duplicate_window_s``) is created when missing; an existing stream is used as it is.

Subject tokens are escaped, percent-style, so that a category or source id is always exactly one token and never
a wildcard: ``%`` → ``%25``, ``.`` → ``%2E``, ``*`` → ``%2A``, ``>`` → ``%3E``, and a space, a control character
or DEL → ``%XX`` (its hex code, e.g. ``%20``); an empty value becomes ``_``.
A server that cannot be reached, no PubAck within ``timeout_s`` or JetStream unavailable is retryable; a message
over the server's max_payload or a subject the server refuses is permanent.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js.api import StorageType, StreamConfig
from nats.js.client import JetStreamContext
from pydantic import Field, field_validator

from detector.delivery.base import Connector, PermanentError, RetryableError, describe, register_connector
from detector.delivery.payload import event_to_json
from detector.delivery.settings import ConnectorSettings, register_settings
from detector.types import IncidentEvent

_ESCAPES = {"%": "%25", ".": "%2E", "*": "%2A", ">": "%3E"}


class NatsSettings(ConnectorSettings):
    servers: list[str] = Field(
        default_factory=lambda: ["nats://127.0.0.1:4222"], min_length=1, description="Server URLs."
    )
    user: str | None = Field(None, description="User name, if the server asks for one.")
    password: str | None = Field(None, description="Password, with user.")
    token: str | None = Field(None, description="Auth token, instead of user and password.")
    creds_file: str | None = Field(None, description="A .creds file (JWT and NKey seed).")
    tls_ca_file: str | None = Field(None, description="CA bundle (PEM) to verify a tls:// server with.")
    subject_prefix: str = Field("streetwatch", min_length=1, description="First subject token(s).")
    stream: str = Field("STREETWATCH_EVENTS", pattern=r"^[A-Za-z0-9_-]+$", description="JetStream stream name.")
    duplicate_window_s: float = Field(
        600.0, gt=0, description="The stream's duplicate window (when it creates the stream), in seconds."
    )
    timeout_s: float = Field(10.0, gt=0, description="Connect and PubAck timeout, in seconds.")

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        tokens = value.split(".")
        if any(not t or any(c in t for c in "*> \t\r\n") for t in tokens):
            raise ValueError("subject_prefix must be dot-separated tokens without wildcards (*, >) or spaces")
        return value


register_settings("nats", NatsSettings)


def subject_token(value: str) -> str:
    """One subject token that cannot add tokens or wildcards (see the module docstring for the mapping)."""
    if not value:
        return "_"
    return "".join(_ESCAPES.get(c, f"%{ord(c):02X}" if ord(c) <= 0x20 or ord(c) == 0x7F else c) for c in value)


def event_subject(prefix: str, event: IncidentEvent) -> str:
    return f"{prefix}.events.{subject_token(event.category)}.{subject_token(event.source_id)}"


class NatsConnector(Connector):
    kind = "nats"

    def __init__(self, settings: NatsSettings) -> None:
        self.name = settings.name
        self._settings = settings
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            await self._connect()

    async def _connect(self) -> JetStreamContext:
        if self._js is not None and self._nc is not None and self._nc.is_connected:
            return self._js
        await self._drop()
        s = self._settings
        options: dict[str, Any] = {
            "name": f"streetwatch-{self.name}",
            "connect_timeout": s.timeout_s,
            "allow_reconnect": False,  # this connector reconnects on the next try itself
            "error_cb": _quiet,
            "disconnected_cb": _nothing,
            "closed_cb": _nothing,
        }
        if s.user is not None:
            options["user"], options["password"] = s.user, s.password
        if s.token is not None:
            options["token"] = s.token
        if s.creds_file is not None:
            options["user_credentials"] = s.creds_file
        if s.tls_ca_file is not None:
            import ssl

            options["tls"] = ssl.create_default_context(cafile=s.tls_ca_file)
        try:
            nc = await asyncio.wait_for(nats.connect(s.servers, **options), s.timeout_s + 1)
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            raise RetryableError(f"nats: cannot connect to {', '.join(s.servers)}: {describe(exc)}") from exc
        self._nc = nc
        js = nc.jetstream(timeout=s.timeout_s)
        try:
            await self._ensure_stream(js)
        except (TimeoutError, nats.errors.Error, OSError) as exc:
            await self._drop()
            raise RetryableError(f"nats: stream {s.stream}: {describe(exc)}") from exc
        self._js = js
        return js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        s = self._settings
        try:
            await js.stream_info(s.stream)
            return
        except nats.js.errors.NotFoundError:
            pass
        config = StreamConfig(
            name=s.stream,
            subjects=[f"{s.subject_prefix}.events.>"],
            storage=StorageType.FILE,
            duplicate_window=s.duplicate_window_s,
        )
        try:
            await js.add_stream(config)
        except nats.js.errors.BadRequestError as exc:
            if exc.err_code != 10058:  # stream name already in use: another process created it meanwhile
                raise

    async def _drop(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(TimeoutError, nats.errors.Error, OSError):  # the connection is gone already
                await asyncio.wait_for(nc.close(), self._settings.timeout_s)

    async def deliver(self, event: IncidentEvent) -> None:
        s = self._settings
        subject = event_subject(s.subject_prefix, event)
        payload = event_to_json(event)
        async with self._lock:
            js = await self._connect()
            try:
                await js.publish(
                    subject, payload, timeout=s.timeout_s, stream=s.stream, headers={"Nats-Msg-Id": event.event_id}
                )
            except (nats.errors.MaxPayloadError, nats.errors.BadSubjectError) as exc:
                raise PermanentError(f"nats: {describe(exc)}") from exc
            except nats.js.errors.APIError as exc:
                if exc.code is not None and 400 <= exc.code < 500 and exc.code not in (404, 408):
                    raise PermanentError(f"nats: stream {s.stream} refused the event: {describe(exc)}") from exc
                await self._drop()
                raise RetryableError(f"nats: stream {s.stream}: {describe(exc)}") from exc
            except (TimeoutError, nats.errors.Error, OSError) as exc:
                await self._drop()  # reconnect (and re-check the stream) on the next try
                raise RetryableError(f"nats: publish to {s.stream} failed: {describe(exc)}") from exc

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


async def _quiet(exc: Exception) -> None:
    """Errors are raised to the runner by ``deliver``; the client's own log line would only repeat them."""


async def _nothing() -> None:
    pass


@register_connector("nats")
def build_nats(settings: dict[str, Any]) -> Connector:
    return NatsConnector(NatsSettings.model_validate(settings))
