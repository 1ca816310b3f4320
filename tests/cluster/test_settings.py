"""The `cluster` section: off by default; on, it needs the PostgreSQL store, and renewals shorter than the lease;
each mistake is one readable line."""

from __future__ import annotations

import pytest

from detector.config import ConfigError, load_config

PG = ["store.backend=postgres", "store.url=postgresql://db.example/streetwatch"]


def test_the_cluster_is_off_by_default_and_renews_at_a_third_of_the_lease() -> None:
    config = load_config(None, environ={})
    assert not config.cluster.enabled and config.server.advertise_address is None
    on = load_config(None, environ={}, overrides=[*PG, "cluster.enabled=true", "cluster.lease_s=6"])
    assert on.cluster.renew_interval_s == 2.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["cluster.enabled=true"], "cluster.enabled needs store.backend: postgres (got 'sqlite')"),
        ([*PG, "cluster.enabled=true", "cluster.lease_s=2", "cluster.renew_every_s=3"], "must be shorter than"),
        ([*PG, "cluster.lease_s=0"], "cluster.lease_s"),
        ([*PG, "cluster.lease=5"], "did you mean 'lease_s'"),
    ],
)
def test_a_bad_cluster_setting_is_refused_with_a_readable_message(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config(None, environ={}, overrides=overrides)
    assert message in str(refused.value)
