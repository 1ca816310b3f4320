"""The ``cluster`` section: whether this service is one replica of several sharing a PostgreSQL store, its name,
and how long its leases (on sources, and on the once-per-cluster delivery) last."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ClusterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        False,
        description="Run as one replica of several sharing store.url (needs store.backend: postgres): each source "
        "is processed by the replica holding its lease, the delivery connectors by one replica.",
    )
    replica_id: str | None = Field(
        None, min_length=1, description="This replica's name in the lease table; None = '<hostname>:<port>'."
    )
    lease_s: float = Field(
        10.0, gt=0, description="A lease not renewed for this long expires; another replica may take it."
    )
    renew_every_s: float | None = Field(
        None, gt=0, description="How often held leases are renewed; None = lease_s / 3."
    )

    @model_validator(mode="after")
    def _verify(self) -> ClusterSettings:
        verify_renewal(self)
        return self

    @property
    def renew_interval_s(self) -> float:
        return self.lease_s / 3 if self.renew_every_s is None else self.renew_every_s


def verify_renewal(settings: ClusterSettings) -> None:
    if settings.renew_every_s is not None and settings.renew_every_s >= settings.lease_s:
        raise ValueError(
            f"cluster.renew_every_s ({settings.renew_every_s:g}) must be shorter than cluster.lease_s "
            f"({settings.lease_s:g}), or every lease expires before it is renewed"
        )
