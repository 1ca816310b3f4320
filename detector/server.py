"""Wiring of `detector serve`: engine, inference core, gRPC services, health, metrics and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from detector.api.auth import AuthInterceptor
from detector.api.client import is_loopback_host
from detector.api.incidents_service import IncidentsService
from detector.api.ingest_service import IngestService, IngestSettings
from detector.api.store_health import StoreHealth
from detector.config import ServerSettings, ServiceConfig
from detector.incidents import IncidentStage
from detector.inference.batcher import BatcherSettings, BatchRecord, InferenceCore
from detector.inference.engine import Engine, EngineSettings, build_engine
from detector.inference.tiling import TilingPolicy
from detector.ingest.decode import ImageLimits
from detector.metrics import ServiceMetrics
from detector.rules import RulesEngine, SourceLocator
from detector.store.base import IncidentStore, open_store
from detector.store.config import StoreConfig
from detector.store.errors import StoreError
from detector.tracking import TrackerPool

log = logging.getLogger(__name__)

INGEST_SERVICE = ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name


class ServiceStatus(Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"
    STOPPED = "stopped"


def resolved_backend(backend: str, device: str) -> str:
    """``auto``: onnxruntime on the CPU (the forward pass is the service's bottleneck there, and onnxruntime runs
    it 1.5-1.7x faster with the same boxes: benchmarks/results/cpu-*), torch on CUDA."""
    if backend != "auto":
        return backend
    if device == "cpu":
        return "onnx"
    if device.startswith("cuda"):
        return "torch"
    import torch

    return "torch" if torch.cuda.is_available() else "onnx"


def engine_from_config(config: ServiceConfig) -> Engine:
    m = config.model
    return build_engine(
        resolved_backend(m.backend, m.device),
        EngineSettings(
            weights=m.weights,
            device=m.device,
            imgsz=m.imgsz,
            conf=m.conf,
            iou=m.iou,
            max_det=m.max_det,
            half=m.half,
            export_dir=m.export_dir,
        ),
    )


@dataclass
class Service:
    """A running service. ``port`` is the bound port (useful when the config asked for 0)."""

    config: ServiceConfig
    server: grpc.aio.Server
    core: InferenceCore
    health: health.aio.HealthServicer
    metrics: ServiceMetrics
    decoder: ThreadPoolExecutor
    port: int
    store: IncidentStore
    incidents: IncidentStage
    store_health: StoreHealth
    status: ServiceStatus = ServiceStatus.STARTING
    _maintenance: asyncio.Task[None] | None = None
    _retry: asyncio.Task[None] | None = None
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)

    async def _set_status(self, status: ServiceStatus) -> None:
        self.status = status
        serving = status is ServiceStatus.SERVING
        value = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", INGEST_SERVICE):
            await self.health.set(name, value)
        await self.store_health.set_serving(serving)
        self.metrics.serving.set(1 if serving else 0)
        log.info("status %s", status.value, extra={"status": status.value})

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: NOT_SERVING, refuse new calls, let queued frames finish, then stop."""
        if self.status in (ServiceStatus.DRAINING, ServiceStatus.STOPPED):
            await self._stopped.wait()
            return
        grace = self.config.server.grace_s if grace_s is None else grace_s
        await self._set_status(ServiceStatus.DRAINING)
        drained = await asyncio.to_thread(self.core.drain, grace)
        await self.server.stop(grace)
        self.core.stop()
        for task in (self._maintenance, self._retry):
            if task is not None:
                task.cancel()
        await self.incidents.flush()
        self.store.close()
        self.decoder.shutdown(wait=False)
        self.status = ServiceStatus.STOPPED
        log.info("stopped", extra={"drained": drained})
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


async def _maintain(service: Service) -> None:
    """Retention and integrity checks, at a low rate."""
    settings = service.config.store
    while True:
        await asyncio.sleep(settings.maintenance_interval_s)
        await service.incidents.flush()
        try:
            report = await asyncio.to_thread(
                service.store.apply_retention, settings.retention_max_age_s, settings.retention_max_bytes
            )
        except StoreError as exc:
            log.error("store retention failed: %s", exc)
            report = None
        problems = await _integrity_problems(service.store)
        await service.store_health.set_problems(problems)
        log.info("store maintenance", extra={"retention": str(report), "problems": problems})


