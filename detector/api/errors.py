"""What a client tells its user when a call fails: gRPC's own words plus, where gRPC's core answered with its
generic text, the setting behind it."""

from __future__ import annotations

import re

import grpc

_TOO_LARGE = re.compile(r"(Sent|Received) message larger than max \((\d+) vs\. (\d+)\)")


def explain_rpc_error(exc: grpc.aio.AioRpcError | grpc.RpcError) -> str:
    """``RESOURCE_EXHAUSTED: <details>``, and for a message over the size limit which side refused it and the
    setting to change: ``server.max_message_bytes`` on the service (the client's own limit is the same default)."""
    code = exc.code() if isinstance(exc, grpc.aio.AioRpcError | grpc.Call) else None
    details = (exc.details() if isinstance(exc, grpc.aio.AioRpcError | grpc.Call) else None) or str(exc)
    text = f"{code.name if code is not None else 'error'}: {details}"
    match = _TOO_LARGE.search(details)
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED and match is not None:
        size, limit = int(match.group(2)), int(match.group(3))
        text += (
            f" (a message of {size} bytes is over the limit of {limit} bytes: the service's limit is its setting "
            "server.max_message_bytes; raise it there, or send smaller frames, e.g. JPEG instead of raw pixels)"
        )
    return text
