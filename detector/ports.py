"""Check the service's listening ports before anything slow (opening the store, loading the model) starts, so that
a port in use is one line naming the setting, not a traceback a minute later."""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detector.config import ServerSettings


class PortInUse(OSError):
    """A port the settings name cannot be listened on; the message names the setting, e.g.
    ``server.port 50051 on 127.0.0.1 is in use: [Errno 98] Address already in use``."""

    def __init__(self, setting: str, host: str, port: int, reason: str, in_use: bool = True) -> None:
        state = "is in use" if in_use else "cannot be listened on"
        super().__init__(f"{setting} {port} on {host} {state}: {reason}")
        self.setting = setting
        self.host = host
        self.port = port


def check_port(setting: str, host: str, port: int) -> None:
    """Raise :class:`PortInUse` when ``host:port`` cannot be bound now. Port 0 (pick a free one) always passes.

    The probe binds with ``SO_REUSEADDR`` as gRPC and Prometheus' HTTP server do, so a port whose old connections
    linger in TIME_WAIT passes as it would for them. A host that does not resolve is left to the server, whose
    error says so."""
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise PortInUse(setting, host, port, str(exc), in_use=exc.errno == errno.EADDRINUSE) from None


def check_ports(ports: Iterable[tuple[str, str, int]]) -> None:
    """Check each ``(setting, host, port)``; the first one in use raises :class:`PortInUse`. Two settings naming
    the same port are reported too (the second would find it taken by the first)."""
    seen: dict[tuple[str, int], str] = {}
    for setting, host, port in ports:
        if port and (host, port) in seen:
            raise PortInUse(setting, host, port, f"{seen[host, port]} names the same port")
        seen[host, port] = setting
        check_port(setting, host, port)


def service_ports(server: ServerSettings) -> list[tuple[str, str, int]]:
    """The ports ``detector serve`` listens on, as ``(setting, host, port)``: gRPC, metrics, and the console's
    HTTP port where the settings have one."""
    ports = [("server.port", server.host, server.port)]
    ports.append(("server.metrics_port", server.metrics_bind_host, server.metrics_port))
    ports.append(("server.http_port", server.host, server.http_port))
    return ports