async def _retry_backlog(service: Service) -> None:
    """While events wait in memory for the store (disk full, locked), offer them again every few seconds, so
    that they are stored in order as soon as it can take them, without waiting for the next event."""
    while True:
        await asyncio.sleep(service.config.store.retry_interval_s)
        if service.incidents.backlog:
            await service.incidents.flush()


async def _integrity_problems(store: IncidentStore) -> list[str]:
    try:
        return await asyncio.to_thread(store.integrity_check)
    except StoreError as exc:
        return [f"database: the integrity check itself failed: {exc}"]


def _bind(server: grpc.aio.Server, s: ServerSettings) -> int:
    address = f"{s.host}:{s.port}"
    if s.tls is None:
        if not is_loopback_host(s.host):
            log.warning(
                "listening on %s WITHOUT TLS: tokens, frames and incidents cross the network in plain text; "
                "set server.tls",
                s.host,
            )
        return int(server.add_insecure_port(address))
    try:
        key = s.tls.key_file.read_bytes()
        chain = s.tls.cert_file.read_bytes()
        client_ca = None if s.tls.client_ca_file is None else s.tls.client_ca_file.read_bytes()
    except OSError as exc:
        raise OSError(f"server.tls: cannot read {exc.filename}: {exc.strerror}") from exc
    credentials = grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )
    log.info("TLS on", extra={"mtls": client_ca is not None})
    return int(server.add_secure_port(address, credentials))


def _locator(config: ServiceConfig) -> SourceLocator:
    """Fit every fixed camera's ground calibration now and log its reprojection error in metres."""
    locator = SourceLocator(config.rules)
    for source_id, report in locator.calibration_reports().items():
        log.info(
            "ground calibration",
            extra={
                "source_id": source_id,
                "rms_error_m": round(report.rms_error_m, 3),
                "max_error_m": round(report.max_error_m, 3),
                "outliers": list(report.outliers),
                "warnings": list(report.warnings),
            },
        )
    return locator


