"""The ``store`` section: where incidents and evidence live, how long they are kept, and how a store that
refuses writes is waited out. The service config embeds it as it is; ``open_store`` takes it directly."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

# URL schemes of a PostgreSQL server; ``from_url`` picks the ``postgres`` backend for them.
POSTGRES_SCHEMES = ("postgresql", "postgres")


class StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: str = Field(default="sqlite", description="Store backend, as registered with register_store.")
    url: str = Field(
        default="",
        description="Database of a server backend, e.g. postgresql://streetwatch@db.example/streetwatch "
        "(libpq URL; a password is better kept in ~/.pgpass or PGPASSWORD). Unused by sqlite.",
    )
    pool_max_size: int = Field(
        default=8, ge=1, description="Most database connections a server backend holds open (postgres)."
    )
    data_dir: Path = Field(
        Path("streetwatch-data"),
        description="Database and evidence files; relative to the working directory (or to the config file).",
    )
    busy_timeout_s: float = Field(
        default=10.0, gt=0, description="How long a write waits for another writer's lock before failing."
    )
    retention_max_age_s: float | None = Field(
        30 * 86400.0, gt=0, description="Evidence and cleared incidents older than this are pruned (None: keep)."
    )
    retention_max_bytes: int | None = Field(
        20 * 1024**3, gt=0, description="Evidence beyond this many bytes is pruned, oldest first (None: no cap)."
    )
    maintenance_interval_s: float = Field(3600.0, gt=0, description="How often retention and checks run.")
    retry_interval_s: float = Field(
        2.0, gt=0, description="While the store refuses appends (disk full), how often waiting events are retried."
    )
    max_backlog_events: int = Field(
        10_000,
        ge=1,
        description="Events held in memory while the store refuses appends; beyond this the oldest are dropped, "
        "counted (the streetwatch_events_lost metric) and logged.",
    )
    integrity_spot_checks: int = Field(
        16, ge=0, description="Evidence files re-hashed by each integrity check (picked at random)."
    )
    check_on_start: bool = Field(
        True,
        description="Run the integrity check at start-up (the log's continuity, sampled evidence; SQLite also "
        "runs quick_check).",
    )

    @model_validator(mode="after")
    def _verify(self) -> StoreSettings:
        verify_url(self)
        return self

    @classmethod
    def from_url(cls, url: str) -> StoreSettings:
        """``sqlite:///var/lib/streetwatch`` (absolute), ``sqlite:data`` (relative), a bare directory, or a
        PostgreSQL URL (``postgresql://user@host:5432/db``) for the ``postgres`` backend."""
        backend, sep, rest = url.partition(":")
        if not sep or not backend.isidentifier():
            return cls(data_dir=Path(url))
        if backend in POSTGRES_SCHEMES:
            return cls(backend="postgres", url=url)
        if rest.startswith("//"):
            rest = rest[2:]
        if not rest:
            raise ValueError(f"store url {url!r} names no data directory, e.g. sqlite:///var/lib/streetwatch")
        return cls(backend=backend, data_dir=Path(rest))


def verify_url(settings: StoreSettings) -> None:
    """The postgres backend needs a PostgreSQL URL; it has no other way to find its database."""
    if settings.backend == "postgres" and settings.url.partition("://")[0] not in POSTGRES_SCHEMES:
        raise ValueError(
            f"store.backend postgres needs store.url = postgresql://USER@HOST:PORT/DATABASE, got {settings.url!r}"
        )
