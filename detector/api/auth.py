"""Who may call what: bearer tokens with roles, checked by a gRPC server interceptor.

Tokens are configured as SHA-256 hashes (``sha256:<hex>``), never in plain text; a token is a random secret of
at least 128 bits (``detector auth new-token`` makes one), so a fast hash is enough. Roles:

- ``ingest``: Ingest RPCs, for the source IDs listed on the token (``*`` for any);
- ``subscribe``: Incidents RPCs (events, incidents, evidence); it may Ack, and subscribe from the committed
  offset of, only the consumers listed on the token (``consumers``; empty: the consumer named like the token;
  ``*`` for any), checked by the servicer through :func:`require_consumer`;
- ``case``: ``Incidents.UpdateCase``, the case system's verdict on an incident (``subscribe`` may not give one);
- ``metrics``: scraping the Prometheus ``/metrics`` listener (see :mod:`detector.api.metrics_http`);
- ``admin``: everything.

A missing or unknown token gets UNAUTHENTICATED; a known token without the role gets PERMISSION_DENIED. A frame
for a source an ingest token does not list gets the per-frame error PERMISSION_DENIED (checked per frame by the
servicer through :func:`require_source`); the stream goes on. Health and reflection can be left open by
configuration.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["ingest", "subscribe", "case", "metrics", "admin"]
_HASH_PREFIX = "sha256:"


class TokenSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Who holds the token (a gateway, a drone, a case system); shown in logs.")
    sha256: str = Field(description="'sha256:<64 hex>' of the token; make one with `detector auth new-token`.")
    roles: list[Role] = Field(min_length=1, description="Roles: ingest, subscribe, case, metrics, admin.")
    sources: list[str] = Field(
        default_factory=list, description="Source IDs an ingest token may send ('*' = any). Empty = none."
    )
    consumers: list[str] = Field(
        default_factory=list,
        description="Consumer names a subscribe token may Ack and resume ('*' = any). Empty = the token's name.",
    )

    @field_validator("sha256")
    @classmethod
    def _hashed(cls, value: str) -> str:
        digest = value.removeprefix(_HASH_PREFIX)
        if not value.startswith(_HASH_PREFIX) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("must be 'sha256:' and 64 lowercase hex digits (a hash, never the token itself)")
        return value


class AuthSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="Require a bearer token on every call (except open services).")
    tokens: list[TokenSettings] = Field(default_factory=list, description="Accepted tokens, hashed, with roles.")
    open_health: bool = Field(True, description="Leave grpc.health.v1.Health callable without a token.")
    open_reflection: bool = Field(False, description="Leave server reflection callable without a token.")
    open_metrics: bool = Field(False, description="Leave the /metrics listener readable without a metrics token.")


def hash_token(token: str) -> str:
    return _HASH_PREFIX + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token and the hash to put in the config."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


@dataclass(frozen=True)
class Principal:
    name: str
    roles: frozenset[str]
    sources: frozenset[str]
    consumers: frozenset[str] = frozenset({"*"})

    def may_send(self, source_id: str) -> bool:
        return "admin" in self.roles or "*" in self.sources or source_id in self.sources

    def may_consume(self, consumer: str) -> bool:
        return "admin" in self.roles or "*" in self.consumers or consumer in self.consumers


ANONYMOUS_ADMIN = Principal("auth-disabled", frozenset({"admin"}), frozenset({"*"}))
_principal: contextvars.ContextVar[Principal] = contextvars.ContextVar("principal", default=ANONYMOUS_ADMIN)


def current_principal() -> Principal:
    """The caller of the RPC being handled (everyone is admin while auth is off)."""
    return _principal.get()


def require_source(source_id: str) -> str | None:
    """None when the caller may send frames for ``source_id``; otherwise the refusal message."""
    principal = current_principal()
    if principal.may_send(source_id):
        return None
    return f"token {principal.name!r} may not send frames for source {source_id!r}"


def require_consumer(consumer: str) -> str | None:
    """None when the caller may Ack (and resume from the offset of) ``consumer``; otherwise the refusal."""
    principal = current_principal()
    if principal.may_consume(consumer):
        return None
    allowed = ", ".join(sorted(principal.consumers))
    return (
        f"token {principal.name!r} may not ack or read the offset of consumer {consumer!r} (it is bound to: "
        f"{allowed}; list consumers on the token in auth.tokens)"
    )


_SERVICE_ROLE = {
    "streetwatch.v1.Ingest": "ingest",
    "streetwatch.v1.Incidents": "subscribe",
}
# Methods that need another role than their service's: a verdict changes an incident, reading does not.
_METHOD_ROLE = {"/streetwatch.v1.Incidents/UpdateCase": "case"}
_HEALTH = "grpc.health.v1.Health"
_REFLECTION = ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, settings: AuthSettings, on_refused: Callable[[str, grpc.StatusCode], None] | None = None):
        self._settings = settings
        self._by_hash = {
            t.sha256: Principal(t.name, frozenset(t.roles), frozenset(t.sources), frozenset(t.consumers or [t.name]))
            for t in settings.tokens
        }
        self._on_refused = on_refused

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or not self._settings.enabled:
            return handler
        service = details.method.lstrip("/").split("/")[0]
        if (service == _HEALTH and self._settings.open_health) or (
            service in _REFLECTION and self._settings.open_reflection
        ):
            return handler
        principal = self._authenticate(details.invocation_metadata)
        if principal is None:
            return self._refuse(handler, details.method, grpc.StatusCode.UNAUTHENTICATED, _NO_TOKEN)
        needed = _METHOD_ROLE.get(details.method) or _SERVICE_ROLE.get(service, "admin")
        if needed not in principal.roles and "admin" not in principal.roles:
            message = f"token {principal.name!r} lacks the {needed!r} role needed for {details.method}"
            return self._refuse(handler, details.method, grpc.StatusCode.PERMISSION_DENIED, message)
        return _with_principal(handler, principal)

    def _authenticate(self, metadata: Sequence[tuple[str, str | bytes]] | None) -> Principal | None:
        for key, value in metadata or ():
            if key != "authorization" or not isinstance(value, str) or not value.startswith("Bearer "):
                continue
            offered = hash_token(value.removeprefix("Bearer ").strip())
            for known, principal in self._by_hash.items():
                if hmac.compare_digest(known, offered):
                    return principal
        return None

    def _refuse(
        self, handler: grpc.RpcMethodHandler, method: str, code: grpc.StatusCode, message: str
    ) -> grpc.RpcMethodHandler:
        if self._on_refused is not None:
            self._on_refused(method, code)

        async def abort(_request: Any, context: grpc.aio.ServicerContext) -> None:
            await context.abort(code, message)

        return _replace_behaviour(handler, abort)


_NO_TOKEN = (
    "a valid token is required: pass --token or set STREETWATCH_TOKEN (other clients: gRPC metadata "
    "'authorization: Bearer <token>')"
)


def _with_principal(handler: grpc.RpcMethodHandler, principal: Principal) -> grpc.RpcMethodHandler:
    original = _behaviour(handler)
    if handler.response_streaming:

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            token = _principal.set(principal)
            try:
                async for response in original(request, context):
                    yield response
            finally:
                _principal.reset(token)

        return _replace_behaviour(handler, streaming)

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        token = _principal.set(principal)
        try:
            return await original(request, context)
        finally:
            _principal.reset(token)

    return _replace_behaviour(handler, unary)


def _behaviour(handler: grpc.RpcMethodHandler) -> Any:
    return handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream


def _replace_behaviour(handler: grpc.RpcMethodHandler, behaviour: Any) -> grpc.RpcMethodHandler:
    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
