"""Every limit of the gRPC edge answers RESOURCE_EXHAUSTED (a call) or a per-frame error, with a message that names
the setting, and the service keeps serving: message size, pixels, frame rate per source, open streams and
subscriptions per client. Real gRPC on loopback; the colour-blob engine stands in for the model."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.client import IngestClient, make_frame, open_channel
from detector.api.limits import client_key
from detector.config import ServiceConfig, load_config
from detector.ingest.admission import SourceRateLimit
from detector.types import DeliveryMode
from tests.api.scripted import GREEN, T0, scene, scripted_overrides, write_spec
from tests.api.serving import serving
from tests.conftest import run


def _config(tmp_path: Path, *extra: str) -> ServiceConfig:
    spec = write_spec(tmp_path / "blobs.yaml")
    return load_config(
        None, environ={}, overrides=["server.port=0", *scripted_overrides(spec, tmp_path / "data"), *extra]
    )


def _frame(source_id: str, seq: int, image: np.ndarray | None = None) -> pb.Frame:
    image = scene([(GREEN, (10, 10, 40, 40))]) if image is None else image
    return make_frame(source_id, seq, T0 + seq, image=image, mode=DeliveryMode.LOSSLESS)


async def _frames(*frames: pb.Frame) -> AsyncIterator[pb.Frame]:
    for frame in frames:
        yield frame


def test_a_message_over_max_message_bytes_ends_the_call_with_resource_exhausted(tmp_path):
    config = _config(tmp_path, "server.max_message_bytes=65536")
    big = np.zeros((200, 200, 3), np.uint8)  # 120 kB raw: over the 64 kB limit

    async def go() -> None:
        async with serving(config, None) as (_, target), IngestClient(target, max_message_bytes=1 << 24) as client:
            try:
                answers = [r async for r in client.stream(_frames(_frame("cam-1", 1, big)))]
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
                assert "65536" in (exc.details() or ""), exc.details()
            else:
                raise AssertionError(f"an oversized frame was answered: {answers}")
            small_image = np.zeros((60, 60, 3), np.uint8)
            small_image[10:40, 10:40] = GREEN
            small = [r async for r in client.stream(_frames(_frame("cam-1", 2, small_image)))]
            assert not small[0].HasField("error"), "the service keeps serving after refusing the big message"

    run(go())


def test_an_image_over_max_pixels_gets_a_per_frame_error_and_the_stream_goes_on(tmp_path):
    config = _config(tmp_path, "ingest.max_pixels=10000")

    async def go() -> list[pb.FrameResult]:
        async with serving(config, None) as (_, target), IngestClient(target) as client:
            big = _frame("cam-1", 1)  # 320 x 240
            tiny = _frame("cam-1", 2, np.zeros((50, 50, 3), np.uint8))
            return [r async for r in client.stream(_frames(big, tiny))]

    big, tiny = run(go())
    assert big.error.code == pb.IMAGE_TOO_LARGE and "10000" in big.error.message
    assert not tiny.HasField("error")


def test_frames_over_the_rate_of_their_source_are_answered_rate_limited(tmp_path):
    # One frame per 100 s: the first frame of each source is within its burst, every later one is over the rate.
    config = _config(tmp_path, "ingest.max_fps_per_source=0.01")

    async def go() -> list[pb.FrameResult]:
        async with serving(config, None) as (service, target), IngestClient(target) as client:
            frames = [_frame("cam-1", i) for i in range(1, 6)] + [_frame("cam-2", 1)]
            answers = [r async for r in client.stream(_frames(*frames))]
            counted = service.metrics.frame_errors.labels("RATE_LIMITED")._value.get()
            assert counted == 4
            return answers

    answers = run(go())
    assert [(a.source_id, a.seq) for a in answers] == [("cam-1", i) for i in range(1, 6)] + [("cam-2", 1)]
    assert not answers[0].HasField("error") and [d.label for d in answers[0].detections] == ["garbage"]
    for limited in answers[1:5]:
        assert limited.error.code == pb.RATE_LIMITED
        assert "ingest.max_fps_per_source" in limited.error.message and "'cam-1'" in limited.error.message
    assert not answers[5].HasField("error"), "another source has a rate of its own"


def test_more_open_streams_than_a_client_may_hold_get_resource_exhausted(tmp_path):
    config = _config(tmp_path, "server.max_streams_per_client=1")

    async def go() -> None:
        async with serving(config, None) as (_, target), IngestClient(target) as first, IngestClient(target) as second:
            held = asyncio.Queue[pb.Frame | None]()

            async def open_stream() -> AsyncIterator[pb.Frame]:
                while (frame := await held.get()) is not None:
                    yield frame

            stream = first.stream(open_stream())
            await held.put(_frame("cam-1", 1))
            assert not (await stream.__anext__()).HasField("error")  # the first stream is open and served
            try:
                answers = [r async for r in second.stream(_frames(_frame("cam-2", 1)))]
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "server.max_streams_per_client" in (exc.details() or "")
            else:
                raise AssertionError(f"a second stream was served: {answers}")
            await held.put(None)
            assert [r async for r in stream] == []
            # The slot is free again once the first stream has ended.
            again = [r async for r in second.stream(_frames(_frame("cam-2", 2)))]
            assert not again[0].HasField("error")

    run(go())


def test_more_subscriptions_than_a_client_may_hold_get_resource_exhausted(tmp_path):
    config = _config(tmp_path, "server.max_subscribers_per_client=1")

    async def go() -> None:
        async with serving(config, None) as (_, target), open_channel(target) as channel:
            async with IngestClient(target) as client:  # garbage seen 4 times in 4 s: one incident opens
                answers = [r async for r in client.stream(_frames(*(_frame("cam-1", i) for i in range(1, 5))))]
                assert all(not a.HasField("error") for a in answers)
            stub = incidents_pb2_grpc.IncidentsStub(channel)
            first = stub.Subscribe(ipb.SubscribeRequest(consumer="dispatch", after_sequence=0))
            assert (await first.read()).type == ipb.OPENED  # the first subscription is open and served
            second = stub.Subscribe(ipb.SubscribeRequest(consumer="audit", after_sequence=0))
            try:
                async for _ in second:
                    pass
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "server.max_subscribers_per_client" in (exc.details() or "")
            else:
                raise AssertionError("a second subscription was served")
            first.cancel()

    run(go())


@pytest.mark.parametrize(
    ("peer", "client"),
    [
        ("ipv4:10.0.0.7:51234", "ipv4:10.0.0.7"),
        ("ipv6:[::1]:40000", "ipv6:[::1]"),
        ("unix:/run/streetwatch.sock", "unix:/run/streetwatch.sock"),
    ],
)
def test_without_auth_a_client_is_its_address_without_the_port(peer, client):
    assert client_key(peer) == client


def test_the_rate_limit_refills_with_wall_time_and_bursts_one_second_of_frames():
    now = [0.0]
    limit = SourceRateLimit(2.0, clock=lambda: now[0])
    assert [limit.admit("cam-1") is None for _ in range(3)] == [True, True, False]
    now[0] = 0.5  # half a second: one more frame at 2 fps
    assert [limit.admit("cam-1") is None for _ in range(2)] == [True, False]
    assert limit.admit("cam-2") is None, "each source has a bucket of its own"
