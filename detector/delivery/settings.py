"""The ``delivery`` section: the connectors (each validated by its kind's own model), the filter they share,
retries, dead letters and when a failing connector counts as unhealthy."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from detector.gateway.backoff import BackoffSettings
from detector.store.model import SEVERITY_RANK, parse_severity
from detector.types import EventType, IncidentEvent


class DeliveryFilter(BaseModel):
    """Which events a connector sends; an empty list means "any". Skipped events still advance its offset."""

    model_config = ConfigDict(extra="forbid")

    categories: list[str] = Field(default_factory=list, description="Incident categories, e.g. ROAD_DAMAGE.")
    source_ids: list[str] = Field(default_factory=list, description="Sources (cameras, drones).")
    min_severity: str | None = Field(None, description="Lowest severity sent: low, medium, high or critical.")
    types: list[EventType] = Field(default_factory=list, description="Event types: OPENED, UPDATED, CLEARED.")

    @field_validator("min_severity")
    @classmethod
    def _severity(cls, value: str | None) -> str | None:
        return None if value is None else parse_severity(value).value

    def matches(self, event: IncidentEvent) -> bool:
        if self.categories and event.category not in self.categories:
            return False
        if self.source_ids and event.source_id not in self.source_ids:
            return False
        if self.types and event.type not in self.types:
            return False
        if self.min_severity is not None:
            return SEVERITY_RANK[parse_severity(event.severity)] >= SEVERITY_RANK[parse_severity(self.min_severity)]
        return True


class ConnectorSettings(BaseModel):
    """What every connector entry has; a kind's model subclasses this and adds its own keys."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        ..., min_length=1, pattern=r"^[A-Za-z0-9_.-]+$", description="Unique; consumer name delivery:<name>."
    )
    kind: str = Field(..., description="Connector kind: webhook, mqtt, nats.")
    filter: DeliveryFilter = Field(default_factory=DeliveryFilter, description="Which events this connector sends.")


def full_jitter_backoff() -> BackoffSettings:
    return BackoffSettings(initial_s=1.0, max_s=300.0, jitter=1.0)


class DeliverySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connectors: list[dict[str, Any]] = Field(
        default_factory=list, description="Connectors, each {name, kind, filter, ...its kind's keys}."
    )
    max_attempts: int = Field(
        10,
        ge=1,
        description="An event refused permanently (e.g. HTTP 4xx other than 408/429) is tried this many times, "
        "then dead-lettered. Retryable failures (timeouts, 5xx, outages) are retried forever.",
    )
    backoff: BackoffSettings = Field(
        default_factory=full_jitter_backoff, description="Waits between tries (jitter 1 = full jitter)."
    )
    unhealthy_after_s: float = Field(
        300.0, gt=0, description="A connector failing for longer than this reports NOT_SERVING."
    )
    batch_size: int = Field(256, ge=1, le=10_000, description="Events read from the log at a time.")

    @model_validator(mode="after")
    def _verify(self) -> DeliverySettings:
        names: set[str] = set()
        for entry in self.connectors:
            validated = validate_connector(entry)
            if validated.name in names:
                raise ValueError(f"delivery connector name {validated.name!r} is used twice")
            names.add(validated.name)
        return self


_KIND_MODELS: dict[str, type[ConnectorSettings]] = {}


def register_settings(kind: str, model: type[ConnectorSettings]) -> None:
    """A kind module registers its settings model here (at import), so the section validates its entries."""
    _KIND_MODELS[kind] = model


def validate_connector(entry: dict[str, Any]) -> ConnectorSettings:
    """The entry validated by its kind's model (``ValueError`` for an unknown kind)."""
    from detector.delivery.base import connector_kinds

    known = connector_kinds()  # imports the built-in kinds, which register their models
    kind = str(entry.get("kind"))
    model = _KIND_MODELS.get(kind)
    if model is None:
        raise ValueError(f"delivery connector kind {kind!r} is unknown; known: {', '.join(known)}")
    return model.model_validate(entry)
