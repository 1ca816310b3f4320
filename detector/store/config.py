"""Store settings (pydantic), embedded by the service config."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class StoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str = Field(default="sqlite", description="Store backend, as registered with register_store.")
    data_dir: Path = Field(description="Directory holding the database and the evidence files.")
    busy_timeout_s: float = Field(
        default=10.0, gt=0, description="How long a write waits for another writer's lock before failing."
    )
    evidence_spot_checks: int = Field(
        default=16, ge=0, description="Evidence files re-hashed by each integrity check (picked at random)."
    )

    @classmethod
    def from_url(cls, url: str) -> StoreConfig:
        """``sqlite:///var/lib/streetwatch`` (absolute), ``sqlite:data`` (relative) or a bare directory."""
        backend, sep, rest = url.partition(":")
        if not sep or not backend.isidentifier():
            return cls(data_dir=Path(url))
        if rest.startswith("//"):
            rest = rest[2:]
        if not rest:
            raise ValueError(f"store url {url!r} names no data directory, e.g. sqlite:///var/lib/streetwatch")
        return cls(backend=backend, data_dir=Path(rest))
