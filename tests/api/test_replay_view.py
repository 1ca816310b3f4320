"""`detector replay` shows what the model saw: ``--jsonl`` lines are the service's answers, ``--annotate`` writes
them drawn on the frames (with the zones of ``--service-config``), URLs are kept as typed, the summary carries the
first and last capture time, and Ctrl-C ends a replay with a partial summary.

The service is the real one on a loopback port with the colour-blob engine (a red patch is a "stall"); the clip is
a real H.264 MP4 written and read back with PyAV.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from detector import cli
from detector.annotate import ZONE_BGR
from detector.api._gen.streetwatch.v1 import ingest_pb2 as pb
from detector.api.ingest_service import IngestService
from detector.api.replay import default_source_id, shown, video_target
from detector.config import ServiceConfig, load_config
from detector.server import Service, start_service
from tests.api.scripted import scripted_overrides, write_spec
from tests.conftest import LoopThread

W, H, FPS = 320, 240, 10
PATCH = 48
RED = (0, 0, 255)


def patch_box(i: int) -> tuple[int, int, int, int] | None:
    """Where frame ``i`` has its red patch (x1, y1, x2, y2), moving right; none in the first two frames."""
    if i < 2:
        return None
    x = 20 + (i * 6) % (W - PATCH - 40)
    return x, 150, x + PATCH, 150 + PATCH


def source_image(i: int) -> np.ndarray:
    image = np.full((H, W, 3), 90, np.uint8)
    box = patch_box(i)
    if box is not None:
        x1, y1, x2, y2 = box
        image[y1:y2, x1:x2] = RED
    return image


def write_clip(path: Path, frames: int) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(FPS), "crf": "18"}
        for i in range(frames):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(source_image(i), format="bgr24")))
        out.mux(stream.encode(None))
    return path


def decode(path: Path) -> tuple[list[np.ndarray], list[float], float]:
    """Frames (BGR), their times in seconds, and the stream's average rate."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 0)
        frames = [(f.to_ndarray(format="bgr24"), float(f.time or 0.0)) for f in container.decode(stream)]
    return [f for f, _ in frames], [t for _, t in frames], rate


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("replay-clip") / "street.mp4", 30)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s: longer than any test lets a realtime replay run."""
    return write_clip(tmp_path_factory.mktemp("replay-long") / "long-street.mp4", 60 * FPS)


def blob_config(tmp_path: Path) -> ServiceConfig:
    spec = write_spec(tmp_path / "blobs.yaml")
    return load_config(None, environ={}, overrides=["server.port=0", *scripted_overrides(spec, tmp_path / "data")])


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[pb.FrameResult]:
    """Every FrameResult the in-process service sends from now on, in order."""
    sent: list[pb.FrameResult] = []
    original = IngestService.StreamFrames

    async def spy(self: IngestService, request_iterator: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
        async for result in original(self, request_iterator, context):
            copy = pb.FrameResult()
            copy.CopyFrom(result)
            sent.append(copy)
            yield result

    monkeypatch.setattr(IngestService, "StreamFrames", spy)
    return sent


@pytest.fixture
def service(tmp_path: Path, loop_thread: LoopThread, answers: list[pb.FrameResult]) -> Iterator[tuple[Service, str]]:
    """The service, started after ``answers`` taps it (its handlers are bound at start)."""
    svc = loop_thread.run(start_service(blob_config(tmp_path)))
    try:
        yield svc, f"127.0.0.1:{svc.port}"
    finally:
        loop_thread.run(svc.stop(1))


def boxes(result: pb.FrameResult) -> list[tuple[Any, ...]]:
    return [
        (d.label, round(d.confidence, 4), *(round(v, 2) for v in (d.box.x1, d.box.y1, d.box.x2, d.box.y2)), d.track_id)
        for d in result.detections
    ]


def line_boxes(line: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(d["label"], d["confidence"], *d["box"], d["track_id"]) for d in line["detections"]]


def test_jsonl_and_annotate_show_what_the_service_answered(
    tmp_path: Path,
    clip: Path,
    service: tuple[Service, str],
    answers: list[pb.FrameResult],
    loop_thread: LoopThread,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, target = service
    # The service's zone as its operator drew it on a 640x480 still: the lower half, i.e. y >= 120 in this stream.
    service_yaml = tmp_path / "service.yaml"
    service_yaml.write_text(
        "rules:\n  sources:\n    cam-1:\n      zones_frame_size_px: [640, 480]\n"
        "      zones: [{id: no-vending, polygon_px: [[0, 240], [640, 240], [640, 480], [0, 480]], "
        "prohibited_classes: [stall]}]\n"
    )
    jsonl, annotated = tmp_path / "boxes.jsonl", tmp_path / "seen.mp4"
    argv = ["replay", str(clip), "--target", target, "--source-id", "cam-1", "--json"]
    argv += ["--jsonl", str(jsonl), "--annotate", str(annotated), "--service-config", str(service_yaml)]

    async def run_cli() -> int:
        return await asyncio.to_thread(cli.main, argv)

    assert loop_thread.run(run_cli()) == 0
    summary = json.loads(capsys.readouterr().out)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]

    # One line per answered frame, equal to what the service sent, with the capture times of the frames sent.
    assert summary["frames_sent"] == summary["results"] == summary["frames_ok"] == len(lines) == 30
    assert summary["interrupted"] is False and summary["unanswered"] == 0
    assert [line["seq"] for line in lines] == [a.seq for a in answers] == list(range(1, 31))
    assert [line_boxes(line) for line in lines] == [boxes(a) for a in answers]
    assert all(line["error"] is None and line["source_id"] == "cam-1" for line in lines)
    assert (lines[0]["image_width"], lines[0]["image_height"]) == (W, H)
    assert sum(len(line["detections"]) for line in lines) >= 25, "the red patch is found in most frames"
    assert {d["label"] for line in lines for d in line["detections"]} == {"stall"}
    assert any(d["track_id"] >= 0 for line in lines for d in line["detections"]), "tracked boxes carry their id"
    assert lines[0]["detections"] == [], "no patch in the first frame"
    first = lines[0]["capture_ts"]
    assert summary["first_capture_ts"] == first and summary["last_capture_ts"] == lines[-1]["capture_ts"]
    assert [round(line["capture_ts"] - first, 3) for line in lines] == [round(i / FPS, 3) for i in range(30)]
    assert lines[0]["capture_time"].endswith("Z") and set(lines[0]["timings"]) >= {"queued_ms", "inference_ms"}

    # The annotated video: every answered frame, at the source's rate, on the capture clock.
    drawn, times, rate = decode(annotated)
    source, _, _ = decode(clip)
    assert len(drawn) == len(source) == 30 and drawn[0].shape == (H, W, 3)
    assert rate == pytest.approx(FPS)
    assert times == pytest.approx([i / FPS for i in range(30)], abs=1e-3)

    def diff(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())

    for i, (seen, plain, line) in enumerate(zip(drawn, source, lines, strict=True)):
        # The zone's top edge (row 120, scaled from 240 on the 640x480 still) is drawn in the zone colour.
        # Zone yellow (ZONE_BGR) is high green and red; a 1 px line loses some colour to 4:2:0 chroma.
        assert ZONE_BGR == (0, 255, 255)
        assert seen[120, 100:220, 1:].min() > 180 and plain[120, 100:220, 1:].max() < 120, f"frame {i}: no zone"
        assert diff(seen[5:60, 200:300], plain[5:60, 200:300]) < 3, f"frame {i}: changed far from boxes and zones"
        for det in line["detections"]:
            x1, y1, x2, _ = (round(v) for v in det["box"])
            # The label on its filled box above the detection (the outline is red on the red patch's edge, so
            # it barely shows here): pixels there differ from the source's.
            assert diff(seen[y1 - 14 : y1, x1 : x2 + 1], plain[y1 - 14 : y1, x1 : x2 + 1]) > 40, f"frame {i}"
    assert diff(drawn[0][:95], source[0][:95]) < 3, "a frame without boxes is the source above the zone and its label"


def test_the_video_argument_keeps_a_url_as_typed() -> None:
    parser = cli.build_parser()
    for url in ("rtsp://10.1.0.7:554/stream1", "http://cam.example/video.mjpg", "file:///srv/clips/a b.mp4"):
        args = parser.parse_args(["replay", url])
        assert video_target(args.video) == url, "a URL reaches PyAV exactly as typed (not rtsp:/...)"
    assert video_target("clips/street.mp4") == Path("clips/street.mp4")
    assert default_source_id("rtsp://user:secret@10.1.0.7:554/cam-7") == "cam-7"
    assert default_source_id("http://10.1.0.8/") == "10.1.0.8"
    assert default_source_id(Path("clips/street.mp4")) == "street"
    assert shown("rtsp://user:secret@10.1.0.7:554/cam-7") == "rtsp://user:***@10.1.0.7:554/cam-7"


def test_ctrl_c_ends_a_replay_of_a_url_with_a_partial_summary(
    long_clip: Path, service: tuple[Service, str], answers: list[pb.FrameResult]
) -> None:
    _, target = service
    url = f"file://{long_clip.resolve()}"  # PyAV (FFmpeg's file: protocol) opens the URL as typed
    argv = ["replay", url, "--target", target, "--source-id", "cam-1", "--realtime", "--jsonl", "-", "--json"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "detector.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())  # the first answered frame
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "Traceback" not in err, err
    assert proc.returncode == 130, err
    summary = json.loads(err)  # with --jsonl -, stdout is frames only and the summary goes to stderr
    lines = [first, *(json.loads(line) for line in rest.splitlines())]
    assert summary["interrupted"] is True and summary["video"] == url
    assert 1 <= summary["frames_sent"] < 60 * FPS
    # The frames in flight at Ctrl-C were still answered, and each answer is a line.
    assert summary["results"] == summary["frames_sent"] == len(lines) == len(answers)
    assert summary["unanswered"] == 0
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert summary["first_capture_ts"] == first["capture_ts"] and summary["last_capture_ts"] == lines[-1]["capture_ts"]


def test_replay_refuses_annotate_with_upload(tmp_path: Path, clip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["replay", str(clip), "--target", "127.0.0.1:1", "--upload", "--annotate", str(tmp_path / "a.mp4")])
    assert code == 2 and "--upload" in capsys.readouterr().err
    code = cli.main(["replay", "rtsp://127.0.0.1:1/x", "--target", "127.0.0.1:1", "--upload"])
    assert code == 2 and "is a URL" in capsys.readouterr().err


def test_annotated_video_pads_odd_sizes_keeps_frames_without_answers_and_a_monotonic_clock(tmp_path: Path) -> None:
    from detector.api.replay_view import AnnotatedVideo, ZoneOutlines

    out = tmp_path / "odd.mp4"
    video = AnnotatedVideo(out, ZoneOutlines((("z", ((0.0, 0.0), (50.0, 0.0), (50.0, 50.0))),), (100, 100)))
    video.begin(2.0)
    image = np.full((241, 321, 3), 90, np.uint8)
    found = pb.FrameResult(seq=1, detections=[pb.Detection(class_id=0, label="stall", confidence=0.9, track_id=3)])
    found.detections[0].box.CopyFrom(pb.Box(x1=200, y1=150, x2=260, y2=200))
    dropped = pb.FrameResult(seq=2, error=pb.FrameError(code=pb.FrameErrorCode.Value("DROPPED"), message="newer"))
    # The third frame carries the second's capture time: it still gets a later timestamp.
    for result, ts in ((found, 100.0), (dropped, 100.5), (pb.FrameResult(seq=3), 100.5)):
        video.add(result, ts, image)
    video.close()
    frames, times, _ = decode(out)  # (the average rate of 3 irregular frames says little)
    assert len(frames) == video.frames == 3 and frames[0].shape == (242, 322, 3)
    assert times[0] == 0.0 and times[1] == pytest.approx(0.5, abs=1e-3) and times[2] > times[1]
    # The box is drawn on the answered frame only; the zone (drawn on 100x100, so up to x=160 here) on all.
    label = (slice(138, 149), slice(205, 260))  # "stall 0.90 #3" on its filled box above the detection
    assert np.abs(frames[0][label].astype(np.int16) - frames[1][label].astype(np.int16)).mean() > 40
    assert np.abs(frames[1][label].astype(np.int16) - 90).max() < 12, "the DROPPED frame is written as sent"
    assert all(f[0, 80:150, 1:].min() > 150 for f in frames), "the zone's top edge (to x=160: scaled to this size)"
    assert all(f[0, 170:300, 1:].max() < 120 for f in frames), "and not past it"
