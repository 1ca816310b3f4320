"""Wiring of `detector serve`: the frame pipeline from its stages, the gRPC side, health, metrics and graceful
shutdown. Each stage is built from its own section of the settings, as it is (see ``detector serve
--print-config``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

import grpc

from detector.api.console.health import SourceHealth
from detector.api.console.http import ConsoleServer
from detector.api.evidence_http import EvidenceLinks
from detector.api.grpc_server import GrpcServer
from detector.api.incidents_service import IncidentsService
from detector.api.ingest_service import IngestService
from detector.api.metrics_http import MetricsHttp, start_metrics_http
from detector.api.store_health import StoreHealth
from detector.cluster.leases import LeaseTable
from detector.cluster.ownership import SourceOwnership
from detector.cluster.replica import Replica
from detector.config import ServiceConfig
from detector.delivery.runner import DeliveryRunner
from detector.geo.stage import GeoStage
from detector.incidents import EventWriter, EvidenceStage, SharedIncidents
from detector.incidents.feedback_watch import FeedbackWatcher
from detector.incidents.hard_negatives import HardNegatives
from detector.inference.batcher import BatchRecord, InferenceCore
from detector.inference.engine import Engine, engine_for
from detector.inference.tiling import TilingPolicy
from detector.ingest.admission import Admission
from detector.ingest.decoder import FrameDecoder
from detector.ingest.health import StreamHealth
from detector.metrics import ServiceMetrics
from detector.pipeline import FramePipeline
from detector.pipeline.pipeline import Observer
from detector.ports import check_ports, service_ports
from detector.rules import RulesEngine
from detector.rules.zones import zone_summaries
from detector.store.base import IncidentStore, open_store
from detector.store.errors import StoreError
from detector.threads import ThreadBudget, apply_process_threads, plan_threads
from detector.tracking import TrackerPool

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


class ServiceStatus(Enum):
    STARTING = "starting"
    SERVING = "serving"
    DRAINING = "draining"
    STOPPED = "stopped"


@dataclass
class Service:
    """A running service. ``port`` is the bound port (useful when the config asked for 0)."""

    config: ServiceConfig
    grpc: GrpcServer
    pipeline: FramePipeline
    metrics: ServiceMetrics
    decoder: ThreadPoolExecutor
    port: int
    store: IncidentStore
    store_health: StoreHealth
    status: ServiceStatus = ServiceStatus.STARTING
    _maintenance: asyncio.Task[None] | None = None
    _retry: asyncio.Task[None] | None = None
    _stream_watch: asyncio.Task[None] | None = None
    _metrics_http: MetricsHttp | None = None
    console: ConsoleServer | None = None  # the operator console on server.http_port (console.port: bound)
    delivery: DeliveryRunner | None = None  # the connectors of the delivery section (detector/delivery/)
    feedback: FeedbackWatcher | None = None  # the case system's verdicts, read from the log, taught to the rules
    replica: Replica | None = None  # cluster.enabled: this replica's leases (sources, delivery)
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def core(self) -> InferenceCore:
        return self.pipeline.core

    @property
    def writer(self) -> EventWriter:
        return self.pipeline.writer

    async def _set_status(self, status: ServiceStatus) -> None:
        self.status = status
        serving = status is ServiceStatus.SERVING
        await self.grpc.set_health(serving)
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
        if self._stream_watch is not None:  # draining stops every stream: that is no outage
            self._stream_watch.cancel()
        drained = await asyncio.to_thread(self.core.drain, grace)
        await self.grpc.stop(grace)
        if self.console is not None:
            await self.console.stop()
        self.core.stop()
        if self._metrics_http is not None:
            await asyncio.to_thread(self._metrics_http.stop)
        for task in (self._maintenance, self._retry):
            if task is not None:
                task.cancel()
        if self.replica is not None:  # the delivery runs only while its lease is held: stopped here
            await self.replica.stop_singletons()
        if self.delivery is not None:
            await self.delivery.stop()
        if self.feedback is not None:
            await self.feedback.stop()
        await self.writer.flush()
        if self.replica is not None:  # after the last events are stored: the next holder resumes from them
            await self.replica.close(release=True)
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
        await service.writer.flush()
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
        if service.writer.backlog:
            await service.writer.flush()


async def _watch_streams(service: Service) -> None:
    """Stream health (``FramePipeline.check_streams``) every ``ingest.health_check_interval_s`` of wall time."""
    while True:
        await asyncio.sleep(service.config.ingest.health_check_interval_s)
        try:
            await service.pipeline.check_streams()
        except Exception:  # one failed check must not end the watch
            log.exception("stream health check failed")


async def _integrity_problems(store: IncidentStore) -> list[str]:
    try:
        return await asyncio.to_thread(store.integrity_check)
    except StoreError as exc:
        return [f"database: the integrity check itself failed: {exc}"]


def _geo_stage(config: ServiceConfig) -> GeoStage:
    """Fit every fixed camera's ground calibration now and log its reprojection error in metres."""
    geo = GeoStage(config.rules)
    for source_id, report in geo.calibration_reports().items():
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
    return geo


