"""`detector gateway`: argument parsing and the process around :class:`detector.gateway.gateway.Gateway`.

Registered from detector/cli.py with ``add_gateway_parser(commands)`` and dispatched with ``run_gateway(args)``;
the token and TLS flags are the same as ``detector replay``'s. PyAV, gRPC and the gateway itself are imported only
when the command runs, so that `detector --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detector.api.flags import add_security_flags, security_from_flags
from detector.gateway.config import GatewayConfig, GatewayConfigError, load_gateway_config
from detector.logs import setup_logging

if TYPE_CHECKING:
    from detector.api.client import ChannelSecurity
    from detector.gateway.summary import GatewaySummary


EPILOG = """\
example:
  detector gateway --target 127.0.0.1:50051 --camera cam-7=rtsp://10.1.0.7:554/stream1 --json

Ctrl-C (SIGINT) or SIGTERM stops it: frames still queued may be answered for drain_s, then the summary
is printed (its stopped_by names the signal) and it exits 0."""


def add_gateway_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``gateway`` command to ``detector``'s sub-commands."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "gateway",
        help="pull cameras (RTSP, HTTP, files) and stream them to the service, as an edge gateway",
        epilog=EPILOG,
    )
    p.add_argument(
        "--camera",
        action="append",
        default=[],
        metavar="ID=URL",
        help="a camera: its source id and anything PyAV opens (rtsp://, http(s)://, a file); repeatable",
    )
    p.add_argument("--config", type=Path, help="gateway YAML: cameras and settings (flags override it)")
    p.add_argument(
        "--target",
        action="append",
        metavar="HOST:PORT[,HOST:PORT...]",
        help="service address (default 127.0.0.1:50051); several (comma-separated or repeated) are replicas of a "
        "cluster: the gateway follows a source's owner and fails over to the next when one is unavailable",
    )
    p.add_argument("--fps", type=float, help="frame-rate cap per camera, per second of capture time (default 5)")
    p.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port (default: off)")
    p.add_argument(
        "--duration", type=float, help="stop after this many seconds (default: on SIGINT/SIGTERM, or when all end)"
    )
    p.add_argument("--json", action="store_true", help="print the exit summary as JSON")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--log-text", action="store_true", help="plain-text logs instead of one JSON object per line")
    add_security_flags(p)
    return p


def run_gateway(args: argparse.Namespace) -> int:
    """Run until stopped; print the summary. 0: stopped normally (SIGINT/Ctrl-C or SIGTERM are the normal way to
    stop a gateway: it drains, prints the summary with ``stopped_by`` and exits 0); 1: the service refused the
    gateway; 2: bad settings."""
    try:
        config = load_gateway_config(
            args.config,
            args.camera,
            {
                "target": ",".join(args.target) if args.target else None,
                "fps": args.fps,
                "metrics_port": args.metrics_port,
            },
        )
    except GatewayConfigError as exc:
        print(f"detector gateway: {exc}", file=sys.stderr)
        return 2
    setup_logging(args.log_level, json_format=not args.log_text)
    try:
        summary = asyncio.run(run_until_stopped(config, security_from_flags(args), args.duration))
    except KeyboardInterrupt:  # Ctrl-C before the gateway's own handlers were in place: nothing was read yet
        print("detector gateway: interrupted before it started", file=sys.stderr)
        return 130
    print(json.dumps(summary.as_dict(), indent=2, ensure_ascii=False) if args.json else summary.text())
    return 0 if summary.error is None else 1


async def run_until_stopped(
    config: GatewayConfig, security: ChannelSecurity, duration_s: float | None = None
) -> GatewaySummary:
    """The gateway, with SIGINT/SIGTERM (and ``duration_s``) stopping it and the metrics port served."""
    from detector.gateway.gateway import Gateway
    from detector.gateway.metrics import GatewayMetrics

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    stopped_by: list[str] = []

    def stop_by(reason: str) -> None:
        if not stop.is_set():
            stopped_by.append(reason)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
            loop.add_signal_handler(signum, stop_by, signal.Signals(signum).name)
    if duration_s is not None:
        loop.call_later(max(duration_s, 0.0), stop_by, "duration")
    metrics = GatewayMetrics()
    server = None
    if config.metrics_port:
        from prometheus_client import start_http_server

        server, _ = start_http_server(config.metrics_port, addr=config.metrics_host, registry=metrics.registry)
    try:
        summary = await Gateway(config, security, metrics).run(stop)
        summary.stopped_by = stopped_by[0] if stopped_by else None
        return summary
    finally:
        if server is not None:
            server.shutdown()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signum)
