"""A recorded flight (video + DJI .SRT) through Ingest.SubmitVideo and `detector replay --srt`: the same results
as a live uplink streaming the same frames with the same telemetry; bad uploads get a clear status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from detector import cli
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.client import IngestClient, make_frame, timestamp, video_chunks
from detector.config import ServiceConfig
from detector.geo.flight import FlightTelemetry, flight_frames
from detector.geo.srt import SrtCue, format_srt
from detector.server import start_service
from detector.store.model import EventFilter
from detector.types import DeliveryMode, IncidentEvent
from tests.api.serving import frames_of
from tests.api.test_geo_e2e import STALL_ENU, geo_config, patch_at
from tests.conftest import LoopThread
from tests.geo.synthetic import distance_m, drone_pixel, drone_telemetry, write_video

T_START = 1.76e9
FPS = 10
EMPTY_STREET = np.full((240, 320, 3), 90, np.uint8)


def flight(tmp_path: Path, seconds: int = 7) -> tuple[Path, bytes]:
    """The drone flies north at 5 m/s over the stall; the SRT has one cue per second (as on a Matrice), the
    video 10 frames per second, and the stall is drawn where the interpolated pose puts it."""
    cues = []
    for s in range(seconds + 1):
        t = drone_telemetry(0.3, -22.0 + 5.0 * s)
        cues.append(
            SrtCue(
                s + 1,
                float(s),
                s + 1.0,
                lat=t.lat,
                lon=t.lon,
                rel_alt_m=40.0,
                gimbal_pitch_deg=-60.0,
                gimbal_yaw_deg=0.0,
            )
        )
    srt = format_srt(cues).encode()
    track = FlightTelemetry.from_srt(srt).track
    assert track is not None
    images = []
    for i in range(seconds * FPS):
        pose = track.at(i / FPS)
        pixel = None if pose is None else drone_pixel(pose, *STALL_ENU)
        # 16 px patches: big enough to keep their colour through the JPEG that `detector replay` sends.
        images.append(patch_at(pixel, 16) if pixel is not None and pixel[1] > 16 else EMPTY_STREET)
    return write_video(tmp_path / "DJI_0001.MP4", images, FPS), srt


def header(**fields: Any) -> pb.VideoHeader:
    return pb.VideoHeader(**{"source_id": "drone-1", "start_time": timestamp(T_START), **fields})


async def _submit(target: str, chunks: AsyncIterator[pb.VideoChunk]) -> list[pb.SubmitVideoResponse]:
    async with IngestClient(target) as client:
        return [r async for r in client.submit_video(chunks)]


def run_service(loop_thread: LoopThread, config: ServiceConfig, work: Any) -> tuple[Any, list[IncidentEvent]]:
    """Start a service, run ``work(target)`` (a coroutine function) on it, and return its result and events."""
    service = loop_thread.run(start_service(config))
    try:
        result = loop_thread.run(work(f"127.0.0.1:{service.port}"))
        events = service.store.read_events(0, 1000, EventFilter())
    finally:
        loop_thread.run(service.stop(1))
    return result, events


def comparable(event: IncidentEvent) -> tuple[Any, ...]:
    """What a case system sees of an event, less the random ids."""
    return (
        event.type,
        event.category,
        event.rule,
        event.first_seen_ts,
        event.last_seen_ts,
        event.box_xyxy,
        event.confidence,
        event.location,
        event.source_pose,
        event.location_note,
        tuple(e.sha256 for e in event.evidence),
    )


def detections(result: pb.FrameResult) -> list[tuple[Any, ...]]:
    return [(d.label, d.confidence, d.box.x1, d.box.y1, d.box.x2, d.box.y2, d.track_id) for d in result.detections]


def test_submit_video_equals_the_live_stream_of_the_same_frames_and_telemetry(tmp_path: Path, loop_thread) -> None:
    video, srt = flight(tmp_path)

    async def upload(target: str) -> list[pb.SubmitVideoResponse]:
        return await _submit(target, video_chunks(header(), video, srt, chunk_bytes=4096))

    responses, uploaded = run_service(loop_thread, geo_config(tmp_path / "a"), upload)

    # A live uplink: the same decoded frames, each with the telemetry of its video time, over StreamFrames.
    track = FlightTelemetry.from_srt(srt).track
    live_frames = [
        make_frame(
            "drone-1", i + 1, T_START + f.video_s, image=f.image, telemetry=f.telemetry, mode=DeliveryMode.LOSSLESS
        )
        for i, f in enumerate(flight_frames(video, track))
    ]

    async def stream(target: str) -> list[pb.FrameResult]:
        async with IngestClient(target) as client:
            return [r async for r in client.stream(frames_of(live_frames))]

    streamed, live = run_service(loop_thread, geo_config(tmp_path / "b"), stream)

    report = responses[0].telemetry
    assert (report.cues, report.gps_order, list(report.warnings)) == (8, "", [])
    assert (report.first_s, report.last_s) == (0.0, 8.0)
    frames = [r.frame for r in responses[1:]]
    assert [f.seq for f in frames] == list(range(1, 71)) and not any(f.HasField("error") for f in frames)
    assert [detections(f) for f in frames] == [detections(r) for r in streamed]
    assert sum(len(f.detections) for f in frames) >= 25

    assert uploaded and [comparable(e) for e in uploaded] == [comparable(e) for e in live]
    opened = uploaded[0]
    assert opened.location is not None and opened.location.method == "DRONE_PROJECTION"
    assert distance_m(opened.location.lat, opened.location.lon, *STALL_ENU) < 1.5
    assert opened.source_pose is not None and opened.source_pose.gimbal_pitch_deg == -60.0


def test_detector_replay_with_srt_streams_telemetry_and_upload_submits_the_flight(
    tmp_path: Path, loop_thread, capsys
) -> None:
    video, srt = flight(tmp_path)
    srt_path = tmp_path / "DJI_0001.SRT"
    srt_path.write_bytes(srt)

    async def replay_both(target: str) -> list[dict[str, Any]]:
        summaries = []
        for extra in ([], ["--upload"]):
            argv = [
                "replay",
                str(video),
                "--target",
                target,
                "--source-id",
                "drone-1",
                "--srt",
                str(srt_path),
                "--json",
            ]
            code = await asyncio.to_thread(cli.main, [*argv, *extra])
            assert code == 0
            summaries.append(json.loads(capsys.readouterr().out))
        return summaries

    (streamed, uploaded), events = run_service(loop_thread, geo_config(tmp_path / "c"), replay_both)
    assert streamed["frames_ok"] == uploaded["frames_ok"] == 70
    assert streamed["telemetry_cues"] == 8 and streamed["frames_with_telemetry"] == 70
    # The stream is JPEG (as a gateway sends it), the upload the decoded video: equal up to JPEG edge effects.
    assert streamed["detections"] >= 25 and uploaded["detections"] >= 25
    located = [e for e in events if e.location is not None]
    assert located and all(e.location and e.location.method == "DRONE_PROJECTION" for e in located)
    assert all(distance_m(e.location.lat, e.location.lon, *STALL_ENU) < 2.0 for e in located if e.location)


def test_replay_refuses_an_unusable_srt(tmp_path: Path, capsys) -> None:
    video, _ = flight(tmp_path, seconds=1)
    bad = tmp_path / "bad.SRT"
    bad.write_text("1\n00:00:00,000 --> 00:00:01,000\nno telemetry here\n")
    assert cli.main(["replay", str(video), "--target", "127.0.0.1:1", "--srt", str(bad)]) == 2
    assert "none carries telemetry" in capsys.readouterr().err


def chunks_of(*messages: pb.VideoChunk) -> AsyncIterator[pb.VideoChunk]:
    async def gen() -> AsyncIterator[pb.VideoChunk]:
        for m in messages:
            yield m

    return gen()


@pytest.mark.parametrize(
    ("messages", "code", "message"),
    [
        ([pb.VideoChunk(video=b"x")], grpc.StatusCode.INVALID_ARGUMENT, "the first message must carry the header"),
        ([], grpc.StatusCode.INVALID_ARGUMENT, "the upload is empty"),
        (
            [pb.VideoChunk(header=pb.VideoHeader(source_id="drone-1"))],
            grpc.StatusCode.INVALID_ARGUMENT,
            "header.start_time is required",
        ),
        (
            [pb.VideoChunk(header=header(fps=float("nan")))],
            grpc.StatusCode.INVALID_ARGUMENT,
            "header.fps must be a finite number",
        ),
        (
            [pb.VideoChunk(header=header(source_id=""))],
            grpc.StatusCode.INVALID_ARGUMENT,
            "header: source_id is required",
        ),
        ([pb.VideoChunk(header=header())], grpc.StatusCode.INVALID_ARGUMENT, "the upload carries no video bytes"),
        (
            [pb.VideoChunk(header=header()), pb.VideoChunk(header=header())],
            grpc.StatusCode.INVALID_ARGUMENT,
            "only the first message may carry a header",
        ),
        (
            [pb.VideoChunk(header=header()), pb.VideoChunk(video=b"\x00" * 3000)],
            grpc.StatusCode.INVALID_ARGUMENT,
            "video: cannot open video",
        ),
        (
            [pb.VideoChunk(header=header()), pb.VideoChunk(video=b"\x00" * 70_000)],
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "video is larger than ingest.max_video_bytes (65536 bytes)",
        ),
        (
            [pb.VideoChunk(header=header()), pb.VideoChunk(srt=b"junk"), pb.VideoChunk(video=b"\x00" * 10)],
            grpc.StatusCode.INVALID_ARGUMENT,
            ".SRT: no subtitle cues found",
        ),
    ],
)
def test_bad_uploads_get_a_clear_status_and_the_service_keeps_serving(
    tmp_path: Path, loop_thread, messages: list[pb.VideoChunk], code: grpc.StatusCode, message: str
) -> None:
    config = geo_config(tmp_path)
    config = config.model_copy(update={"ingest": config.ingest.model_copy(update={"max_video_bytes": 65536})})
    video, srt = flight(tmp_path, seconds=1)

    async def work(target: str) -> tuple[grpc.aio.AioRpcError, list[pb.SubmitVideoResponse]]:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _submit(target, chunks_of(*messages))
        after = await _submit(target, video_chunks(header(), video, srt))
        return info.value, after

    (error, after), _ = run_service(loop_thread, config, work)
    assert error.code() == code
    assert message in (error.details() or "")
    assert len(after) == 1 + FPS and not any(r.frame.HasField("error") for r in after[1:])
