"""Backend registry and store configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from detector.store import SqliteStore, StoreSettings, open_store, register_store


@pytest.mark.parametrize(
    ("url", "backend", "data_dir", "db_url"),
    [
        ("sqlite:///var/lib/streetwatch", "sqlite", "/var/lib/streetwatch", ""),
        ("sqlite:data", "sqlite", "data", ""),
        ("/srv/detector", "sqlite", "/srv/detector", ""),
        ("postgresql://db/streetwatch", "postgres", "streetwatch-data", "postgresql://db/streetwatch"),
        ("postgres://sw@db:5433/sw", "postgres", "streetwatch-data", "postgres://sw@db:5433/sw"),
    ],
)
def test_config_from_url(url: str, backend: str, data_dir: str, db_url: str) -> None:
    config = StoreSettings.from_url(url)
    assert (config.backend, config.data_dir, config.url) == (backend, Path(data_dir), db_url)


def test_url_without_directory_is_refused() -> None:
    with pytest.raises(ValueError, match="names no data directory"):
        StoreSettings.from_url("sqlite://")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"data_dir": "x", "busy_timeout_s": 0}, "busy_timeout_s"),
        ({"data_dir": "x", "retention_days": 3}, "retention_days"),
        ({"data_dir": "x", "max_backlog_events": 0}, "max_backlog_events"),
        ({"backend": "postgres"}, "store.backend postgres needs store.url = postgresql://"),
        ({"backend": "postgres", "url": "mysql://db/x"}, "got 'mysql://db/x'"),
        ({"backend": "postgres", "url": "postgresql://db/x", "pool_max_size": 0}, "pool_max_size"),
    ],
)
def test_bad_config_names_the_field(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        StoreSettings.model_validate(fields)


def test_open_store_builds_the_registered_backend(tmp_path: Path) -> None:
    with open_store(f"sqlite://{tmp_path}") as store:
        assert isinstance(store, SqliteStore)
    with open_store(StoreSettings(data_dir=tmp_path)) as store:
        assert store.last_sequence() == 0


def test_unknown_backend_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"registered backends: .*sqlite"):
        open_store(f"cassandra://{tmp_path}")


def test_a_name_cannot_be_taken_twice() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_store("sqlite")(type("Other", (SqliteStore,), {}))
