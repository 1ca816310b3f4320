from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.store.factories import drop_postgres_schemas


@pytest.fixture(autouse=True)
def _drop_postgres_schemas() -> Iterator[None]:
    """After each test (and after its services stopped), the PostgreSQL schemas it made go."""
    yield
    drop_postgres_schemas()
