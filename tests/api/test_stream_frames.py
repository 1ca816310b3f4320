"""StreamFrames and Detect over a real loopback gRPC server with the real model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest

from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.client import IngestClient, make_frame
from detector.types import DeliveryMode
from tests.api.serving import frames_of, serving
from tests.conftest import jpeg, run

NOW = time.time()


def test_stream_returns_one_result_per_frame_in_order_with_the_models_boxes(engine, street_photos, service_config):
    messages = [
        make_frame("cam-1", i + 1, NOW + i * 0.2, jpeg=jpeg(im), mode=DeliveryMode.LOSSLESS)
        for i, im in enumerate(street_photos)
    ]
    # What the model sees in the same (JPEG round-tripped) pixels, called directly.
    import cv2

    decoded = [cv2.imdecode(np.frombuffer(m.encoded, np.uint8), cv2.IMREAD_COLOR) for m in messages]
    expected = [engine.infer([im])[0][0] for im in decoded]

    async def go() -> list[pb.FrameResult]:
        async with serving(service_config(), engine) as (_, target), IngestClient(target) as client:
            return [r async for r in client.stream(frames_of(messages))]

    results = run(go())
    assert [r.seq for r in results] == [m.seq for m in messages]
    assert sum(len(r.detections) for r in results) > 0, "the model found nothing in eight street photos"
    for result, want, image in zip(results, expected, decoded, strict=True):
        assert not result.HasField("error")
        assert result.model.name == engine.name and result.model.version == engine.version
        assert (result.image_width, result.image_height) == (image.shape[1], image.shape[0])
        assert result.timings.batch_size >= 1 and result.timings.inference_ms > 0
        got = np.array([[d.box.x1, d.box.y1, d.box.x2, d.box.y2] for d in result.detections]).reshape(-1, 4)
        assert len(got) == len(want)
        np.testing.assert_allclose(got, want.xyxy, atol=0.5)
        np.testing.assert_allclose([d.confidence for d in result.detections], want.confidence, atol=1e-3)
        assert [d.label for d in result.detections] == [engine.class_names[c] for c in want.class_id]
        assert all(d.track_id >= -1 for d in result.detections)
    # ByteTrack confirms every confident track on a source's first frame, later ones on their second sighting. The
    # photos all differ, so only the first frame's confident detections are on confirmed tracks here.
    first = [d.track_id for d in results[0].detections if d.confidence >= 0.25]
    assert first and all(t > 0 for t in first), "confident detections of a source's first frame get a track id"


def test_detect_unary_and_raw_rgb_image_give_the_same_answer_as_jpeg_decoded_bgr(engine, street_photos, service_config):
    image = street_photos[0]
    rgb_raw = pb.Frame(
        source_id="cam-raw",
        seq=1,
        capture_time=make_frame("x", 1, NOW).capture_time,
        raw=pb.RawImage(
            width=image.shape[1],
            height=image.shape[0],
            pixel_format=pb.RGB8,
            data=np.ascontiguousarray(image[:, :, ::-1]).tobytes(),
        ),
    )
    want = engine.infer([image])[0][0]

    async def go() -> pb.FrameResult:
        async with serving(service_config(), engine) as (_, target), IngestClient(target) as client:
            return await client.detect(rgb_raw)

    result = run(go())
    assert not result.HasField("error")
    got = np.array([[d.box.x1, d.box.y1, d.box.x2, d.box.y2] for d in result.detections]).reshape(-1, 4)
    np.testing.assert_allclose(got, want.xyxy, atol=0.5)


def _bad_frames(good_jpeg: bytes) -> list[tuple[pb.Frame, str]]:
    def f(seq: int, **kw: object) -> pb.Frame:
        base = make_frame("cam-bad", seq, NOW + seq)
        for k, v in kw.items():
            if k in ("telemetry", "raw"):
                getattr(base, k).CopyFrom(v)
            else:
                setattr(base, k, v)
        return base

    huge_png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (100_000).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00"
    no_time = pb.Frame(source_id="cam-bad", seq=9, encoded=good_jpeg)
    return [
        (f(1, encoded=b"not an image at all"), "UNDECODABLE"),
        (f(2, encoded=good_jpeg[: len(good_jpeg) // 3]), "UNDECODABLE"),
        (f(3, encoded=huge_png), "IMAGE_TOO_LARGE"),
        (
            f(4, raw=pb.RawImage(width=10, height=10, pixel_format=pb.BGR8, data=b"\x00" * 299)),
            "INVALID_IMAGE",
        ),
        (f(5, raw=pb.RawImage(width=10, height=10, data=b"\x00" * 300)), "INVALID_IMAGE"),
        (f(6), "INVALID_IMAGE"),
        (f(7, encoded=good_jpeg, telemetry=pb.Telemetry(lat=float("nan"))), "INVALID_FRAME"),
        (f(8, encoded=good_jpeg, telemetry=pb.Telemetry(lat=91.0)), "INVALID_FRAME"),
        (no_time, "INVALID_FRAME"),
        (f(9, encoded=good_jpeg), "OUT_OF_ORDER"),  # seq 9 again after no_time took it
        (f(10, encoded=good_jpeg, source_id=""), "INVALID_FRAME"),
    ]


def test_bad_frames_get_per_frame_errors_are_counted_and_the_stream_stays_open(engine, street_photos, service_config):
    good = jpeg(street_photos[0])
    bad = _bad_frames(good)
    messages = [m for m, _ in bad] + [make_frame("cam-bad", 100, NOW + 100, jpeg=good)]

    async def go() -> tuple[list[pb.FrameResult], str]:
        async with serving(service_config(), engine) as (service, target), IngestClient(target) as client:
            results = [r async for r in client.stream(frames_of(messages))]
            from prometheus_client import generate_latest

            return results, generate_latest(service.metrics.registry).decode()

    results, metrics = run(go())
    assert len(results) == len(messages)
    for result, (_, code) in zip(results, bad, strict=False):
        assert result.HasField("error"), code
        assert pb.FrameErrorCode.Name(result.error.code) == code, result.error.message
        assert result.error.message
    assert not results[-1].HasField("error"), "a good frame after bad ones must still be served"
    assert 'streetwatch_frame_errors_total{code="UNDECODABLE"} 2.0' in metrics
    assert 'streetwatch_frame_errors_total{code="INVALID_FRAME"} 4.0' in metrics


def test_unknown_source_is_rejected_when_sources_are_configured(engine, street_photos, service_config):
    good = jpeg(street_photos[0])
    config = service_config(ingest__sources="[cam-a]")

    async def go() -> list[pb.FrameResult]:
        async with serving(config, engine) as (_, target), IngestClient(target) as client:
            frames = [make_frame("cam-x", 1, NOW, jpeg=good), make_frame("cam-a", 1, NOW, jpeg=good)]
            return [r async for r in client.stream(frames_of(frames))]

    stranger, known = run(go())
    assert pb.FrameErrorCode.Name(stranger.error.code) == "UNKNOWN_SOURCE"
    assert not known.HasField("error")


def test_oversized_message_gets_resource_exhausted_and_the_server_keeps_serving(engine, street_photos, service_config):
    config = service_config(server__max_message_bytes=200_000)
    big = make_frame("cam-big", 1, NOW, jpeg=b"\xff\xd8" + b"\x00" * 300_000)
    small = make_frame("cam-big", 2, NOW + 1, jpeg=jpeg(street_photos[0], 60))

    async def go() -> tuple[grpc.StatusCode, pb.FrameResult]:
        async with serving(config, engine) as (_, target), IngestClient(target, 1 << 24) as client:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await client.detect(big)
            return err.value.code(), await client.detect(small)

    code, after = run(go())
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert not after.HasField("error")


@pytest.mark.parametrize("mode", [DeliveryMode.LIVE, DeliveryMode.LOSSLESS])
def test_a_source_sending_faster_than_the_model_drops_oldest_in_live_and_is_held_back_in_lossless(
    engine, street_photos, service_config, mode
):
    config = service_config(batching__queue_size=2, batching__max_batch=2, batching__max_per_source=2)
    images = [jpeg(im) for im in street_photos] * 5
    messages = [make_frame("fast", i + 1, NOW + i / 30, jpeg=b, mode=mode) for i, b in enumerate(images)]

    async def go() -> list[pb.FrameResult]:
        async with serving(config, engine) as (_, target), IngestClient(target) as client:
            return [r async for r in client.stream(frames_of(messages))]

    results = run(go())
    assert [r.seq for r in results] == [m.seq for m in messages], "every frame gets exactly one result, in order"
    dropped = [r for r in results if r.HasField("error")]
    if mode is DeliveryMode.LOSSLESS:
        assert dropped == []
        assert results[-1].frames_dropped_total == 0
    else:
        assert dropped, "40 frames sent at once into a queue of 2 must drop some"
        assert {pb.FrameErrorCode.Name(r.error.code) for r in dropped} == {"DROPPED"}
        assert results[-1].frames_dropped_total == len(dropped)
        totals = [r.frames_dropped_total for r in results]
        assert totals == sorted(totals)
        assert not results[-1].HasField("error"), "the newest frame is never the one dropped"


def test_concurrent_streams_are_all_served_and_share_batches(engine, street_photos, service_config):
    config = service_config(batching__max_batch=8, batching__max_per_source=2, batching__max_wait_ms=50)
    good = [jpeg(im) for im in street_photos]

    async def one(client: IngestClient, source: str) -> list[pb.FrameResult]:
        frames = [make_frame(source, i + 1, NOW + i, jpeg=good[i % 8], mode=DeliveryMode.LOSSLESS) for i in range(6)]
        return [r async for r in client.stream(frames_of(frames))]

    async def go() -> list[list[pb.FrameResult]]:
        async with serving(config, engine) as (_, target), IngestClient(target) as client:
            return list(await asyncio.gather(*(one(client, f"cam-{k}") for k in range(4))))

    per_stream = run(go())
    for k, results in enumerate(per_stream):
        assert [r.source_id for r in results] == [f"cam-{k}"] * 6
        assert [r.seq for r in results] == list(range(1, 7))
        assert all(not r.HasField("error") for r in results)
    sizes = [r.timings.batch_size for rs in per_stream for r in rs]
    assert max(sizes) > 2, f"four concurrent streams never shared a batch: {sizes}"


def test_a_flooding_live_source_does_not_push_a_steady_sources_queue_time_beyond_a_few_batches(
    engine, street_photos, service_config
):
    config = service_config(
        batching__max_batch=4, batching__max_per_source=2, batching__queue_size=4, batching__max_wait_ms=5
    )
    good = [jpeg(im) for im in street_photos]

    async def flood(client: IngestClient) -> list[pb.FrameResult]:
        frames = [make_frame("flood", i + 1, NOW + i / 100, jpeg=good[i % 8]) for i in range(80)]
        return [r async for r in client.stream(frames_of(frames))]

    async def steady(client: IngestClient) -> list[pb.FrameResult]:
        async def paced() -> AsyncIterator[pb.Frame]:
            await asyncio.sleep(0.3)  # let the flood fill its queue first
            for i in range(10):
                yield make_frame("steady", i + 1, NOW + i, jpeg=good[i % 8])
                await asyncio.sleep(0.1)

        return [r async for r in client.stream(paced())]

    async def go() -> tuple[list[pb.FrameResult], list[pb.FrameResult]]:
        async with serving(config, engine) as (_, target), IngestClient(target) as client:
            a, b = await asyncio.gather(flood(client), steady(client))
            return a, b

    flooded, steady_results = run(go())
    assert any(r.HasField("error") for r in flooded), "the flood must actually overload the service"
    assert all(not r.HasField("error") for r in steady_results), "the steady source must lose nothing"
    batch_ms = float(np.median([r.timings.inference_ms for r in flooded + steady_results if r.timings.inference_ms]))
    queued = np.percentile([r.timings.queued_ms for r in steady_results], 95)
    assert queued <= 3 * batch_ms + 5, f"steady p95 queue {queued:.0f} ms vs batch period {batch_ms:.0f} ms"


def test_metrics_are_served_over_http(engine, street_photos, service_config):
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = service_config(server__metrics_port=port)
    frames = [make_frame("cam-m", i + 1, NOW + i, jpeg=jpeg(street_photos[i])) for i in range(3)]
    frames.append(make_frame("cam-m", 9, NOW + 9, jpeg=b"garbage"))

    async def go() -> str:
        async with serving(config, engine) as (_, target), IngestClient(target) as client:
            _ = [r async for r in client.stream(frames_of(frames))]
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read())
            return body.decode()

    text = run(go())
    assert 'streetwatch_frames_received_total{source="cam-m"} 4.0' in text
    assert 'streetwatch_frames_decoded_total{source="cam-m"} 3.0' in text
    assert 'streetwatch_frames_processed_total{source="cam-m"} 3.0' in text
    assert 'streetwatch_frame_errors_total{code="UNDECODABLE"} 1.0' in text
    assert "streetwatch_batch_size_count" in text and 'streetwatch_stage_ms_bucket{le="+Inf",stage="forward"}' in text
    assert "streetwatch_serving 1.0" in text
