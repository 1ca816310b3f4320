"""`detector replay`: its arguments and the process around :func:`detector.api.replay.replay`.

Registered from detector/cli.py (``add_replay_arguments`` on the ``replay`` sub-parser, ``run_replay`` to run it).
gRPC, PyAV and the replay itself are imported only when the command runs, so that `detector --help` stays fast.

Exit codes: 0 done; 1 the service refused the call; 2 an unusable video, SRT, flag or settings file; 130
interrupted (SIGINT/Ctrl-C or SIGTERM), after the partial summary is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO

from detector.api.flags import add_security_flags, security_from_flags, split_targets

EXIT_INTERRUPTED = 130

DESCRIPTION = """\
Stream a video file, a URL or a folder of images to the service as a camera would, and summarise
the answers; --jsonl and --annotate show what the model saw in each frame."""

EPILOG = """\
example:
  detector replay street.mp4 --source-id cam-7 --jsonl boxes.jsonl --annotate seen.mp4 --service-config service.yaml

Ctrl-C (or SIGTERM) stops sending, waits for the answers to the frames in flight, prints the partial
summary (interrupted: true) and exits 130; a second Ctrl-C stops waiting."""


def add_replay_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "video",
        help="a video file, a folder of images, or a URL PyAV opens (rtsp://, http(s)://, file://), kept as typed",
    )
    p.add_argument(
        "--target",
        action="append",
        metavar="HOST:PORT[,HOST:PORT...]",
        help="service address (default: 127.0.0.1:50051); several (comma-separated or repeated) are replicas of a "
        "cluster: the stream follows the source's owner and fails over to the next when one is unavailable",
    )
    p.add_argument(
        "--source",
        "--source-id",
        dest="source_id",
        help="source id (default: the file name, or the URL's last path part)",
    )
    p.add_argument(
        "--fps", type=float, default=0.0, help="frames per second of video to send; 0 = all (default: %(default)s)"
    )
    p.add_argument(
        "--mode",
        choices=["live", "lossless"],
        default="lossless",
        help="delivery mode: lossless answers every frame of a file (the service holds the sender when behind); "
        "live lets the service drop the oldest frames, as a camera's gateway does, best with --realtime "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--realtime", action="store_true", help="pace frames to the video clock (default: as fast as answered)"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the summary as JSON (with first_capture_ts/last_capture_ts, interrupted)",
    )
    p.add_argument(
        "--jsonl",
        metavar="FILE",
        help="write one JSON line per answered frame (seq, capture time, source, detections with label, "
        "confidence, box and track id, error, timings); '-' for stdout, and then the summary goes to stderr",
    )
    p.add_argument(
        "--annotate",
        metavar="OUT.mp4",
        type=Path,
        help="write the answered frames with boxes, labels and track ids drawn (and zones, given --service-config) "
        "as an MP4 at the source's frame rate",
    )
    p.add_argument(
        "--service-config",
        metavar="FILE",
        type=Path,
        help="the service's settings YAML: --annotate draws the source's pixel zones from it (zones are drawn "
        "only when this is given)",
    )
    p.add_argument("--srt", type=Path, help="the flight's DJI .SRT: send each frame with its telemetry")
    p.add_argument(
        "--srt-offset", type=float, default=0.0, help="seconds added to SRT cue times (default: %(default)s)"
    )
    p.add_argument(
        "--upload", action="store_true", help="send the file (and --srt) with SubmitVideo; the service syncs them"
    )
    add_security_flags(p)


def run_replay(args: argparse.Namespace) -> int:
    """Run ``detector replay`` and print its summary; the exit code (see the module's doc)."""
    try:
        return _run(args)
    except KeyboardInterrupt:  # before the signal handlers are in place (imports, opening files)
        print("detector replay: interrupted before the first frame", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    import grpc

    from detector.api.replay import default_source_id, replay_until_interrupted, video_target
    from detector.api.replay_view import AnnotatedVideo, FrameView, JsonlView, ZoneOutlines, zones_from_service_config
    from detector.config import ConfigError
    from detector.geo.errors import SrtParseError
    from detector.ingest.video import VideoError
    from detector.types import DeliveryMode

    def fail(message: str) -> int:
        print(f"detector replay: {message}", file=sys.stderr)
        return 2

    video = video_target(args.video)
    source_id = args.source_id or default_source_id(video)
    if args.upload and args.annotate is not None:
        return fail("--annotate draws the frames this command sends; it cannot be used with --upload")
    zones = ZoneOutlines()
    if args.service_config is not None:
        try:
            zones = zones_from_service_config(args.service_config, source_id)
        except ConfigError as exc:
            return fail(f"--service-config: {exc}")
    summary_out: IO[str] = sys.stdout
    with ExitStack() as files:
        views: list[FrameView] = []
        if args.jsonl is not None:
            if args.jsonl == "-":
                views.append(JsonlView(sys.stdout))
                summary_out = sys.stderr
            else:
                try:
                    views.append(JsonlView(files.enter_context(Path(args.jsonl).open("w", encoding="utf-8"))))
                except OSError as exc:
                    return fail(f"--jsonl: {exc}")
        if args.annotate is not None:
            views.append(AnnotatedVideo(args.annotate, zones))
        try:
            summary = asyncio.run(
                replay_until_interrupted(
                    split_targets(args.target or ["127.0.0.1:50051"]),
                    video,
                    source_id,
                    fps=args.fps,
                    mode=DeliveryMode.LIVE if args.mode == "live" else DeliveryMode.LOSSLESS,
                    realtime=args.realtime,
                    srt=args.srt,
                    srt_offset_s=args.srt_offset,
                    upload=args.upload,
                    security=security_from_flags(args),
                    views=views,
                )
            )
        except (VideoError, SrtParseError, ValueError, OSError) as exc:
            return fail(str(exc))
        except grpc.aio.AioRpcError as exc:
            from detector.api.errors import explain_rpc_error  # names server.max_message_bytes for a big frame

            print(f"detector replay: the service answered {explain_rpc_error(exc)}", file=sys.stderr)
            return 1
    print(
        json.dumps(summary.as_dict(), indent=2, ensure_ascii=False) if args.json else summary.text(), file=summary_out
    )
    return EXIT_INTERRUPTED if summary.interrupted else 0
