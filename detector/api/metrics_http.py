"""The Prometheus ``/metrics`` HTTP listener, on its own host and port, protected like the gRPC port.

- It binds ``server.metrics_host`` (default: ``server.host``), port ``server.metrics_port``.
- When ``auth.enabled`` (and not ``auth.open_metrics``), a scrape needs ``Authorization: Bearer <token>`` of a
  token with the ``metrics`` (or ``admin``) role: a missing or unknown token gets 401, a token without the role
  403. Prometheus sends one with ``authorization: {credentials_file: ...}`` in its scrape config.
- When ``server.tls`` is set, it serves HTTPS with the same certificate and key (and client CA, for mTLS).
"""

from __future__ import annotations

import hmac
import logging
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from detector.api.auth import AuthSettings, hash_token
from detector.api.client import is_loopback_host
from detector.config import ServerSettings

log = logging.getLogger(__name__)

METRICS_ROLES = frozenset({"metrics", "admin"})
_StartResponse = Callable[..., Any]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged (one line every few seconds per scraper)."""


@dataclass
class MetricsHttp:
    """A running listener; ``port`` is the bound one (useful when ``metrics_port`` asked for a free one)."""

    server: ThreadingWSGIServer
    thread: threading.Thread
    host: str
    port: int

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _protected(app: Callable[..., Iterable[bytes]], auth: AuthSettings) -> Callable[..., Iterable[bytes]]:
    allowed = {t.sha256: bool(METRICS_ROLES & set(t.roles)) for t in auth.tokens}

    def guarded(environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        header = str(environ.get("HTTP_AUTHORIZATION", ""))
        offered = hash_token(header.removeprefix("Bearer ").strip()) if header.startswith("Bearer ") else ""
        known = next((ok for digest, ok in allowed.items() if offered and hmac.compare_digest(digest, offered)), None)
        if known is None:
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"a bearer token with the metrics role is required (Authorization: Bearer <token>)\n"]
        if not known:
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"this token lacks the metrics role\n"]
        return app(environ, start_response)

    return guarded


def start_metrics_http(settings: ServerSettings, auth: AuthSettings, registry: CollectorRegistry) -> MetricsHttp:
    """Serve ``registry`` on ``metrics_host:metrics_port`` in a daemon thread (see the module docstring)."""
    host = settings.metrics_bind_host
    app: Callable[..., Iterable[bytes]] = make_wsgi_app(registry)
    protected = auth.enabled and not auth.open_metrics
    if protected:
        app = _protected(app, auth)
    httpd = make_server(host, settings.metrics_port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    tls = settings.tls
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
        if tls.client_ca_file is not None:
            context.load_verify_locations(str(tls.client_ca_file))
            context.verify_mode = ssl.CERT_REQUIRED
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    elif protected and not is_loopback_host(host):
        log.warning("metrics on %s WITHOUT TLS: scrape tokens cross the network in plain text; set server.tls", host)
    if not protected and not is_loopback_host(host):
        log.warning("metrics on %s are open to anyone who reaches it; set auth.enabled", host)
    thread = threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    port = int(httpd.server_address[1])
    log.info("metrics listening", extra={"address": f"{host}:{port}", "protected": protected, "tls": tls is not None})
    return MetricsHttp(httpd, thread, host, port)
