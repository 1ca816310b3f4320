"""The contract between the delivery runner and one kind of connector.

A connector sends one event (``deliver``). It returns when the peer has durably taken it (HTTP 2xx, MQTT PUBACK,
JetStream ack), raises :class:`RetryableError` when trying again later can succeed (a timeout, a 5xx, 408/429,
the broker unreachable; ``retry_after_s`` when the peer said how long to wait), and :class:`PermanentError` when
it cannot (a 4xx other than 408/429, an event the peer's contract cannot carry): the runner dead-letters it.

Kinds register themselves by name (``@register_connector("webhook")``) with a factory taking the connector's
settings (the ``delivery.connectors[]`` entry, validated by the kind's own pydantic model) and returning the
connector. Delivery is at least once: a peer may see an event twice (same ``event_id``) after a crash between
its ack and the commit of the offset.

A kind that writes back (Open311 stores the case id it got, and polls the case's status) is handed the store and
the evidence link builder by ``bind(ConnectorContext)`` before ``start``, and may run ``background()`` beside its
deliveries: the runner starts it after ``start`` and cancels it on stop. Both default to doing nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from detector.store.base import IncidentStore
from detector.types import IncidentEvent

EvidenceUrl = Callable[[str, float], str]  # (sha256, now) -> a signed link a case system can fetch


class DeliveryError(Exception):
    """A failed delivery; ``reason`` is shown in logs, metrics labels (short) and dead letters."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def describe(exc: BaseException) -> str:
    """An exception as a failure reason: its message, or its class name when it has none (a bare timeout)."""
    return str(exc) or type(exc).__name__


class RetryableError(DeliveryError):
    """Trying again later can succeed. ``retry_after_s``: the peer's own hint (HTTP Retry-After), if any."""

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class PermanentError(DeliveryError):
    """Trying again cannot succeed: the event goes to the dead letters with this reason."""


@dataclass(frozen=True)
class ConnectorContext:
    """What the runner hands every connector: the store, and how to link evidence (None: no links configured)."""

    store: IncidentStore
    evidence_url: EvidenceUrl | None = None


class Connector(ABC):
    """One configured connector: a name (unique; also its consumer name in the store) and a way to send."""

    name: str
    kind: str

    def bind(self, context: ConnectorContext) -> None:  # noqa: B027  (most kinds only send)
        """Take the store and the evidence link builder (called once, before ``start``)."""

    async def background(self) -> None:  # noqa: B027
        """Work beside deliveries (e.g. polling a case system), started after ``start``, cancelled on stop;
        it handles its own failures."""

    async def start(self) -> None:  # noqa: B027  (most kinds open nothing ahead)
        """Open connections (called once before the first delivery; failures here are retried by the runner)."""

    @abstractmethod
    async def deliver(self, event: IncidentEvent) -> None:
        """Send one event; see the module docstring for what to raise."""

    async def close(self) -> None:  # noqa: B027
        """Close connections (called once on shutdown)."""


ConnectorFactory = Callable[[dict[str, Any]], Connector]
_REGISTRY: dict[str, ConnectorFactory] = {}


def register_connector(kind: str) -> Callable[[ConnectorFactory], ConnectorFactory]:
    def decorate(factory: ConnectorFactory) -> ConnectorFactory:
        _REGISTRY[kind] = factory
        return factory

    return decorate


def connector_kinds() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def build_connector(settings: dict[str, Any]) -> Connector:
    """The connector a ``delivery.connectors[]`` entry describes (``kind`` picks the factory)."""
    _load_builtin()
    kind = settings.get("kind")
    factory = _REGISTRY.get(str(kind))
    if factory is None:
        raise ValueError(f"delivery connector kind {kind!r} is unknown; known: {', '.join(sorted(_REGISTRY))}")
    return factory(settings)


def _load_builtin() -> None:
    import importlib

    for module in ("webhook", "open311", "mqtt", "nats"):
        try:
            importlib.import_module(f"detector.delivery.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"detector.delivery.{module}":
                raise
