"""The gRPC side of the service: the server with its options and auth, the services registered on it, health,
reflection (both protocol versions, listing every registered service) and the bound port.

:mod:`detector.server` composes the service from its stages and calls this module for everything gRPC; no
module outside ``detector/api/`` touches generated proto code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as reflection_v1alpha_pb2

from detector.api._gen.streetwatch.v1 import incidents_pb2, incidents_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from detector.api.auth import AuthInterceptor, AuthSettings
from detector.api.client import is_loopback_host
from detector.api.incidents_service import IncidentsService
from detector.api.ingest_service import IngestService
from detector.config import ServerSettings

log = logging.getLogger(__name__)

INGEST_SERVICE = ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name
INCIDENTS_SERVICE = incidents_pb2.DESCRIPTOR.services_by_name["Incidents"].full_name
HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
REFLECTION_V1ALPHA = reflection.SERVICE_NAME
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class GrpcServer:
    """A ``grpc.aio.Server`` that remembers which services it registered, so that reflection lists them all."""

    def __init__(
        self, settings: ServerSettings, auth: AuthSettings, on_refused: Callable[[str, grpc.StatusCode], None]
    ):
        options = [
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        self.settings = settings
        self.server = grpc.aio.server(options=options, interceptors=[AuthInterceptor(auth, on_refused)])
        self.services: list[str] = []
        self._incidents: list[IncidentsService] = []
        self.health = health.aio.HealthServicer()
        self._add(HEALTH_SERVICE, health_pb2_grpc.add_HealthServicer_to_server, self.health)

    def add_ingest(self, servicer: IngestService) -> None:
        self._add(INGEST_SERVICE, ingest_pb2_grpc.add_IngestServicer_to_server, servicer)

    def add_incidents(self, servicer: IncidentsService) -> None:
        self._add(INCIDENTS_SERVICE, incidents_pb2_grpc.add_IncidentsServicer_to_server, servicer)
        self._incidents.append(servicer)

    async def stop(self, grace: float | None) -> None:
        """Refuse new calls and let open ones finish for ``grace`` seconds; Subscribe calls, which would wait for
        events forever, end at once with UNAVAILABLE (their clients resubscribe from their committed offset)."""
        for servicer in self._incidents:
            servicer.close_streams()
        await self.server.stop(grace)

    def _add(self, name: str, add: Callable[[Any, grpc.aio.Server], None], servicer: object) -> None:
        add(servicer, self.server)
        self.services.append(name)

    def enable_reflection(self) -> None:
        """Serve reflection under v1alpha and v1 (the same messages on the wire), listing every service
        registered so far and both reflection services."""
        names = (*self.services, REFLECTION_V1ALPHA, REFLECTION_V1)
        servicer = reflection.aio.ReflectionServicer(names)
        reflection.enable_server_reflection(names, self.server)
        _register_v1_descriptor()
        handler = grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_v1alpha_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_v1alpha_pb2.ServerReflectionResponse.SerializeToString,
        )
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(REFLECTION_V1, {"ServerReflectionInfo": handler}),)
        )
        self.services.extend((REFLECTION_V1ALPHA, REFLECTION_V1))

    async def set_health(self, serving: bool, names: tuple[str, ...] = ("", INGEST_SERVICE)) -> None:
        for name in names:
            await self.health.set(name, SERVING if serving else NOT_SERVING)

    def bind(self) -> int:
        """Listen on ``host:port`` (TLS when configured); returns the bound port."""
        s = self.settings
        address = f"{s.host}:{s.port}"
        if s.tls is None:
            if not is_loopback_host(s.host):
                log.warning(
                    "listening on %s WITHOUT TLS: tokens, frames and incidents cross the network in plain text; "
                    "set server.tls",
                    s.host,
                )
            port = int(self.server.add_insecure_port(address))
        else:
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
            port = int(self.server.add_secure_port(address, credentials))
        if port == 0:
            raise OSError(f"cannot listen on {s.host}:{s.port}")
        return port


_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _register_v1_descriptor() -> None:
    """Put ``grpc.reflection.v1`` in the default descriptor pool (the v1alpha file under the v1 package, as the
    two protocols are identical but for their names), so that reflection can describe its own v1 service."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_v1alpha_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
    proto.name, proto.package = _V1_FILE, "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(old, new)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    pool.Add(proto)
    message_factory.GetMessages([proto], pool=pool)
