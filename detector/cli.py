"""The `detector` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from detector.api.flags import add_security_flags, security_from_flags
from detector.config import ConfigError, load_config

if TYPE_CHECKING:
    pass

log = logging.getLogger("detector")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="detector", description="StreetWatch detector service and tools.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC service")
    serve.add_argument("--config", type=Path, help="YAML settings file (defaults are embedded)")
    serve.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one setting, e.g. --set batching.max_batch=16 (repeatable)",
    )
    serve.add_argument("--host", help="same as --set server.host=...")
    serve.add_argument("--port", type=int, help="same as --set server.port=...")
    serve.add_argument("--weights", help="same as --set model.weights=...")
    serve.add_argument("--device", help="same as --set model.device=...")
    serve.add_argument("--print-config", action="store_true", help="print the merged settings and exit")

    replay = commands.add_parser("replay", help="stream a video file to the service like a camera would")
    replay.add_argument("video", type=Path, help="a video file, or a folder of images")
    replay.add_argument("--target", default="127.0.0.1:50051", help="service address")
    replay.add_argument("--source", "--source-id", dest="source_id", help="source id (default: the file name)")
    replay.add_argument("--fps", type=float, default=0.0, help="frames per second of video to send (0 = all)")
    replay.add_argument("--mode", choices=["live", "lossless"], default="lossless")
    replay.add_argument("--realtime", action="store_true", help="pace frames to the video clock")
    replay.add_argument("--json", action="store_true", help="print the summary as JSON")
    replay.add_argument("--srt", type=Path, help="the flight's DJI .SRT: send each frame with its telemetry")
    replay.add_argument("--srt-offset", type=float, default=0.0, help="seconds added to SRT cue times (default 0)")
    replay.add_argument(
        "--upload", action="store_true", help="send the file (and --srt) with SubmitVideo; the service syncs them"
    )
    add_security_flags(replay)

    srt = commands.add_parser("srt", help="DJI .SRT telemetry tools")
    srt_commands = srt.add_subparsers(dest="srt_command", required=True)
    srt_inspect = srt_commands.add_parser("inspect", help="cue counts, time span, GPS order, first/last values")
    srt_inspect.add_argument("files", type=Path, nargs="+", help=".SRT files")
    srt_inspect.add_argument("--json", action="store_true", help="one JSON object per file")

    sub = commands.add_parser("subscribe", help="follow incident events as a case system would (JSON lines)")
    sub.add_argument("--target", default="127.0.0.1:50051", help="service address")
    sub.add_argument("--consumer", default="cli", help="consumer name; its committed offset is the default start")
    sub.add_argument("--after", type=int, help="start after this sequence instead of the committed offset")
    sub.add_argument("--ack", action="store_true", help="commit each event's sequence after printing it")
    sub.add_argument("--json", action="store_true", help="print each event as one JSON object per line")
    sub.add_argument("--max-events", type=int, help="stop after this many events")
    sub.add_argument("--idle-timeout", type=float, help="stop after this many seconds without an event")
    add_security_flags(sub)

    inc = commands.add_parser("incidents", help="list or show incidents")
    inc_commands = inc.add_subparsers(dest="incidents_command", required=True)
    inc_list = inc_commands.add_parser("list", help="list incidents, newest first")
    inc_list.add_argument("--state", choices=["open", "cleared"])
    inc_show = inc_commands.add_parser("show", help="show one incident as JSON")
    inc_show.add_argument("incident_id")
    for p in (inc_list, inc_show):
        p.add_argument("--target", default="127.0.0.1:50051", help="service address")
        add_security_flags(p)

    auth = commands.add_parser("auth", help="bearer tokens for auth.tokens")
    auth_commands = auth.add_subparsers(dest="auth_command", required=True)
    new_token = auth_commands.add_parser("new-token", help="print a new token and the config entry with its hash")
    new_token.add_argument("--name", default="client", help="who will hold it (a gateway, a case system)")
    new_token.add_argument("--role", dest="roles", action="append", choices=["ingest", "subscribe", "admin"])
    new_token.add_argument("--source", dest="sources", action="append", default=[], help="source id (ingest)")

    train = commands.add_parser("train", help="assemble the dataset and train the model (offline, seeded)")
    train.add_argument("--config", type=Path, default=Path("weights/train.yaml"), help="training config YAML")
    train.add_argument("--resume", action="store_true", help="continue the run's last checkpoint")
    evaluate = commands.add_parser("eval", help="mAP and per-class precision/recall of weights on a data.yaml")
    evaluate.add_argument("--weights", type=Path, required=True, help="checkpoint (.pt)")
    evaluate.add_argument("--data", type=Path, required=True, help="YOLO data.yaml")
    evaluate.add_argument("--split", default="val", help="split of the data.yaml to evaluate")
    evaluate.add_argument("--imgsz", type=int, default=320, help="input size")
    evaluate.add_argument("--device", default="cpu", help="'cpu' or a CUDA index")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")

    demo = commands.add_parser("demo", help="the whole product on simulated streets: stream, incidents, report")
    demo.add_argument("--out", type=Path, default=Path("demo-data"), help="store, scores and report.html go here")
    demo.add_argument("--cache", type=Path, default=Path(".cache/demo"), help="rendered scenarios are kept here")
    demo.add_argument("--seed", type=int, default=0, help="simulator seed")
    demo.add_argument("--weights", type=Path, help="model checkpoint (default: the committed weights)")
    demo.add_argument("--minutes", type=float, help="shorten each scenario to this many minutes (default: whole)")
    demo.add_argument("--fps", type=float, default=2.0, help="frames per second rendered and streamed")
    demo.add_argument(
        "--size", help="rendered frame size WxH for every scenario (default: 1280x720 camera, 1920x1080 drone)"
    )
    demo.add_argument("--no-tiling", action="store_true", help="run the drone's frames whole, untiled")
    demo.add_argument("--imgsz", type=int, default=640, help="model input size the demo's service runs at")

    from detector.bench import cli as bench_cli
    from detector.sim import cli as sim_cli

    sim_cli.add_commands(commands)
    bench_cli.add_commands(commands)
    from detector.gateway.cli import add_gateway_parser, run_gateway

    add_gateway_parser(commands)

    args = parser.parse_args(argv)
    if args.command == "gateway":
        return run_gateway(args)
    if args.command == "sim":
        return sim_cli.run(args)
    if args.command == "bench":
        return bench_cli.run(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "subscribe":
        return _subscribe(args)
    if args.command == "incidents":
        return _incidents(args)
    if args.command == "train":
        return _train(args)
    if args.command == "auth":
        return _new_token(args)
    if args.command == "eval":
        return _eval(args)
    if args.command == "srt":
        return _srt(args)
    return _replay(args)


def _new_token(args: argparse.Namespace) -> int:
    from detector.api.auth import new_token

    token, digest = new_token()
    entry = {"name": args.name, "sha256": digest, "roles": args.roles or ["ingest"], "sources": args.sources}
    print(f"token (give it to {args.name}; it is not stored anywhere): {token}")
    print("add under auth.tokens in the service config:")
    print(f"  - {json.dumps(entry)}")
    return 0


def _srt(args: argparse.Namespace) -> int:
    from detector.geo.srt_inspect import inspect_srt

    summaries = [inspect_srt(path) for path in args.files]
    for summary in summaries:
        print(json.dumps(summary.as_dict(), ensure_ascii=False) if args.json else summary.text())
    return 1 if any(summary.error for summary in summaries) else 0


def _subscribe(args: argparse.Namespace) -> int:
    import grpc

    from detector.api.subscribe import event_json, event_line, subscribe
    from detector.types import IncidentEvent

    def emit(event: IncidentEvent) -> None:
        print(event_json(event) if args.json else event_line(event), flush=True)

    try:
        asyncio.run(
            subscribe(
                args.target,
                args.consumer,
                args.after,
                args.ack,
                emit,
                args.max_events,
                args.idle_timeout,
                security_from_flags(args),
            )
        )
    except grpc.aio.AioRpcError as exc:
        print(f"detector subscribe: the service answered {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:  # unusable --tls-* files, or a token that would go out in plain text
        print(f"detector subscribe: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def _incidents(args: argparse.Namespace) -> int:
    import grpc

    from detector.api.incidents_client import IncidentsClient
    from detector.api.subscribe import incident_json, incident_line
    from detector.store.model import IncidentState

    async def show(incident_id: str) -> str:
        async with IncidentsClient(args.target, security_from_flags(args)) as client:
            return incident_json(await client.get(incident_id))

    async def listed(state: IncidentState | None) -> list[str]:
        async with IncidentsClient(args.target, security_from_flags(args)) as client:
            return [incident_line(record) for record in await client.list_all(state, page_size=200)]

    try:
        if args.incidents_command == "show":
            print(asyncio.run(show(args.incident_id)))
        else:
            for line in asyncio.run(listed(None if args.state is None else IncidentState(args.state))):
                print(line)
    except grpc.aio.AioRpcError as exc:
        print(f"detector incidents: the service answered {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"detector incidents: {exc}", file=sys.stderr)
        return 2
    return 0


def _demo(args: argparse.Namespace) -> int:
    from detector.config import DEFAULT_WEIGHTS
    from detector.demo.run import DemoSettings, run_demo
    from detector.logs import setup_logging

    setup_logging("WARNING", json_format=False)
    sizes = DemoSettings().sizes
    if args.size:
        try:
            width, height = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            print(f"detector demo: --size must be WxH, e.g. 960x540, got {args.size!r}", file=sys.stderr)
            return 2
        sizes = tuple((name, width, height) for name, _, _ in sizes)
    settings = DemoSettings(
        out_dir=args.out,
        cache_dir=args.cache,
        seed=args.seed,
        fps=args.fps,
        sizes=sizes,
        tile_drone=not args.no_tiling,
        weights=args.weights or DEFAULT_WEIGHTS,
        minutes=args.minutes,
        imgsz=args.imgsz,
    )
    return asyncio.run(run_demo(settings))


def _train(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from detector.train.config import load_train_config
    from detector.train.trainer import train

    try:
        config = load_train_config(args.config)
    except (OSError, ValidationError, ValueError) as exc:
        print(f"detector train: {args.config}: {exc}", file=sys.stderr)
        return 2
    from detector.sim.composite import render_composites

    checkpoint = train(config, resume=args.resume, render_sim=render_composites)
    print(f"detector train: best checkpoint written to {checkpoint}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from detector.train.evaluate import evaluate

    try:
        report = evaluate(args.weights, args.data, args.imgsz, args.device, args.split)
    except FileNotFoundError as exc:
        print(f"detector eval: {exc}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else report.table())
    return 0


def _serve(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    for flag, key in (
        ("host", "server.host"),
        ("port", "server.port"),
        ("weights", "model.weights"),
        ("device", "model.device"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"detector serve: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(config.model_dump_json(indent=2))
        return 0
    from detector.inference.engine import EngineError
    from detector.logs import setup_logging
    from detector.server import serve_forever

    setup_logging(config.logging.level, config.logging.json_format)
    try:
        asyncio.run(serve_forever(config))
    except EngineError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


def _replay(args: argparse.Namespace) -> int:
    import grpc

    from detector.api.replay import replay
    from detector.geo.errors import SrtParseError
    from detector.ingest.video import VideoError
    from detector.types import DeliveryMode

    mode = DeliveryMode.LIVE if args.mode == "live" else DeliveryMode.LOSSLESS
    source_id = args.source_id or args.video.stem
    try:
        summary = asyncio.run(
            replay(
                args.target,
                args.video,
                source_id,
                args.fps,
                mode,
                args.realtime,
                srt=args.srt,
                srt_offset_s=args.srt_offset,
                upload=args.upload,
                security=security_from_flags(args),
            )
        )
    except (VideoError, SrtParseError, ValueError, OSError) as exc:
        print(f"detector replay: {exc}", file=sys.stderr)
        return 2
    except grpc.aio.AioRpcError as exc:
        print(f"detector replay: the service answered {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False) if args.json else summary.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
