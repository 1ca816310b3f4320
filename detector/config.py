"""Service settings: embedded defaults, then a YAML file, then environment variables, then flags.

Every layer is validated by one pydantic model with ``extra="forbid"``, so an unknown or invalid key is rejected
with a message that names it. Environment variables are ``STREETWATCH__<SECTION>__<KEY>`` (e.g.
``STREETWATCH__SERVER__PORT=50052``); flags are ``--set section.key=value``. Values in both are parsed as YAML
scalars (``8``, ``true``, ``[a, b]``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from detector.api.auth import AuthSettings
from detector.api.console.settings import ConsoleSettings
from detector.api.evidence_http import EvidenceLinkSettings
from detector.cluster.settings import ClusterSettings
from detector.delivery.settings import DeliverySettings
from detector.incidents.hard_negatives import HardNegativeSettings
from detector.inference.batcher import BatchingSettings
from detector.inference.engine import ModelSettings
from detector.inference.tiling import TilingSettings
from detector.ingest.config import IngestSettings
from detector.paths import DEFAULT_WEIGHTS as DEFAULT_WEIGHTS
from detector.paths import REPO_ROOT as REPO_ROOT
from detector.rules.config import RulesConfig
from detector.settings_text import ConfigError as ConfigError
from detector.settings_text import describe_invalid, read_yaml_mapping
from detector.store.config import StoreSettings
from detector.threads import ThreadSettings
from detector.tracking.config import TrackerConfig

ENV_PREFIX = "STREETWATCH__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsSettings(_Section):
    cert_file: Path = Field(description="Server certificate chain (PEM).")
    key_file: Path = Field(description="Private key of the server certificate (PEM).")
    client_ca_file: Path | None = Field(
        None, description="CA bundle (PEM) for client certificates; set, every client must present one (mTLS)."
    )


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", description="Address to listen on; loopback by default.")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port; 0 picks a free one.")
    max_message_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest gRPC message accepted or sent, in bytes."
    )
    grace_s: float = Field(10.0, ge=0, description="On SIGTERM, how long in-flight frames may take to finish.")
    reflection: bool = Field(True, description="Serve gRPC server reflection.")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics HTTP port on the same host; 0 = off.")
    http_port: int = Field(
        0, ge=0, le=65535, description="Operator console (web page, read-only JSON) on the same host; 0 = off."
    )
    metrics_host: str | None = Field(
        None, description="Address of the /metrics listener; None = server.host. Needs a metrics token when auth is on."
    )
    advertise_address: str | None = Field(
        None,
        description="host:port other replicas and clients reach this service at (told to a client sent to the "
        "replica that owns its source); None = '<host>:<bound port>'.",
    )
    evidence_links: EvidenceLinkSettings | None = Field(
        None,
        description="Signed, expiring evidence links served on http_port for case systems (Open311 media_url); "
        "None = off.",
    )

    @property
    def metrics_bind_host(self) -> str:
        """Where /metrics listens: ``metrics_host``, else ``host``."""
        return self.metrics_host or self.host

    max_inflight_per_stream: int = Field(
        16, ge=1, description="Frames of one stream accepted but not yet answered; more wait (flow control)."
    )
    tls: TlsSettings | None = Field(None, description="TLS on the gRPC port; None serves plain text (loopback only).")
    max_streams_per_client: int = Field(
        16, ge=1, description="Open Ingest streams per client (token name, or peer address when auth is off)."
    )
    max_subscribers_per_client: int = Field(
        4, ge=1, description="Open Subscribe calls per client and consumer name; more get RESOURCE_EXHAUSTED."
    )


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    json_format: bool = Field(True, description="One JSON object per log line (False: plain text).")


class ServiceConfig(_Section):
    server: ServerSettings = Field(default_factory=ServerSettings, description="gRPC server.")
    model: ModelSettings = Field(default_factory=ModelSettings, description="Detection model.")
    batching: BatchingSettings = Field(default_factory=BatchingSettings, description="Batcher and fairness.")
    tiling: TilingSettings = Field(
        default_factory=TilingSettings, description="Tiled inference of high-resolution frames, per source."
    )
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="Frame decoding and limits.")
    threads: ThreadSettings = Field(
        default_factory=ThreadSettings, description="Threads for decoding and the model, derived from the cores."
    )
    logging: LoggingSettings = Field(default_factory=LoggingSettings, description="Logs.")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="Bearer tokens and roles (off by default).")
    store: StoreSettings = Field(default_factory=StoreSettings, description="Durable incident store.")
    tracking: TrackerConfig = Field(default_factory=TrackerConfig, description="Per-source tracker.")
    rules: RulesConfig = Field(default_factory=RulesConfig, description="Incident categories and per-source rules.")
    console: ConsoleSettings = Field(
        default_factory=ConsoleSettings, description="Operator console on server.http_port: refresh, basemap."
    )
    hard_negatives: HardNegativeSettings = Field(
        default_factory=HardNegativeSettings,
        description="REJECTED incidents' crops saved as background images for `detector train`.",
    )
    delivery: DeliverySettings = Field(
        default_factory=DeliverySettings,
        description="Connectors delivering events (webhook, MQTT, NATS); none by default.",
    )
    cluster: ClusterSettings = Field(
        default_factory=ClusterSettings,
        description="Replicas sharing one PostgreSQL store: source leases, delivery once per cluster (off).",
    )

    @model_validator(mode="after")
    def _verify(self) -> ServiceConfig:
        verify_auth(self.auth)
        verify_evidence_links(self.server)
        verify_cluster(self.cluster, self.store)
        verify_engine_batch(self.model, self.batching)
        return self


def verify_engine_batch(model: ModelSettings, batching: BatchingSettings) -> None:
    if model.backend == "tensorrt" and batching.max_batch > model.max_batch:
        raise ValueError(
            f"batching.max_batch ({batching.max_batch}) exceeds model.max_batch ({model.max_batch}), the largest "
            "batch the TensorRT engine is built for; raise model.max_batch (the engine is rebuilt once for it) or "
            "lower batching.max_batch"
        )


def verify_cluster(c: ClusterSettings, store: StoreSettings) -> None:
    if c.enabled and store.backend != "postgres":
        raise ValueError(
            f"cluster.enabled needs store.backend: postgres (got {store.backend!r}): the replicas share their "
            "event log and leases through one PostgreSQL database; set store.backend=postgres and store.url"
        )


def verify_evidence_links(s: ServerSettings) -> None:
    if s.evidence_links is not None and not s.http_port:
        raise ValueError("server.evidence_links needs server.http_port: the links are served there")


def verify_auth(a: AuthSettings) -> None:
    if a.enabled and not a.tokens:
        raise ValueError("auth.enabled is true but auth.tokens is empty: no caller could connect")
    names = [t.name for t in a.tokens]
    if len(set(names)) != len(names):
        raise ValueError(f"auth.tokens: names must be unique (limits and logs go by name), got {names}")


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Sequence[str] = (),
) -> ServiceConfig:
    """Merge defaults < file < environment < ``section.key=value`` overrides, then validate."""
    data: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}  # where each key came from, named in error messages
    if path is not None:
        data = read_yaml_mapping(path, "config file")
        _resolve_relative_paths(data, path.parent)
        _record_origins(data, (), f"config file {path}", origins)
    env = os.environ if environ is None else environ
    for key, value in sorted(env.items()):
        if key.startswith(ENV_PREFIX):
            dotted = key[len(ENV_PREFIX) :].lower().replace("__", ".")
            _set_dotted(data, dotted, _scalar(value, key), origin=f"environment variable {key}")
            _record_origin(dotted, f"environment variable {key}", origins)
    for item in overrides:
        dotted, sep, value = item.partition("=")
        if not sep or not dotted.strip():
            raise ConfigError(f"--set expects section.key=value, got {item!r}")
        _set_dotted(data, dotted.strip(), _scalar(value, f"--set {item}"), origin=f"--set {item}")
        _record_origin(dotted.strip(), f"--set {dotted.strip()}=...", origins)
    try:
        return ServiceConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origins)) from None


def _record_origins(node: Any, prefix: tuple[str, ...], origin: str, origins: dict[tuple[str, ...], str]) -> None:
    if isinstance(node, dict):
        for key, child in node.items():
            origins[(*prefix, str(key))] = origin
            _record_origins(child, (*prefix, str(key)), origin, origins)


def _record_origin(dotted: str, origin: str, origins: dict[tuple[str, ...], str]) -> None:
    """A later layer replaces the key and everything under it."""
    path = tuple(dotted.split("."))
    for key in [k for k in origins if k[: len(path)] == path]:
        del origins[key]
    origins[path] = origin


def _resolve_relative_paths(data: dict[str, Any], base: Path) -> None:
    server = data.get("server")
    tls = server.get("tls") if isinstance(server, dict) else None
    for node, key in (
        (data.get("model"), "weights"),
        (data.get("model"), "export_dir"),
        (data.get("store"), "data_dir"),
        (data.get("hard_negatives"), "dir"),
        (data.get("ingest"), "upload_dir"),
        (data.get("console"), "basemap_image"),
        (tls, "cert_file"),
        (tls, "key_file"),
        (tls, "client_ca_file"),
    ):
        if isinstance(node, dict) and isinstance(node.get(key), str):
            path = Path(node[key])
            node[key] = str(path if path.is_absolute() else (base / path).resolve())


def _scalar(text: str, origin: str) -> Any:
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: cannot parse value {text!r}: {exc}") from None


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, origin: str) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{origin}: {part!r} is a value, not a section")
        node = child
    node[leaf] = value


def _describe(exc: ValidationError, origins: Mapping[tuple[str, ...], str] | None = None) -> str:
    return describe_invalid(exc, ServiceConfig, origins)
