"""The command-line flags every client of the service shares (token, TLS), for `replay`, `subscribe`,
`incidents`, `gateway` and the benches. Light to import: grpc loads only when a channel is opened."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detector.api.client import ChannelSecurity


def add_security_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--token", help="bearer token (default: $STREETWATCH_TOKEN; the flag shows in `ps`)")
    parser.add_argument("--tls-ca", type=Path, help="CA certificate (PEM) that signed the service's: use TLS")
    parser.add_argument("--tls-cert", type=Path, help="client certificate (PEM), when the service requires mTLS")
    parser.add_argument("--tls-key", type=Path, help="key of --tls-cert (PEM)")


def split_targets(values: Sequence[str]) -> list[str]:
    """``--target`` values as a list of addresses: each may hold several, comma-separated (replicas)."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def security_from_flags(args: argparse.Namespace) -> ChannelSecurity:
    from detector.api.client import ChannelSecurity

    return ChannelSecurity.from_flags(args.token, args.tls_ca, args.tls_cert, args.tls_key)
