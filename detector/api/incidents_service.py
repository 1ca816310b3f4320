"""The Incidents servicer: subscribe to the durable event log, ack offsets, look incidents and evidence up, and
take the case system's verdicts (UpdateCase)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import grpc

from detector.api import incident_convert as convert
from detector.api._gen.streetwatch.v1 import incidents_pb2 as ipb
from detector.api._gen.streetwatch.v1 import incidents_pb2_grpc
from detector.api.auth import require_consumer
from detector.api.limits import CallSlots, client_key
from detector.incidents.feedback import MAX_NOTE_CHARS, UnknownIncident, record_case_update
from detector.store.base import IncidentStore
from detector.store.errors import (
    EvidenceCorrupt,
    EvidenceMissing,
    InvalidQuery,
    OffsetAheadOfLog,
    StoreClosed,
    StoreCorrupt,
    StoreError,
)
from detector.store.follow import follow_events
from detector.types import IncidentEvent

log = logging.getLogger(__name__)

EVIDENCE_CHUNK_BYTES = 256 * 1024
MAX_PAGE_SIZE = 1000
SHUTTING_DOWN = "the service is shutting down; resubscribe"


class IncidentsService(incidents_pb2_grpc.IncidentsServicer):
    def __init__(self, store: IncidentStore, follow_batch: int = 256, max_subscribers_per_client: int = 4) -> None:
        self._store = store
        # Each subscriber holds at most one batch of events in memory (see follow_events): this is its buffer.
        self._follow_batch = follow_batch
        self._subscribers = CallSlots(
            max_subscribers_per_client, "Subscribe calls", "server.max_subscribers_per_client"
        )
        self._closing = asyncio.Event()

    def close_streams(self) -> None:
        """End every Subscribe call (now and from now on) with UNAVAILABLE, so that a server stop does not wait its
        grace period for subscribers that are only waiting for the next event; clients resubscribe elsewhere or
        after the restart, from their committed offset."""
        self._closing.set()

    async def Subscribe(
        self, request: ipb.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ipb.IncidentEvent]:
        if not request.consumer:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "consumer is required (a name for the offset)")
        try:
            event_filter = convert.event_filter(
                list(request.categories), list(request.source_ids), request.min_severity
            )
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if request.HasField("after_sequence"):
            after = request.after_sequence
        else:
            if (refusal := require_consumer(request.consumer)) is not None:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)
            after = await asyncio.to_thread(self._store.get_offset, request.consumer)
        if self._closing.is_set():
            await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
        client = client_key(context.peer())
        if (refusal := self._subscribers.acquire(client)) is not None:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, refusal)
        log.info("subscriber connected", extra={"consumer": request.consumer, "after_sequence": after})
        try:
            events = follow_events(self._store, after, event_filter, batch_size=self._follow_batch)
            async for event in _until(events, self._closing):
                yield convert.event_to_proto(event)
            await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
        except StoreClosed:
            await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
        except StoreCorrupt as exc:
            log.error("subscribe hit a damaged event log: %s", exc, extra={"consumer": request.consumer})
            await context.abort(grpc.StatusCode.DATA_LOSS, f"the event log is damaged: {exc}")
        except StoreError as exc:
            log.exception("subscribe failed", extra={"consumer": request.consumer})
            await context.abort(grpc.StatusCode.INTERNAL, f"reading the event log failed: {exc}")
        finally:
            self._subscribers.release(client)
            log.info("subscriber left", extra={"consumer": request.consumer})

    async def Ack(self, request: ipb.AckRequest, context: grpc.aio.ServicerContext) -> ipb.AckResponse:
        if not request.consumer:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "consumer is required")
        if (refusal := require_consumer(request.consumer)) is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, refusal)
        try:
            committed = await asyncio.to_thread(self._store.commit_offset, request.consumer, request.sequence)
        except OffsetAheadOfLog as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except StoreError as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"could not commit the offset: {exc}")
        return ipb.AckResponse(committed_sequence=committed)

    async def GetIncident(self, request: ipb.GetIncidentRequest, context: grpc.aio.ServicerContext) -> ipb.Incident:
        record = await asyncio.to_thread(self._store.get_incident, request.incident_id)
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no incident {request.incident_id!r}")
            raise AssertionError("abort returned")  # grpc's stubs do not mark abort as NoReturn
        return convert.record_to_proto(record)

    async def ListIncidents(
        self, request: ipb.ListIncidentsRequest, context: grpc.aio.ServicerContext
    ) -> ipb.ListIncidentsResponse:
        if request.page_size > MAX_PAGE_SIZE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"page_size is at most {MAX_PAGE_SIZE}")
        try:
            event_filter = convert.event_filter(
                list(request.categories), list(request.source_ids), request.min_severity
            )
            page = await asyncio.to_thread(
                self._store.list_incidents,
                event_filter,
                convert.incident_state(request.state),
                request.page_size or 100,
                request.page_token,
            )
        except (ValueError, InvalidQuery) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return ipb.ListIncidentsResponse(
            incidents=[convert.record_to_proto(r) for r in page.items], next_page_token=page.next_page_token
        )

    async def UpdateCase(self, request: ipb.UpdateCaseRequest, context: grpc.aio.ServicerContext) -> ipb.Incident:
        """Store the verdict and append its FEEDBACK event (the ``case`` role is checked by the interceptor)."""
        try:
            state = convert.case_state_from_proto(request.state)
        except ValueError:
            state = None
        if state is None:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "state is required: FILED, ACCEPTED, DISPATCHED, RESOLVED or REJECTED",
            )
            raise AssertionError("abort returned")
        if len(request.note) > MAX_NOTE_CHARS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"note is {len(request.note)} characters; at most {MAX_NOTE_CHARS}",
            )
        try:
            record = await asyncio.to_thread(
                record_case_update, self._store, request.incident_id, state, request.case_id, request.note
            )
        except UnknownIncident:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no incident {request.incident_id!r}")
            raise AssertionError("abort returned") from None
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise AssertionError("abort returned") from None
        except StoreError as exc:
            log.error("verdict not stored: %s", exc, extra={"incident_id": request.incident_id})
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"the verdict was not stored, send it again: {exc}")
            raise AssertionError("abort returned") from None
        log.info(
            "case updated",
            extra={"incident_id": record.incident_id, "case_state": state.value, "case_id": record.case_id},
        )
        return convert.record_to_proto(record)

    async def GetEvidence(
        self, request: ipb.GetEvidenceRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[ipb.EvidenceChunk]:
        try:
            handle = await asyncio.to_thread(self._store.open_evidence, request.sha256)
        except EvidenceMissing as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except EvidenceCorrupt as exc:
            log.error("evidence damaged: %s", exc, extra={"sha256": request.sha256})
            await context.abort(grpc.StatusCode.DATA_LOSS, f"{exc}; the event still stands, its photo is lost")
        except (ValueError, InvalidQuery) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        with handle:
            while chunk := await asyncio.to_thread(handle.read, EVIDENCE_CHUNK_BYTES):
                yield ipb.EvidenceChunk(data=chunk)


async def _until(events: AsyncIterator[IncidentEvent], closing: asyncio.Event) -> AsyncIterator[IncidentEvent]:
    """``events`` until they end or ``closing`` is set (then the pending read is cancelled)."""
    closed = asyncio.ensure_future(closing.wait())
    following: asyncio.Future[IncidentEvent] | None = None
    try:
        while not closing.is_set():
            following = asyncio.ensure_future(anext(events))
            await asyncio.wait({following, closed}, return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                return
            try:
                event = following.result()
            except StopAsyncIteration:
                return
            following = None
            yield event
    finally:
        closed.cancel()
        if following is not None and not following.done():
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await following
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()
