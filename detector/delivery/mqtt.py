"""Kind ``mqtt``: each event, as the JSON of ``detector subscribe --json``, published with QoS 1 (delivered when the
broker's PUBACK came back) on ``<topic_prefix>/events/<category>/<source_id>``, and the incident's latest event
published retained on ``<topic_prefix>/incidents/<incident_id>/state``, so that a subscriber that comes later
reads each incident's current state at once.

``CLEARED``: by default the final (``CLEARED``) event stays retained on the state topic, so a late subscriber
also learns that an incident was cleared; with ``clear_state_on_cleared: true`` an empty retained message deletes
the state topic instead (the broker then keeps state for open incidents only).

The session is persistent (``clean_session`` off, client id ``streetwatch-<name>``). Topic levels are escaped,
percent-style, so that a category, source or incident id can never add a level or a wildcard: ``%`` → ``%25``,
``/`` → ``%2F``, ``+`` → ``%2B``, ``#`` → ``%23``, NUL → ``%00``.
A broker that cannot be reached, or no PUBACK within ``timeout_s``, is retryable; a topic longer than MQTT allows
is permanent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

import aiomqtt
from pydantic import Field, field_validator

from detector.delivery.base import Connector, PermanentError, RetryableError, describe, register_connector
from detector.delivery.payload import event_to_json
from detector.delivery.settings import ConnectorSettings, register_settings
from detector.types import EventType, IncidentEvent

MAX_TOPIC_BYTES = 65_535
_ESCAPES = {"%": "%25", "/": "%2F", "+": "%2B", "#": "%23", "\0": "%00"}


class MqttSettings(ConnectorSettings):
    host: str = Field("127.0.0.1", min_length=1, description="The broker's host.")
    port: int = Field(1883, ge=1, le=65535, description="The broker's port (8883 is usual with TLS).")
    username: str | None = Field(None, description="User name, if the broker asks for one.")
    password: str | None = Field(None, description="Password, with username.")
    tls: bool = Field(False, description="Connect with TLS (the system's CAs, or ca_file).")
    ca_file: str | None = Field(None, description="CA bundle (PEM) to verify the broker with; implies tls.")
    tls_insecure: bool = Field(False, description="Do not verify the broker's certificate (tests only).")
    topic_prefix: str = Field("streetwatch", min_length=1, description="First topic level(s), e.g. city/streetwatch.")
    clear_state_on_cleared: bool = Field(
        False, description="On CLEARED, delete the retained state topic instead of keeping the final state."
    )
    timeout_s: float = Field(10.0, gt=0, description="Connect and PUBACK timeout, in seconds.")
    keepalive_s: int = Field(60, ge=5, description="MQTT keep-alive, in seconds.")

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if any(c in value for c in "+#\0") or value.startswith("/") or value.endswith("/"):
            raise ValueError("topic_prefix must be topic levels without wildcards (+, #) or a leading/trailing /")
        return value


register_settings("mqtt", MqttSettings)


def topic_level(value: str) -> str:
    """One topic level that cannot add levels or wildcards (see the module docstring for the mapping)."""
    return "".join(_ESCAPES.get(c, c) for c in value)


def event_topic(prefix: str, event: IncidentEvent) -> str:
    return f"{prefix}/events/{topic_level(event.category)}/{topic_level(event.source_id)}"


def state_topic(prefix: str, incident_id: str) -> str:
    return f"{prefix}/incidents/{topic_level(incident_id)}/state"


class MqttConnector(Connector):
    kind = "mqtt"

    def __init__(self, settings: MqttSettings) -> None:
        self.name = settings.name
        self._settings = settings
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()

    @property
    def client_id(self) -> str:
        return f"streetwatch-{self.name}"

    def _make_client(self) -> aiomqtt.Client:
        s = self._settings
        tls_context: ssl.SSLContext | None = None
        if s.tls or s.ca_file is not None:
            tls_context = ssl.create_default_context(cafile=s.ca_file)
            if s.tls_insecure:
                tls_context.check_hostname = False
                tls_context.verify_mode = ssl.CERT_NONE
        return aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=s.password,
            identifier=self.client_id,
            clean_session=False,
            timeout=s.timeout_s,
            keepalive=s.keepalive_s,
            tls_context=tls_context,
        )

    async def start(self) -> None:
        async with self._lock:
            await self._connect()

    async def _connect(self) -> aiomqtt.Client:
        if self._client is not None:
            return self._client
        client = self._make_client()
        try:
            await asyncio.wait_for(client.__aenter__(), self._settings.timeout_s)
        except (TimeoutError, aiomqtt.MqttError, OSError) as exc:
            raise RetryableError(f"mqtt: cannot connect to {self._where()}: {describe(exc)}") from exc
        self._client = client
        return client

    async def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(TimeoutError, aiomqtt.MqttError, OSError):  # the connection is gone already
                await asyncio.wait_for(client.__aexit__(None, None, None), self._settings.timeout_s)

    def _where(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    async def deliver(self, event: IncidentEvent) -> None:
        prefix = self._settings.topic_prefix
        topic = event_topic(prefix, event)
        state = state_topic(prefix, event.incident_id)
        for name in (topic, state):
            if len(name.encode("utf-8")) > MAX_TOPIC_BYTES:
                raise PermanentError(f"mqtt: topic longer than {MAX_TOPIC_BYTES} bytes")
        payload = event_to_json(event)
        clear = event.type is EventType.CLEARED and self._settings.clear_state_on_cleared
        async with self._lock:
            client = await self._connect()
            timeout = self._settings.timeout_s
            try:
                await asyncio.wait_for(client.publish(topic, payload, qos=1, timeout=timeout), timeout + 1)
                await asyncio.wait_for(
                    client.publish(state, b"" if clear else payload, qos=1, retain=True, timeout=timeout), timeout + 1
                )
            except (TimeoutError, aiomqtt.MqttError, OSError) as exc:
                await self._drop()  # reconnect on the next try
                raise RetryableError(f"mqtt: publish to {self._where()} failed: {describe(exc)}") from exc

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


@register_connector("mqtt")
def build_mqtt(settings: dict[str, Any]) -> Connector:
    return MqttConnector(MqttSettings.model_validate(settings))