async def start_service(config: ServiceConfig, engine: Engine | None = None) -> Service:
    """Bind the port, load and warm the model, then report SERVING. Health says NOT_SERVING until then."""
    s = config.server
    options = [
        ("grpc.max_receive_message_length", s.max_message_bytes),
        ("grpc.max_send_message_length", s.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    metrics = ServiceMetrics()
    auth = config.auth
    if not auth.enabled:
        log.warning(
            "authentication is OFF: anyone who reaches %s:%s may send frames and read incidents; "
            "set auth.enabled and auth.tokens for anything but a loopback demo",
            s.host,
            s.port,
        )

    def refused(method: str, code: grpc.StatusCode) -> None:
        metrics.calls_refused.labels(code.name).inc()
        log.warning("call refused", extra={"method": method, "code": code.name})

    server = grpc.aio.server(options=options, interceptors=[AuthInterceptor(auth, refused)])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", INGEST_SERVICE):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    if s.reflection:
        reflection.enable_server_reflection(
            (
                INGEST_SERVICE,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ),
            server,
        )
    decoder = ThreadPoolExecutor(config.ingest.decode_threads, thread_name_prefix="decode")
    ingest_settings = IngestSettings(
        limits=ImageLimits(config.ingest.max_pixels, config.ingest.max_side_px),
        allowed_sources=frozenset(config.ingest.sources),
        max_inflight_per_stream=s.max_inflight_per_stream,
        max_video_bytes=config.ingest.max_video_bytes,
        max_srt_bytes=config.ingest.max_srt_bytes,
        upload_dir=config.ingest.upload_dir,
        max_fps_per_source=config.ingest.max_fps_per_source,
        max_streams_per_client=s.max_streams_per_client,
    )
    ingest = IngestService(ingest_settings, metrics, decoder)
    ingest_pb2_grpc.add_IngestServicer_to_server(ingest, server)
    store_settings = StoreConfig(
        backend=config.store.backend,
        data_dir=config.store.data_dir,
        evidence_spot_checks=config.store.integrity_spot_checks,
    )
    store = await asyncio.to_thread(open_store, store_settings)
    store_health = StoreHealth(health_servicer, metrics)
    await store_health.set_serving(False)
    incidents_pb2_grpc.add_IncidentsServicer_to_server(
        IncidentsService(store, max_subscribers_per_client=s.max_subscribers_per_client), server
    )
    try:
        port = _bind(server, s)
    except BaseException:
        decoder.shutdown(wait=False)
        store.close()
        raise
    if port == 0:
        raise OSError(f"cannot listen on {s.host}:{s.port}")
    await server.start()  # health answers NOT_SERVING while the model loads
    log.info("listening", extra={"address": f"{s.host}:{port}"})

    try:
        if engine is None:
            engine = await asyncio.to_thread(engine_from_config, config)
        await asyncio.to_thread(engine.warmup, config.model.warmup_batch_sizes)
        locator = await asyncio.to_thread(_locator, config)
        rules = RulesEngine(config.rules, engine.class_names, model_version=engine.version, locate=locator.locate)
        stage = IncidentStage(TrackerPool(config.tracking), rules, store, on_writable=store_health.set_writable)
        await _restore(stage, store, store_health, config.store.check_on_start)
    except BaseException:
        await server.stop(0)
        decoder.shutdown(wait=False)
        store.close()
        raise
    log.info(
        "model ready",
        extra={
            "model": engine.name,
            "version": engine.version,
            "device": engine.device,
            "backend": engine.backend,
        },
    )

    def on_batch(record: BatchRecord) -> None:
        metrics.batch_size.observe(record.size)
        metrics.batch_sources.observe(record.sources)
        metrics.stage_ms.labels("preprocess").observe(record.timings.preprocess_ms)
        metrics.stage_ms.labels("forward").observe(record.timings.forward_ms)
        metrics.stage_ms.labels("postprocess").observe(record.timings.postprocess_ms)

    b = config.batching
    core = InferenceCore(
        engine,
        BatcherSettings(b.max_batch, b.max_wait_ms, b.max_per_source, b.queue_size),
        on_batch=on_batch,
        tiling=TilingPolicy(config.tiling, config.model.imgsz),
    )
    metrics.queue_depth.set_function(lambda: sum(core.queue_depths().values()))
    metrics.store_backlog.set_function(lambda: stage.backlog)
    metrics.events_lost.set_function(lambda: stage.events_lost)
    loaded = engine
    if loaded.device_memory_bytes() is not None:
        metrics.device_memory.set_function(lambda: loaded.device_memory_bytes() or 0.0)
    ingest.attach(core, [stage])
    if s.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(s.metrics_port, addr=s.host, registry=metrics.registry)
    service = Service(config, server, core, health_servicer, metrics, decoder, port, store, stage, store_health)
    service._maintenance = asyncio.create_task(_maintain(service))
    service._retry = asyncio.create_task(_retry_backlog(service))
    await service._set_status(ServiceStatus.SERVING)
    return service


async def _restore(stage: IncidentStage, store: IncidentStore, store_health: StoreHealth, check: bool) -> None:
    """Check the store, then continue the open incidents. A damaged database is reported (log, metric, Incidents
    NOT_SERVING) but does not stop the service: detections are still answered, and new events are appended
    if the database takes them. Incidents that cannot be restored from it are opened afresh when seen again."""
    if check:
        await store_health.set_problems(await _integrity_problems(store))
    try:
        restored = await asyncio.to_thread(stage.restore)
        last_sequence = await asyncio.to_thread(store.last_sequence)
    except StoreError as exc:
        await store_health.set_problems([*store_health.problems, f"database: cannot restore open incidents: {exc}"])
        return
    log.info("incidents restored", extra={"open_incidents": restored, "last_sequence": last_sequence})


async def serve_forever(config: ServiceConfig) -> None:
    """Run until SIGTERM or SIGINT, then drain gracefully."""
    service = await start_service(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: asyncio.ensure_future(service.stop()))
    await service.wait_stopped()
