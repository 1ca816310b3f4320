"""The case system's client for ``streetwatch.v1.Incidents``: subscribe and ack, look incidents up, fetch
evidence, give the case system's verdict (``update_case``). It speaks internal types only (``IncidentEvent``,
``IncidentRecord``, ``IncidentPage``, bytes); the messages stay in ``detector/api``.

Example::

    async with IncidentsClient("127.0.0.1:50051") as client:
        async with client.subscribe("city-cases") as events:
            async for event in events:
                handle(event)
                await client.ack("city-cases", event.sequence)

What the service refuses comes out as ``grpc.aio.AioRpcError`` with its status (NOT_FOUND for an unknown
incident or evidence, INVALID_ARGUMENT for a bad filter, UNAVAILABLE while it is down).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType

import grpc

from detector.api import incident_convert as convert
from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc
from detector.api.client import DEFAULT_MAX_MESSAGE_BYTES, NO_CREDENTIALS, ChannelSecurity, open_channel
from detector.store.model import IncidentPage, IncidentRecord, IncidentState
from detector.types import CaseState, IncidentEvent, Severity

DEFAULT_PAGE_SIZE = 100  # the service's own default; it allows at most 1000


class Subscription:
    """The events of one Subscribe call, in log order, as ``IncidentEvent``s: iterate it with ``async for``.

    Iteration ends when the service ends the call, after ``idle_timeout_s`` without an event (when set), or
    once ``cancel()`` was called (leaving ``async with`` cancels). An error the service answers with is raised.
    """

    def __init__(self, call: grpc.aio.UnaryStreamCall, idle_timeout_s: float | None) -> None:
        self._call = call
        self._messages: AsyncIterator[ipb.IncidentEvent] = call.__aiter__()
        self._idle_timeout_s = idle_timeout_s
        self._ended = False

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> IncidentEvent:
        if self._ended:
            raise StopAsyncIteration
        try:
            message = await asyncio.wait_for(self._messages.__anext__(), self._idle_timeout_s)
        except StopAsyncIteration:
            self._ended = True
            raise
        except TimeoutError:
            self.cancel()
            raise StopAsyncIteration from None
        except asyncio.CancelledError:
            if self._ended and not _this_task_cancelled():  # the call was cancelled here, not this task
                raise StopAsyncIteration from None
            raise
        except grpc.aio.AioRpcError as exc:
            if self._ended and exc.code() == grpc.StatusCode.CANCELLED:
                raise StopAsyncIteration from None
            raise
        return convert.event_from_proto(message)

    def cancel(self) -> None:
        """End the call; a pending or later ``__anext__`` ends the iteration."""
        self._ended = True
        self._call.cancel()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cancel()


def _this_task_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class IncidentsClient:
    """One channel to the service's Incidents API (opened with ``open_channel``: TLS and a token when given)."""

    def __init__(
        self,
        target: str,
        security: ChannelSecurity = NO_CREDENTIALS,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self._channel = open_channel(target, security, max_message_bytes)
        self._stub = incidents_pb2_grpc.IncidentsStub(self._channel)

    async def __aenter__(self) -> IncidentsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    def subscribe(
        self,
        consumer: str,
        after_sequence: int | None = None,
        *,
        categories: Iterable[str] = (),
        source_ids: Iterable[str] = (),
        min_severity: Severity | None = None,
        idle_timeout_s: float | None = None,
    ) -> Subscription:
        """Follow the event log as ``consumer``: from after ``after_sequence``, or (None) after the consumer's
        committed offset; then live. Only events of the given categories and sources (empty: all) at or above
        ``min_severity`` come. Delivery is at least once: de-duplicate on ``event_id`` or ``sequence``."""
        request = ipb.SubscribeRequest(
            consumer=consumer,
            categories=list(categories),
            source_ids=list(source_ids),
            min_severity="" if min_severity is None else Severity(min_severity).value,
        )
        if after_sequence is not None:
            request.after_sequence = after_sequence
        return Subscription(self._stub.Subscribe(request), idle_timeout_s)

    async def ack(self, consumer: str, sequence: int) -> int:
        """Commit ``consumer``'s offset: every event up to ``sequence`` is handled. Returns the committed
        sequence, which never moves backwards (an older ack leaves it where it is)."""
        response: ipb.AckResponse = await self._stub.Ack(ipb.AckRequest(consumer=consumer, sequence=sequence))
        return response.committed_sequence

    async def get(self, incident_id: str) -> IncidentRecord:
        """The incident's state, reopen count and last event; NOT_FOUND when there is no such incident."""
        incident: ipb.Incident = await self._stub.GetIncident(ipb.GetIncidentRequest(incident_id=incident_id))
        return convert.record_from_proto(incident)

    async def list(
        self,
        state: IncidentState | None = None,
        *,
        categories: Iterable[str] = (),
        source_ids: Iterable[str] = (),
        min_severity: Severity | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        page_token: str = "",
    ) -> IncidentPage:
        """One page of incidents, newest first, in ``state`` (None: open and cleared); pass its
        ``next_page_token`` back for the next page ("" on the last one)."""
        response: ipb.ListIncidentsResponse = await self._stub.ListIncidents(
            ipb.ListIncidentsRequest(
                categories=list(categories),
                source_ids=list(source_ids),
                min_severity="" if min_severity is None else Severity(min_severity).value,
                state=convert.incident_state_to_proto(state),
                page_size=page_size,
                page_token=page_token,
            )
        )
        return IncidentPage(
            items=[convert.record_from_proto(i) for i in response.incidents],
            next_page_token=response.next_page_token,
        )

    async def list_all(
        self,
        state: IncidentState | None = None,
        *,
        categories: Iterable[str] = (),
        source_ids: Iterable[str] = (),
        min_severity: Severity | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> Sequence[IncidentRecord]:
        """Every incident ``list`` would page through, newest first."""
        out: list[IncidentRecord] = []
        token = ""
        categories, source_ids = tuple(categories), tuple(source_ids)  # read once per page
        while True:
            page = await self.list(
                state,
                categories=categories,
                source_ids=source_ids,
                min_severity=min_severity,
                page_size=page_size,
                page_token=token,
            )
            out.extend(page.items)
            token = page.next_page_token
            if not token:
                return out

    async def update_case(
        self, incident_id: str, state: CaseState, *, case_id: str = "", note: str = ""
    ) -> IncidentRecord:
        """Give the case system's verdict on an incident (needs the ``case`` role); returns the incident as stored
        after it, ``case_state`` and ``case_id`` set. RESOLVED and REJECTED close it; REJECTED also keeps new
        incidents of its category off its place for a while. ``case_id`` empty keeps the one it has. NOT_FOUND
        for an unknown incident, INVALID_ARGUMENT for a note over 2000 characters."""
        request = ipb.UpdateCaseRequest(
            incident_id=incident_id,
            state=convert.case_state_to_proto(CaseState(state)),
            case_id=case_id,
            note=note,
        )
        incident: ipb.Incident = await self._stub.UpdateCase(request)
        return convert.record_from_proto(incident)

    async def evidence(self, sha256: str) -> bytes:
        """The stored evidence file (a JPEG) named in an event's ``evidence``; NOT_FOUND when it is gone,
        DATA_LOSS when it no longer matches its hash."""
        request = ipb.GetEvidenceRequest(sha256=sha256)
        return b"".join([chunk.data async for chunk in self._stub.GetEvidence(request)])