def build_pipeline(
    config: ServiceConfig,
    engine: Engine,
    store: IncidentStore,
    decoder: ThreadPoolExecutor,
    metrics: ServiceMetrics,
    on_writable: EventWriter.OnWritable | None = None,
    observers: Sequence[Observer] = (),
    clock: Callable[[], float] = time.monotonic,
    ownership: SourceOwnership | None = None,
) -> FramePipeline:
    """The frame pipeline from its stages, each built from its own settings section as it is. ``clock`` is the
    stream-health monitor's wall clock (seconds; tests inject one); ``ownership``: the source leases of a
    cluster's replica (None: a single service)."""

    def on_batch(record: BatchRecord) -> None:
        metrics.batch_size.observe(record.size)
        metrics.batch_sources.observe(record.sources)
        metrics.stage_ms.labels("preprocess").observe(record.timings.preprocess_ms)
        metrics.stage_ms.labels("forward").observe(record.timings.forward_ms)
        metrics.stage_ms.labels("postprocess").observe(record.timings.postprocess_ms)

    core = InferenceCore(
        engine,
        config.batching,
        on_batch=on_batch,
        tiling=TilingPolicy(config.tiling, engine.imgsz),
        workers=plan_threads(config.threads, engine.device).inference_workers,
    )
    rules = RulesEngine(
        config.rules,
        engine.class_names,
        model_version=engine.version,
        on_suppressed=lambda _source_id, category: metrics.candidates_suppressed.labels(category).inc(),
    )
    return FramePipeline(
        admission=Admission(config.ingest),
        decoder=FrameDecoder(
            config.ingest.limits,
            decoder,
            core.tiling.decode_scale if config.ingest.reduced_decode else None,
            gpu=_decode_device(config, engine),
        ),
        core=core,
        tracker=TrackerPool(config.tracking),
        geo=_geo_stage(config),
        rules=rules,
        evidence=EvidenceStage(store),
        writer=EventWriter(store, config.store.max_backlog_events, on_writable=on_writable),
        metrics=metrics,
        observers=observers,
        stream_health=StreamHealth(config.ingest, clock),
        ownership=ownership,
        shared=SharedIncidents(store, rules),
    )


def _decode_device(config: ServiceConfig, engine: Engine) -> torch.device | None:
    """The CUDA device JPEGs are decoded on (``ingest.decode_device: auto`` and a model on CUDA), else None."""
    if config.ingest.decode_device != "auto" or not engine.device.startswith("cuda"):
        return None
    import torch

    return torch.device(engine.device)


def _thread_budget(config: ServiceConfig) -> ThreadBudget:
    """Plan the thread budget for the model's device, size the process-wide pools, and log it."""
    budget = plan_threads(config.threads, config.model.device)
    apply_process_threads(budget)
    log.info("thread budget", extra=budget.as_log())
    return budget


