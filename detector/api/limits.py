"""Per-caller limits of the gRPC edge: open calls per client, and frames per second per source.

Both answer with a message that names the setting to change; the servicers turn it into RESOURCE_EXHAUSTED
(a whole call) or a RATE_LIMITED frame error (one frame).
"""

from __future__ import annotations

from collections import Counter

from detector.api.auth import ANONYMOUS_ADMIN, current_principal


def client_key(peer: str) -> str:
    """Who a call counts against: the token's name, or the peer's address (without the port) when auth is off.

    Example: ``client_key("ipv4:10.0.0.7:51234") == "ipv4:10.0.0.7"`` while auth is off.
    """
    principal = current_principal()
    if principal is not ANONYMOUS_ADMIN:
        return f"token:{principal.name}"
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6") and ":" in address:
        return f"{kind}:{address.rsplit(':', 1)[0]}"
    return peer


class CallSlots:
    """At most ``limit`` open calls of one kind per client."""

    def __init__(self, limit: int, what: str, setting: str) -> None:
        self._limit = limit
        self._what = what
        self._setting = setting
        self._open: Counter[str] = Counter()

    def acquire(self, client: str) -> str | None:
        """None when the call may go on (call ``release`` when it ends); otherwise the refusal message."""
        if self._open[client] >= self._limit:
            return (
                f"{client} already has {self._open[client]} open {self._what}, the most allowed "
                f"({self._setting}); close one or raise the limit"
            )
        self._open[client] += 1
        return None

    def release(self, client: str) -> None:
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]

    def open_calls(self, client: str) -> int:
        return self._open[client]
