"""How the service is put together: each stage runs with exactly the settings ``detector serve --print-config``
prints, and server reflection lists every registered service under both protocol versions."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2 as rpb
from grpc_reflection.v1alpha import reflection_pb2_grpc

from detector.cli import main
from detector.config import load_config
from detector.inference.engine import Engine, build_engine
from tests.api.scripted import scripted_overrides, write_spec
from tests.api.serving import serving

EXPECTED_SERVICES = {
    "streetwatch.v1.Ingest",
    "streetwatch.v1.Incidents",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
}


def test_every_stage_runs_with_the_settings_print_config_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = write_spec(tmp_path / "blobs.yaml")
    overrides = [
        *scripted_overrides(spec, tmp_path / "data"),
        "server.port=0",
        "model.imgsz=288",
        "model.conf=0.3",
        "batching.max_batch=5",
        "batching.queue_size=5",
        "tiling.default=off",
        "ingest.max_fps_per_source=40",
        "ingest.max_side_px=4000",
        "store.max_backlog_events=77",
        "tracking.match_thresh=0.7",
    ]
    monkeypatch.setenv("STREETWATCH__BATCHING__MAX_WAIT_MS", "3")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["serve", "--print-config", *(arg for o in overrides for arg in ("--set", o))]) == 0
    printed = json.loads(out.getvalue())
    config = load_config(None, overrides=overrides)  # the same layers: defaults, environment, --set
    engine = build_engine("colour-blobs", config.model)

    async def go() -> None:
        async with serving(config, engine) as (service, _):
            p = service.pipeline
            running = {
                "model": p.core.engine.settings,
                "batching": p.core.settings,
                "tiling": p.core.tiling.settings,
                "ingest": p.admission.settings,
                "tracking": p.tracker.config,
                "rules": p.rules.config,
            }
            for section, settings in running.items():
                assert settings.model_dump(mode="json") == printed[section], f"{section} runs as printed"
            assert p.geo.config is p.rules.config
            assert p.core.tiling.imgsz == printed["model"]["imgsz"] == 288
            assert p.decoder.limits.max_side_px == printed["ingest"]["max_side_px"] == 4000
            assert p.writer.max_backlog == printed["store"]["max_backlog_events"] == 77
            assert p.core.queues.queue_size == printed["batching"]["queue_size"] == 5
            assert printed["batching"]["max_wait_ms"] == 3.0, "the environment layer is printed too"
            assert service.config.store.model_dump(mode="json") == printed["store"]

    asyncio.run(go())


def test_print_config_has_one_default_per_setting() -> None:
    """The model runs at the size it was trained at by default, wherever the default is read: the default is
    None ("the checkpoint's"), resolved from the checkpoint once, and 416 for the committed model."""
    from detector.inference.engine import ModelSettings, resolve_imgsz

    assert load_config(None, environ={}).model.imgsz is None and ModelSettings().imgsz is None
    assert resolve_imgsz(load_config(None, environ={}).model) == 416


async def _list_services(channel: grpc.aio.Channel, version: str) -> tuple[set[str], rpb.ServerReflectionResponse]:
    method = f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo"
    call = channel.stream_stream(
        method,
        request_serializer=rpb.ServerReflectionRequest.SerializeToString,
        response_deserializer=rpb.ServerReflectionResponse.FromString,
    )
    requests = [
        rpb.ServerReflectionRequest(list_services=""),
        rpb.ServerReflectionRequest(file_containing_symbol="streetwatch.v1.Incidents"),
    ]
    responses = [r async for r in call(iter(requests))]
    assert len(responses) == 2
    names = {s.name for s in responses[0].list_services_response.service}
    return names, responses[1]


@pytest.mark.parametrize("version", ["v1alpha", "v1"])
def test_reflection_lists_every_registered_service_under_both_versions(tmp_path: Path, version: str) -> None:
    spec = write_spec(tmp_path / "blobs.yaml")
    config = load_config(None, environ={}, overrides=[*scripted_overrides(spec, tmp_path / "data"), "server.port=0"])
    engine: Engine = build_engine("colour-blobs", config.model)

    async def go() -> None:
        async with serving(config, engine) as (service, target), grpc.aio.insecure_channel(target) as channel:
            names, described = await _list_services(channel, version)
            assert names == EXPECTED_SERVICES == set(service.grpc.services)
            files = described.file_descriptor_response.file_descriptor_proto
            assert files, described.error_response.error_message
            # The v1alpha stub the library ships still talks to the same servicer.
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            async for answer in stub.ServerReflectionInfo(iter([rpb.ServerReflectionRequest(list_services="")])):
                assert {s.name for s in answer.list_services_response.service} == EXPECTED_SERVICES

    asyncio.run(go())
