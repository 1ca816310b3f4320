"""Blocking gRPC health checks of a service on loopback, for tools that start `detector serve` and wait for it
(the benchmarks, the soak).

Example::

    with HealthProbe("127.0.0.1:50051") as probe:
        while not probe.serving():
            time.sleep(0.25)
"""

from __future__ import annotations

from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


class HealthProbe:
    """One plain-text channel to ``target``; ``serving()`` asks the overall health (or one ``service``'s)."""

    def __init__(self, target: str) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = health_pb2_grpc.HealthStub(self._channel)

    def serving(self, timeout_s: float = 1.0, service: str = "") -> bool:
        """True when the service answers SERVING within ``timeout_s``; False when it answers anything else
        (NOT_SERVING while the model loads or while draining) or does not answer."""
        try:
            response = self._stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.RpcError:
            return False
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> HealthProbe:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
