"""`detector serve` runs the delivery section: events appended to its log reach a webhook, each connector has
its own health name, and the service stops with the runner."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from detector.config import load_config
from detector.delivery.settings import DeliverySettings
from detector.inference.engine import build_engine
from tests.api.scripted import scripted_overrides, write_spec
from tests.api.serving import serving
from tests.delivery.test_webhook_delivery import SECRET, Receiver, wait_until
from tests.store.factories import make_event


def test_the_service_delivers_its_events_and_reports_each_connector(tmp_path: Path) -> None:
    spec = write_spec(tmp_path / "blobs.yaml")
    config = load_config(None, overrides=[*scripted_overrides(spec, tmp_path / "data"), "server.port=0"])
    engine = build_engine("colour-blobs", config.model)

    async def go() -> None:
        receiver = Receiver()
        await receiver.start()
        hook = {"name": "city", "kind": "webhook", "url": receiver.url, "secret": SECRET}
        delivery = DeliverySettings.model_validate({"connectors": [hook], "backoff": {"initial_s": 0.01}})
        try:
            async with serving(config.model_copy(update={"delivery": delivery}), engine) as (service, target):
                appended = await asyncio.to_thread(service.store.append, [make_event(incident_id="inc-1")])
                await wait_until(lambda: receiver.keys == [appended[0].event_id])
                async with grpc.aio.insecure_channel(target) as channel:
                    stub = health_pb2_grpc.HealthStub(channel)
                    answer = await stub.Check(health_pb2.HealthCheckRequest(service="streetwatch.delivery.city"))
                    assert answer.status == health_pb2.HealthCheckResponse.SERVING
                assert service.delivery is not None
            assert service.delivery.status()[0].offset == 1
        finally:
            await receiver.stop()

    asyncio.run(asyncio.wait_for(go(), 60))
