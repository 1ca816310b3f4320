from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from detector.store import IncidentStore
from tests.store.factories import STORE_FACTORIES, FakeClock, drop_postgres_schemas


@pytest.fixture(autouse=True)
def _drop_postgres_schemas() -> Iterator[None]:
    """After each test (and after its store closed), the PostgreSQL schemas it made go."""
    yield
    drop_postgres_schemas()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(STORE_FACTORIES))
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(backend: str, tmp_path: Path, clock: FakeClock) -> Iterator[IncidentStore]:
    with STORE_FACTORIES[backend](tmp_path / "data", clock) as opened:
        yield opened