async def start_service(config: ServiceConfig, engine: Engine | None = None) -> Service:
    """Bind the port, load and warm the model, then report SERVING. Health says NOT_SERVING until then."""
    s = config.server
    check_ports(service_ports(s))  # a port in use is one line naming its setting, before the model loads
    metrics = ServiceMetrics()
    if not config.auth.enabled:
        log.warning(
            "authentication is OFF: anyone who reaches %s:%s may send frames, read incidents and give verdicts; "
            "set auth.enabled and auth.tokens for anything but a loopback demo",
            s.host,
            s.port,
        )

    def refused(method: str, code: grpc.StatusCode) -> None:
        metrics.calls_refused.labels(code.name).inc()
        log.warning("call refused", extra={"method": method, "code": code.name})

    rpc = GrpcServer(s, config.auth, refused)
    await rpc.set_health(False)
    decoder: ThreadPoolExecutor | None = None  # sized by the thread budget, planned once the server answers
    ingest = IngestService(s, config.ingest, metrics)
    rpc.add_ingest(ingest)
    store = await asyncio.to_thread(open_store, config.store)
    store_health = StoreHealth(rpc.health, metrics)
    await store_health.set_serving(False)
    rpc.add_incidents(IncidentsService(store, max_subscribers_per_client=s.max_subscribers_per_client))
    if s.reflection:
        rpc.enable_reflection()
    try:
        port = rpc.bind()
    except BaseException:
        store.close()
        raise
    await rpc.server.start()  # health answers NOT_SERVING while the model loads
    log.info("listening", extra={"address": f"{s.host}:{port}", "services": rpc.services})

    replica = None
    try:
        if config.cluster.enabled:
            replica = await _open_replica(config, port)
        budget = await asyncio.to_thread(_thread_budget, config)  # imports torch: NOT_SERVING meanwhile
        decoder = ThreadPoolExecutor(budget.decode, thread_name_prefix="decode")
        if engine is None:
            engine = await asyncio.to_thread(engine_for, config.model, budget.model_threads())
        await asyncio.to_thread(engine.warmup, config.model.warmup_batch_sizes)
        health = SourceHealth(config.console, config.rules, engine.class_names) if s.http_port else None
        links = EvidenceLinks(s.evidence_links) if s.evidence_links is not None else None
        pipeline = await asyncio.to_thread(
            build_pipeline,
            config,
            engine,
            store,
            decoder,
            metrics,
            store_health.set_writable,
            observers=[
                *([health.observe] if health is not None else []),
                metrics.frame_observer(engine.class_names),
            ],
            ownership=None if replica is None else SourceOwnership(replica),
        )
        await _restore(pipeline, store, store_health, config.store.check_on_start, every_source=replica is None)
        console = None
        if health is not None:  # the operator console (detector/api/console/), read-only, same tokens
            console = ConsoleServer(config.console, config.auth, store, health, s.host, s.http_port, links)
            await console.start()
    except BaseException:
        await rpc.server.stop(0)
        if replica is not None:
            await replica.close(release=False)
        if decoder is not None:
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
            "imgsz": engine.imgsz,
        },
    )
    for line in zone_summaries(config.rules):  # where stalls can open incidents, per source: said, not guessed
        log.info("zones: %s", line)
    core, writer = pipeline.core, pipeline.writer
    metrics.queue_depth.set_function(lambda: sum(core.queue_depths().values()))
    metrics.store_backlog.set_function(lambda: writer.backlog)
    metrics.events_lost.set_function(lambda: writer.events_lost)
    stream_health = pipeline.stream_health
    if stream_health is not None:
        metrics.sources_down.set_function(lambda: len(stream_health.sources_down))
        metrics.sources_degraded.set_function(lambda: len(stream_health.sources_degraded))
    metrics.set_model(engine.name, engine.version, engine.backend, engine.device, engine.imgsz)
    loaded = engine
    if loaded.device_memory_bytes() is not None:
        metrics.device_memory.set_function(lambda: loaded.device_memory_bytes() or 0.0)
    feedback = await _start_feedback(config, store, pipeline.rules)  # before frames: rejected places in force
    ingest.attach(pipeline)
    metrics_http = None
    if s.metrics_port:  # on server.metrics_host, with a metrics token when auth is on (detector/api/metrics_http.py)
        metrics_http = start_metrics_http(s, config.auth, metrics.registry)
        host = metrics_http.host
        url = f"http://{f'[{host}]' if ':' in host else host}:{s.metrics_port}/metrics"
        log.info("metrics at %s", url, extra={"metrics_url": url})
    service = Service(config, rpc, pipeline, metrics, decoder, port, store, store_health)
    service._maintenance = asyncio.create_task(_maintain(service))
    service._retry = asyncio.create_task(_retry_backlog(service))
    service._stream_watch = asyncio.create_task(_watch_streams(service))
    service._metrics_http = metrics_http
    service.console = console
    service.feedback = feedback
    if replica is None:
        service.delivery = await _start_delivery(config, store, rpc, metrics, links)
    else:
        await _start_cluster(service, replica, links)
    await service._set_status(ServiceStatus.SERVING)
    return service


