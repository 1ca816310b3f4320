"""The runner's lag: ``lag_s`` is measured from the oldest event not yet delivered (also while the connector
cannot even start), and is 0 once the connector has caught up."""

from __future__ import annotations

from pathlib import Path

from detector.delivery.runner import DeliveryRunner
from detector.delivery.settings import DeliverySettings
from detector.store import SqliteStore
from tests.delivery.test_webhook_delivery import Receiver, run, settings, wait_until
from tests.store.factories import FakeClock, make_event

NOW = 10_000.0


def test_lag_s_is_the_age_of_the_oldest_undelivered_event_and_0_when_caught_up(tmp_path: Path) -> None:
    async def scenario() -> None:
        receiver = Receiver()
        await receiver.start()
        await receiver.stop()  # its port is closed: every try fails until it is back
        clock = FakeClock(NOW)
        with SqliteStore(tmp_path / "data") as store:
            store.append([make_event(incident_id=f"inc-{i}", last_seen_ts=NOW - 100 + i) for i in range(3)])
            runner = DeliveryRunner(store, settings(receiver.url, unhealthy_after_s=3600), clock=clock)
            await runner.start()
            try:
                await wait_until(lambda: runner.status()[0].last_error.startswith("connection"))
                status = runner.status()[0]
                assert (status.lag_events, status.lag_s) == (3, 100.0)  # the first event, being retried
                await receiver.start()
                await wait_until(lambda: runner.status()[0].offset == 3)
                status = runner.status()[0]
                assert (status.lag_events, status.lag_s) == (0, 0.0)
            finally:
                await runner.stop()
                await receiver.stop()

    run(scenario)


def test_lag_s_counts_while_the_connector_cannot_start(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock(NOW)
        mqtt = {"name": "bus", "kind": "mqtt", "host": "127.0.0.1", "port": 1, "timeout_s": 0.5}
        cfg = DeliverySettings.model_validate(
            {"connectors": [mqtt], "backoff": {"initial_s": 0.01, "max_s": 0.05}, "unhealthy_after_s": 3600}
        )
        with SqliteStore(tmp_path / "data") as store:
            store.append([make_event(incident_id=f"inc-{i}", last_seen_ts=NOW - 60 + i) for i in range(2)])
            runner = DeliveryRunner(store, cfg, clock=clock)
            await runner.start()
            try:
                await wait_until(lambda: runner.status()[0].lag_s > 0)
                status = runner.status()[0]
                assert status.last_error.startswith("mqtt: cannot connect")
                assert (status.lag_events, status.lag_s) == (2, 60.0)
            finally:
                await runner.stop()

    run(scenario)
