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
from detector.config import ConfigError, ServiceConfig, load_config

if TYPE_CHECKING:
    pass

log = logging.getLogger("detector")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from detector.bench import cli as bench_cli
    from detector.gateway.cli import run_gateway
    from detector.sim import cli as sim_cli

    if args.command == "gateway":
        return run_gateway(args)
    if args.command == "connectors":
        from detector.delivery import cli as connectors_cli

        return connectors_cli.run(args)
    if args.command == "sim":
        return sim_cli.run(args)
    if args.command == "bench":
        return bench_cli.run(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "cluster-demo":
        from detector.cluster import demo as cluster_demo

        return cluster_demo.run_command(args)
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
    if args.command == "store":
        return _store(args)
    if args.command == "srt":
        return _srt(args)
    return _replay(args)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree (tests walk it to check every command's help)."""
    from detector import __version__
    from detector.cli_help import Parser, add_settings_args, finish

    parser: argparse.ArgumentParser = Parser(prog="detector", description="StreetWatch detector service and tools.")
    parser.add_argument("--version", action="version", version=f"detector {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gRPC service")
    add_settings_args(
        serve,
        config_help="YAML settings file (defaults are embedded)",
        set_help="override one setting, e.g. --set batching.max_batch=16 (repeatable)",
    )
    defaults = ServiceConfig()
    serve.add_argument("--host", help=f"same as --set server.host=... (default: {defaults.server.host})")
    serve.add_argument("--port", type=int, help=f"same as --set server.port=... (default: {defaults.server.port})")
    serve.add_argument("--weights", help=f"same as --set model.weights=... (default: {defaults.model.weights})")
    serve.add_argument("--device", help=f"same as --set model.device=... (default: {defaults.model.device})")
    serve.add_argument("--print-config", action="store_true", help="print the merged settings and exit")

    from detector.api import replay_cli

    replay = commands.add_parser(
        "replay",
        help="stream a video file, URL or image folder to the service like a camera would; see what it found",
        description=replay_cli.DESCRIPTION,
        epilog=replay_cli.EPILOG,
    )
    replay_cli.add_replay_arguments(replay)

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

    inc = commands.add_parser("incidents", help="list or show incidents, fetch their evidence, give verdicts")
    inc_commands = inc.add_subparsers(dest="incidents_command", required=True)
    inc_list = inc_commands.add_parser("list", help="list incidents, newest first (full ids)")
    inc_list.add_argument("--state", choices=["open", "cleared"])
    inc_list.add_argument("--source", dest="sources", action="append", default=[], help="source id (repeatable)")
    inc_list.add_argument("--category", dest="categories", action="append", default=[], help="category (repeatable)")
    inc_list.add_argument("--limit", type=int, help="at most this many incidents")
    inc_list.add_argument("--json", action="store_true", help="one JSON object (streetwatch.v1.Incident) per line")
    inc_show = inc_commands.add_parser("show", help="show one incident as JSON")
    inc_show.add_argument("incident_id", help="incident id, or a prefix only one incident has")
    inc_evidence = inc_commands.add_parser("evidence", help="write an incident's evidence JPEGs to a folder")
    inc_evidence.add_argument("incident_id", help="incident id, or a prefix only one incident has")
    inc_evidence.add_argument("--out", type=Path, required=True, help="folder to write the JPEGs into")
    inc_evidence.add_argument("--json", action="store_true", help="print the written paths as a JSON list")
    inc_update = inc_commands.add_parser(
        "update-case", help="give the case system's verdict on an incident (needs the case role)"
    )
    inc_update.add_argument("incident_id", help="incident id, or a prefix only one incident has")
    inc_update.add_argument(
        "--state",
        required=True,
        choices=["FILED", "ACCEPTED", "DISPATCHED", "RESOLVED", "REJECTED"],
        help="RESOLVED and REJECTED close it; REJECTED (a false alarm) also suppresses its category at its place",
    )
    inc_update.add_argument("--case-id", default="", help="the case system's id for the case (kept when omitted)")
    inc_update.add_argument("--note", default="", help="the case system's note (at most 2000 characters)")
    for p in (inc_list, inc_show, inc_evidence, inc_update):
        p.add_argument("--target", default="127.0.0.1:50051", help="service address")
        add_security_flags(p)

    auth = commands.add_parser("auth", help="bearer tokens for auth.tokens")
    auth_commands = auth.add_subparsers(dest="auth_command", required=True)
    new_token = auth_commands.add_parser("new-token", help="print a new token and the config entry with its hash")
    new_token.add_argument("--name", default="client", help="who will hold it (a gateway, a case system)")
    new_token.add_argument(
        "--role", dest="roles", action="append", choices=["ingest", "subscribe", "case", "metrics", "admin"]
    )
    new_token.add_argument("--source", dest="sources", action="append", default=[], help="source id (ingest)")
    new_token.add_argument(
        "--consumer", dest="consumers", action="append", default=[], help="consumer it may ack (default: --name)"
    )

    train = commands.add_parser("train", help="assemble the dataset and train the model (offline, seeded)")
    train.add_argument("--config", type=Path, default=Path("weights/train.yaml"), help="training config YAML")
    train.add_argument("--resume", action="store_true", help="continue the run's last checkpoint")
    evaluate = commands.add_parser("eval", help="mAP and per-class precision/recall of weights on a data.yaml")
    evaluate.add_argument("--weights", type=Path, required=True, help="checkpoint (.pt)")
    evaluate.add_argument("--data", type=Path, required=True, help="YOLO data.yaml")
    evaluate.add_argument("--split", default="val", help="split of the data.yaml to evaluate")
    evaluate.add_argument(
        "--imgsz", type=int, help="input size (default: the checkpoint's training size, as the service runs it)"
    )
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
    demo.add_argument(
        "--no-sprites", action="store_true", help="draw people and vehicles as meshes, not photo cut-outs (../shared)"
    )
    demo.add_argument("--imgsz", type=int, default=640, help="model input size the demo's service runs at")

    store = commands.add_parser("store", help="maintain the incident store (SQLite or PostgreSQL)")
    store_commands = store.add_subparsers(dest="store_command", required=True)
    migrate = store_commands.add_parser(
        "migrate", help="bring the store's schema to this build's version (the service also does on start); print it"
    )
    where = migrate.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="store URL: postgresql://USER@HOST:PORT/DATABASE or sqlite:///DATA_DIR")
    where.add_argument("--config", type=Path, help="service YAML settings file; its store section")

    from detector.bench import cli as bench_cli
    from detector.sim import cli as sim_cli

    sim_cli.add_commands(commands)
    bench_cli.add_commands(commands)
    from detector.gateway.cli import add_gateway_parser

    add_gateway_parser(commands)
    from detector.cluster import demo as cluster_demo

    cluster_demo.add_parser(commands)
    from detector.delivery import cli as connectors_cli

    connectors_cli.add_commands(commands)

    finish(parser)  # every command's example and defaults in --help
    return parser


def _new_token(args: argparse.Namespace) -> int:
    from detector.api.auth import new_token

    roles = args.roles or ["ingest"]
    if "ingest" in roles and "admin" not in roles and not args.sources:
        print(
            "detector auth new-token: an ingest token needs --source ID (repeatable, or --source '*' for any "
            "source); without one it could send nothing",
            file=sys.stderr,
        )
        return 2
    token, digest = new_token()
    entry: dict[str, object] = {"name": args.name, "sha256": digest, "roles": roles, "sources": args.sources}
    if args.consumers:
        entry["consumers"] = args.consumers
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

    def reconnecting(exc: grpc.aio.AioRpcError, delay_s: float) -> None:
        print(
            f"detector subscribe: {exc.code().name}: {exc.details()}; resubscribing in {delay_s:.1f} s", file=sys.stderr
        )

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
                on_reconnect=reconnecting,
            )
        )
    except grpc.aio.AioRpcError as exc:
        from detector.api.errors import explain_rpc_error

        print(f"detector subscribe: the service answered {explain_rpc_error(exc)}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:  # unusable --tls-* files, or a token that would go out in plain text
        print(f"detector subscribe: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def _incidents(args: argparse.Namespace) -> int:
    import grpc

    from detector.api import incidents_cli as cmd
    from detector.api.incidents_client import IncidentsClient
    from detector.store.model import IncidentState
    from detector.types import CaseState

    async def listed(query: cmd.ListQuery) -> str:
        async with IncidentsClient(args.target, security_from_flags(args)) as client:
            return cmd.list_output(await cmd.list_incidents(client, query), args.json)

    try:
        if args.incidents_command == "show":
            print(asyncio.run(cmd.show(args.target, security_from_flags(args), args.incident_id)))
        elif args.incidents_command == "evidence":
            paths = asyncio.run(cmd.fetch_evidence(args.target, security_from_flags(args), args.incident_id, args.out))
            print(cmd.evidence_output(paths, args.json))
        elif args.incidents_command == "update-case":
            update = cmd.CaseUpdate(args.incident_id, CaseState(args.state), args.case_id, args.note)
            print(asyncio.run(cmd.update_case(args.target, security_from_flags(args), update)))
        else:
            if args.limit is not None and args.limit <= 0:
                print("detector incidents: --limit must be at least 1", file=sys.stderr)
                return 2
            state = None if args.state is None else IncidentState(args.state)
            output = asyncio.run(listed(cmd.ListQuery(state, args.sources, args.categories, args.limit)))
            if output:
                print(output)
    except cmd.IncidentNotFound as exc:
        print(f"detector incidents: NOT_FOUND: {exc}", file=sys.stderr)
        return 1
    except grpc.aio.AioRpcError as exc:
        from detector.api.errors import explain_rpc_error

        print(f"detector incidents: the service answered {explain_rpc_error(exc)}", file=sys.stderr)
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
        sprites=not args.no_sprites,
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
    from detector.inference.engine import ModelSettings, resolve_imgsz
    from detector.train.evaluate import evaluate

    try:
        imgsz = args.imgsz or resolve_imgsz(ModelSettings(weights=args.weights))
        report = evaluate(args.weights, args.data, imgsz, args.device, args.split)
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
    from detector.threads import prepare_process_env

    prepare_process_env(config.threads)  # before torch loads
    from detector.inference.engine import EngineError
    from detector.logs import setup_logging
    from detector.ports import PortInUse, check_ports, service_ports
    from detector.server import serve_forever

    try:
        check_ports(service_ports(config.server))  # before logging starts and the model loads: one line, exit 2
    except PortInUse as exc:
        print(f"detector serve: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.logging.level, config.logging.json_format, native=True)
    try:
        asyncio.run(serve_forever(config))
    except PortInUse as exc:  # taken between the check and the bind
        log.error("cannot start: %s", exc)
        return 2
    except RuntimeError as exc:  # gRPC's own bind failure, should the port be taken after the check
        if "Failed to bind" not in str(exc):
            raise
        log.error("cannot start: server.port %s on %s: %s", config.server.port, config.server.host, exc)
        return 2
    except EngineError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


def _store(args: argparse.Namespace) -> int:
    from detector.store import StoreError, StoreSettings, open_store

    try:
        settings = StoreSettings.from_url(args.url) if args.url else load_config(args.config).store
        with open_store(settings) as store:
            version = store.schema_version()
    except ConfigError as exc:
        print(f"detector store migrate: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # a malformed --url (StoreSettings says which part)
        print(f"detector store migrate: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"detector store migrate: {exc}", file=sys.stderr)
        return 1
    print(f"{settings.backend} store at schema version {version}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from detector.api.replay_cli import run_replay

    return run_replay(args)


if __name__ == "__main__":
    sys.exit(main())