async def _start_delivery(
    config: ServiceConfig,
    store: IncidentStore,
    rpc: GrpcServer,
    metrics: ServiceMetrics,
    links: EvidenceLinks | None = None,
) -> DeliveryRunner | None:
    """The delivery runner, each connector reporting under its own health name ``streetwatch.delivery.<name>``."""
    if not config.delivery.connectors:
        return None

    async def on_health(name: str, serving: bool) -> None:
        await rpc.set_health(serving, names=(f"streetwatch.delivery.{name}",))

    evidence_url = links.evidence_url if links is not None else None
    runner = DeliveryRunner(store, config.delivery, metrics=metrics, on_health=on_health, evidence_url=evidence_url)
    for status in runner.status():
        await on_health(status.name, True)
    await runner.start()
    return runner


async def _open_replica(config: ServiceConfig, port: int) -> Replica:
    """This replica's lease table and names: ``cluster.replica_id`` (default ``<hostname>:<port>``) and
    ``server.advertise_address`` (default ``<server.host>:<port>``), the address refused clients are sent to."""
    s, c = config.server, config.cluster
    address = s.advertise_address or f"{s.host}:{port}"
    replica_id = c.replica_id or f"{socket.gethostname()}:{port}"
    if s.advertise_address is None and s.host in ("0.0.0.0", "::", "[::]"):
        log.warning(
            "server.advertise_address is not set and server.host %s is no address a client can reach: clients "
            "sent to this replica will fail; set server.advertise_address",
            s.host,
        )
    table = await asyncio.to_thread(LeaseTable, config.store.url, c.lease_s / 2)
    log.info("cluster replica", extra={"replica": replica_id, "advertise_address": address, "lease_s": c.lease_s})
    return Replica(table, c, replica_id, address)


async def _start_cluster(service: Service, replica: Replica, links: EvidenceLinks | None) -> None:
    """Renew this replica's leases; forget a source whose lease was lost; run the delivery connectors only while
    this replica holds the ``delivery`` lease (once per cluster)."""
    service.replica = replica
    pipeline, config = service.pipeline, service.config
    ownership = pipeline.ownership

    def lost(resource: str) -> None:
        if ownership is not None and (source_id := ownership.lost(resource)) is not None:
            pipeline.forget(source_id)

    replica.add_loss_listener(lost)
    await replica.start()
    if not config.delivery.connectors:
        return

    async def start_delivery() -> None:
        service.delivery = await _start_delivery(config, service.store, service.grpc, service.metrics, links)

    async def stop_delivery() -> None:
        runner, service.delivery = service.delivery, None
        if runner is not None:
            await runner.stop()

    replica.singleton("delivery", start_delivery, stop_delivery)


async def _start_feedback(config: ServiceConfig, store: IncidentStore, rules: RulesEngine) -> FeedbackWatcher:
    """The feedback watcher, its rejected places rebuilt from the store, following the log from its end."""
    settings = config.hard_negatives
    hard_negatives = None
    if settings.enabled:
        hard_negatives = HardNegatives(store, settings.dir or config.store.data_dir / "hard_negatives")
    watcher = FeedbackWatcher(store, rules, hard_negatives)
    await watcher.start()
    return watcher


async def _restore(
    pipeline: FramePipeline, store: IncidentStore, store_health: StoreHealth, check: bool, every_source: bool = True
) -> None:
    """Check the store, then continue the open incidents. A damaged database is reported (log, metric, Incidents
    NOT_SERVING) but does not stop the service: detections are still answered, and new events are appended
    if the database takes them. Incidents that cannot be restored from it are opened afresh when seen again.
    A cluster's replica (``every_source`` False) continues a source's incidents when it takes its lease instead."""
    if check:
        await store_health.set_problems(await _integrity_problems(store))
    try:
        restored = await asyncio.to_thread(pipeline.restore) if every_source else 0
        last_sequence = await asyncio.to_thread(store.last_sequence)
    except StoreError as exc:
        await store_health.set_problems([*store_health.problems, f"database: cannot restore open incidents: {exc}"])
        return
    log.info("incidents restored", extra={"open_incidents": restored, "last_sequence": last_sequence})


async def serve_forever(config: ServiceConfig) -> None:
    """Run until SIGTERM or SIGINT, then drain gracefully. The handlers are in place before the service starts,
    so a signal that comes as it reports SERVING drains it (it used to kill the process), and one that comes
    while the model loads abandons the start."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.ensure_future(start_service(config))
    signalled = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, signalled}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        log.info("stopped while starting")
        return
    service = starting.result()
    await signalled
    await service.stop()
