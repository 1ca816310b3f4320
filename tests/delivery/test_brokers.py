"""The ``mqtt`` and ``nats`` connector kinds against the real local brokers: Mosquitto on 127.0.0.1:1883 and
nats-server with JetStream on 127.0.0.1:4222 (``.ci/run`` starts them). Each test skips, saying why, when its
broker does not answer."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from dataclasses import replace
from typing import Any

import aiomqtt
import nats
import pytest

from detector.delivery.base import RetryableError, build_connector
from detector.delivery.mqtt import MqttConnector, event_topic, state_topic, topic_level
from detector.delivery.nats import NatsConnector, event_subject, subject_token
from detector.delivery.payload import event_to_dict
from detector.types import EventType
from tests.conftest import run
from tests.store.factories import make_event

HOST = "127.0.0.1"
MQTT_PORT = 1883
NATS_PORT = 4222
CLOSED_PORT = 1  # nothing listens there: connection refused at once


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return True
    except OSError:
        return False


def _need(port: int, what: str) -> None:
    if not _answers(port):
        pytest.skip(f"{what} does not answer on {HOST}:{port} (.ci/run starts it; start it by hand to run this)")


def _mqtt(prefix: str, **extra: Any) -> MqttConnector:
    name = f"test-{uuid.uuid4().hex[:8]}"
    settings = {"name": name, "kind": "mqtt", "host": HOST, "port": MQTT_PORT, "topic_prefix": prefix, **extra}
    connector = build_connector(settings)
    assert isinstance(connector, MqttConnector)
    return connector


def _nats(prefix: str, stream: str, **extra: Any) -> NatsConnector:
    settings = {
        "name": f"test-{uuid.uuid4().hex[:8]}",
        "kind": "nats",
        "servers": [f"nats://{HOST}:{NATS_PORT}"],
        "subject_prefix": prefix,
        "stream": stream,
        **extra,
    }
    connector = build_connector(settings)
    assert isinstance(connector, NatsConnector)
    return connector


async def _collect(client: aiomqtt.Client, count: int, timeout: float = 5.0) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []

    async def read() -> None:
        async for message in client.messages:
            got.append(message)
            if len(got) >= count:
                return

    with contextlib.suppress(TimeoutError):  # fewer than count came
        await asyncio.wait_for(read(), timeout)
    return got


def _payload(message: aiomqtt.Message) -> Any:
    assert isinstance(message.payload, bytes | bytearray)
    return json.loads(message.payload) if message.payload else None


# --- escaping (no broker needed) --------------------------------------------------------------------------------


def test_topic_levels_and_subject_tokens_are_escaped() -> None:
    assert topic_level("a/b+c#d%e") == "a%2Fb%2Bc%23d%25e"
    assert subject_token("ROAD DAMAGE.x*>%") == "ROAD%20DAMAGE%2Ex%2A%3E%25"
    assert subject_token("") == "_"
    assert subject_token("tab\there") == "tab%09here"
    event = make_event(category="A/B", source_id="cam+1#")
    assert event_topic("city/sw", event) == "city/sw/events/A%2FB/cam%2B1%23"
    assert state_topic("sw", "inc/1") == "sw/incidents/inc%2F1/state"
    event = make_event(category="ROAD.DAMAGE", source_id="cam 1*")
    assert event_subject("sw", event) == "sw.events.ROAD%2EDAMAGE.cam%201%2A"


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        build_connector({"name": "m", "kind": "mqtt", "colour": "blue"})
    with pytest.raises(ValueError):
        build_connector({"name": "m", "kind": "mqtt", "topic_prefix": "a/#"})
    with pytest.raises(ValueError):
        build_connector({"name": "n", "kind": "nats", "subject_prefix": "a.>"})
    connector = build_connector({"name": "m", "kind": "mqtt", "filter": {"categories": ["ROAD_DAMAGE"]}})
    assert isinstance(connector, MqttConnector)
    assert connector.client_id == "streetwatch-m"


# --- MQTT ----------------------------------------------------------------------------------------------------------


def test_mqtt_publishes_events_qos1_and_a_retained_state() -> None:
    _need(MQTT_PORT, "Mosquitto")
    prefix = f"swtest-{uuid.uuid4().hex[:8]}"
    incident = f"inc-{uuid.uuid4().hex[:8]}"
    opened = make_event(incident_id=incident, category="ROAD_OCCUPYING_STALL", source_id="cam/1+", sequence=1)
    updated = replace(make_event(incident_id=incident, type=EventType.UPDATED, source_id="cam/1+"), sequence=2)

    async def scenario() -> None:
        connector = _mqtt(prefix)
        async with aiomqtt.Client(HOST, MQTT_PORT, identifier=f"sub-{prefix}", timeout=5) as sub:
            await sub.subscribe(f"{prefix}/events/#", qos=1)
            await connector.start()
            await connector.deliver(opened)
            await connector.deliver(updated)
            got = await _collect(sub, 2)
        assert [m.topic.value for m in got] == [f"{prefix}/events/ROAD_OCCUPYING_STALL/cam%2F1%2B"] * 2
        assert [m.qos for m in got] == [1, 1]
        assert [_payload(m) for m in got] == [event_to_dict(opened), event_to_dict(updated)]
        assert _payload(got[0])["source_id"] == "cam/1+"

        # A subscriber that comes later reads the incident's latest event from the retained state topic.
        async with aiomqtt.Client(HOST, MQTT_PORT, identifier=f"late-{prefix}", timeout=5) as late:
            await late.subscribe(f"{prefix}/incidents/+/state", qos=1)
            retained = await _collect(late, 1)
        assert len(retained) == 1
        assert retained[0].retain
        assert retained[0].topic.value == f"{prefix}/incidents/{incident}/state"
        assert _payload(retained[0]) == event_to_dict(updated)

        # CLEARED keeps the final state (the default).
        cleared = replace(make_event(incident_id=incident, type=EventType.CLEARED), sequence=3)
        await connector.deliver(cleared)
        async with aiomqtt.Client(HOST, MQTT_PORT, identifier=f"late2-{prefix}", timeout=5) as late:
            await late.subscribe(f"{prefix}/incidents/+/state", qos=1)
            retained = await _collect(late, 1)
        assert [_payload(m)["type"] for m in retained] == ["CLEARED"]
        await connector.close()

        # Leave no retained message behind on the shared broker.
        async with aiomqtt.Client(HOST, MQTT_PORT, timeout=5) as cleaner:
            await cleaner.publish(state_topic(prefix, incident), b"", qos=1, retain=True)

    run(scenario())


def test_mqtt_cleared_can_delete_the_state() -> None:
    _need(MQTT_PORT, "Mosquitto")
    prefix = f"swtest-{uuid.uuid4().hex[:8]}"
    incident = f"inc-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        connector = _mqtt(prefix, clear_state_on_cleared=True)
        await connector.deliver(make_event(incident_id=incident))
        await connector.deliver(make_event(incident_id=incident, type=EventType.CLEARED))
        await connector.close()
        async with aiomqtt.Client(HOST, MQTT_PORT, identifier=f"late-{prefix}", timeout=5) as late:
            await late.subscribe(f"{prefix}/incidents/+/state", qos=1)
            retained = await _collect(late, 1, timeout=1.0)
        assert retained == []

    run(scenario())


def test_mqtt_unreachable_broker_is_retryable_not_a_hang() -> None:
    async def scenario() -> None:
        connector = build_connector({"name": "down", "kind": "mqtt", "host": HOST, "port": CLOSED_PORT, "timeout_s": 2})
        started = time.monotonic()
        with pytest.raises(RetryableError, match="mqtt: cannot connect"):
            await connector.deliver(make_event())
        assert time.monotonic() - started < 5
        await connector.close()

    run(scenario())


# --- NATS JetStream ------------------------------------------------------------------------------------------------


def test_nats_publishes_to_jetstream_with_msg_id_and_drops_duplicates() -> None:
    _need(NATS_PORT, "nats-server (JetStream)")
    tag = uuid.uuid4().hex[:8]
    prefix, stream = f"swtest{tag}", f"SWTEST_{tag}"
    event = make_event(category="ROAD DAMAGE", source_id="cam.1*", sequence=5)
    other = make_event(category="ROAD DAMAGE", source_id="cam.1*", sequence=6)

    async def scenario() -> None:
        nc = await nats.connect(f"nats://{HOST}:{NATS_PORT}", connect_timeout=3, allow_reconnect=False)
        js = nc.jetstream()
        try:
            sub = await nc.subscribe(f"{prefix}.events.>")
            connector = _nats(prefix, stream, duplicate_window_s=120)
            await connector.start()
            info = await js.stream_info(stream)  # created when missing
            assert info.config.subjects == [f"{prefix}.events.>"]
            assert info.config.duplicate_window == 120

            await connector.deliver(event)
            await connector.deliver(event)  # a redelivery: the same event_id
            await connector.deliver(other)
            first = await sub.next_msg(timeout=5)
            assert first.subject == f"{prefix}.events.ROAD%20DAMAGE.cam%2E1%2A"
            assert first.headers is not None and first.headers["Nats-Msg-Id"] == event.event_id
            assert json.loads(first.data) == event_to_dict(event)

            info = await js.stream_info(stream)
            assert info.state.messages == 2  # the duplicate window dropped the second copy
            stored = await js.get_last_msg(stream, first.subject)
            assert stored.headers is not None and stored.headers["Nats-Msg-Id"] == other.event_id
            await connector.close()

            # An existing stream is used as it is.
            again = _nats(prefix, stream)
            await again.deliver(make_event(source_id="cam-2"))
            assert (await js.stream_info(stream)).state.messages == 3
            await again.close()
        finally:
            try:
                await js.delete_stream(stream)
            finally:
                await nc.close()

    run(scenario())


def test_nats_unreachable_server_is_retryable_not_a_hang() -> None:
    async def scenario() -> None:
        connector = build_connector(
            {"name": "down", "kind": "nats", "servers": [f"nats://{HOST}:{CLOSED_PORT}"], "timeout_s": 2}
        )
        started = time.monotonic()
        with pytest.raises(RetryableError, match="nats: cannot connect"):
            await connector.deliver(make_event())
        assert time.monotonic() - started < 6
        await connector.close()

    run(scenario())


def test_the_readme_example_is_valid() -> None:
    from pathlib import Path

    import yaml

    from detector.delivery.settings import DeliverySettings

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Delivery connectors", 1)[1].split("\n### ", 1)[0]
    kinds = []
    for block in [part.split("```", 1)[0] for part in section.split("```yaml\n")[1:]]:
        settings = DeliverySettings.model_validate(yaml.safe_load(block)["delivery"])
        kinds += [build_connector(entry).kind for entry in settings.connectors]
    assert sorted(kinds) == ["mqtt", "nats", "open311", "webhook"], "one example per kind"
