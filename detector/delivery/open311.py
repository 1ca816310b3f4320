"""Kind ``open311``: files each new incident as a GeoReport v2 service request and follows it until the city
closes it.

On OPENED (other event types are skipped as delivered) it POSTs ``{endpoint}/requests.json``, form-encoded:
``api_key``, ``jurisdiction_id``, ``service_code`` (``service_codes[case_code]``, else
``service_codes[category]``, else ``default_service_code``, else a permanent error), ``lat``/``long`` (the
event's location, else its source's pose with a note saying so, else a permanent error "no location"),
``description``, ``media_url`` (a signed link to the frame JPEG, with ``server.evidence_links``), ``email``,
``device_id`` and ``attribute[<code>]`` (the configured ones plus ``attribute[incident_id]``). The answer's
``service_request_id`` (or ``token:<token>`` until the city assigns one) is stored on the incident as a FILED
verdict (``record_case_update``). 2xx is filed; 5xx, 408, 429 (Retry-After honoured), timeouts and connection
errors are retried; other statuses are permanent, with the GeoReport error descriptions as the reason.

Open311 has no idempotency key: an incident that already has a case id is never filed again. A crash between
the city's answer and the FILED verdict's commit (or an answer lost in a timeout) can still file twice.

With ``poll_interval_s`` > 0 it polls ``GET {endpoint}/requests/{id}.json`` (``/tokens/{token}.json`` first for
a token) for the not-closed incidents it could have filed, and turns ``status: closed`` into RESOLVED, or
REJECTED when ``status_notes`` match ``rejected_when_notes_match``. Polling failures are logged and counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from pydantic import Field, field_validator, model_validator

from detector.delivery.base import (
    Connector,
    ConnectorContext,
    DeliveryError,
    PermanentError,
    RetryableError,
    register_connector,
)
from detector.delivery.settings import ConnectorSettings, register_settings
from detector.delivery.webhook import RETRYABLE_4XX, retry_after_s
from detector.incidents.feedback import MAX_NOTE_CHARS, record_case_update
from detector.store.base import IncidentStore
from detector.store.model import IncidentRecord
from detector.types import CaseState, EventType, EvidenceKind, IncidentEvent

log = logging.getLogger(__name__)

TOKEN_PREFIX = "token:"  # case_id while the city has only given a token
MAX_DESCRIPTION_CHARS = 4000  # GeoReport v2's limit
OPEN_CASE_STATES = (CaseState.FILED, CaseState.ACCEPTED, CaseState.DISPATCHED)


class Open311Settings(ConnectorSettings):
    endpoint: str = Field(
        ..., pattern=r"^https?://", description="GeoReport v2 base URL, e.g. 'https://311.city.gov/open311/v2'."
    )
    api_key: str | None = Field(None, description="Sent as api_key with each new request.")
    jurisdiction_id: str | None = Field(None, description="Sent when the endpoint serves several jurisdictions.")
    service_codes: dict[str, str] = Field(
        default_factory=dict,
        description="Open311 service_code by case code or category, e.g. {'200501': 'STALL', ROAD_DAMAGE: 'POT'}; "
        "the case code is looked up first.",
    )
    default_service_code: str | None = Field(
        None, description="service_code of an event neither map names; None: such an event is dead-lettered."
    )
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Fixed attribute[<code>] values; attribute[incident_id] is always sent."
    )
    email: str | None = Field(None, description="The reporter's email, if the city wants one.")
    device_id: str | None = Field(None, description="The reporting device's id, if the city wants one.")
    timeout_s: float = Field(10.0, gt=0, description="Whole-request timeout, in seconds.")
    connect_timeout_s: float = Field(5.0, gt=0, description="Connection timeout, in seconds.")
    poll_interval_s: float = Field(60.0, ge=0, description="How often filed requests are polled; 0 = never.")
    poll_max_age_s: float = Field(
        30 * 86400.0, gt=0, description="Requests whose last verdict is older than this are no longer polled."
    )
    rejected_when_notes_match: list[str] = Field(
        default_factory=list,
        description="Regexes (case-insensitive) on status_notes: a closed request whose notes match one is "
        "REJECTED (a false alarm: suppressed for a while), else RESOLVED. E.g. ['duplicate', 'invalid'].",
    )

    @field_validator("rejected_when_notes_match")
    @classmethod
    def _regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"rejected_when_notes_match: {pattern!r} is not a regex: {exc}") from None
        return value

    @model_validator(mode="after")
    def _verify(self) -> Open311Settings:
        if not self.service_codes and self.default_service_code is None:
            raise ValueError("open311 needs service_codes or default_service_code: nothing could be filed")
        return self


register_settings("open311", Open311Settings)


def service_code_for(settings: Open311Settings, event: IncidentEvent) -> str | None:
    codes = settings.service_codes
    return codes.get(event.case_code) or codes.get(event.category) or settings.default_service_code


def georeport_errors(body: bytes) -> str:
    """The descriptions of a GeoReport error list (``[{"code": 400, "description": ...}]``), else the body."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    items = data if isinstance(data, list) else [data]
    described = [str(i["description"]) for i in items if isinstance(i, dict) and i.get("description")]
    return "; ".join(described) if described else body.decode("utf-8", "replace").strip()[:200]


def _first_object(body: bytes) -> dict[str, Any] | None:
    """GeoReport answers are a list of one object (some servers send the object alone)."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if isinstance(data, list) and data:
        data = data[0]
    return data if isinstance(data, dict) else None


class Open311Connector(Connector):
    kind = "open311"

    def __init__(self, settings: Open311Settings, clock: Callable[[], float] = time.time) -> None:
        self.name = settings.name
        self._settings = settings
        self._clock = clock
        self._endpoint = settings.endpoint.rstrip("/")
        self._rejected = [re.compile(p, re.IGNORECASE) for p in settings.rejected_when_notes_match]
        self._context: ConnectorContext | None = None
        self._session: aiohttp.ClientSession | None = None
        # Filed but not yet stored (the store failed): a redelivery stores it instead of filing again.
        self._unrecorded: dict[str, str] = {}
        # Answered 2xx without an id: the city may hold a request, so the runner's retries must not POST again.
        self._unidentified: dict[str, str] = {}
        self.polls = 0
        self.poll_failures = 0

    def bind(self, context: ConnectorContext) -> None:
        self._context = context

    @property
    def _store(self) -> IncidentStore:
        if self._context is None:
            raise RuntimeError(f"open311 connector {self.name} was not bound to a store")
        return self._context.store

    async def start(self) -> None:
        if self._session is None:
            s = self._settings
            timeout = aiohttp.ClientTimeout(total=s.timeout_s, sock_connect=s.connect_timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            await asyncio.sleep(0)

    # -- filing ---------------------------------------------------------------------------------------------

    async def deliver(self, event: IncidentEvent) -> None:
        if event.type is not EventType.OPENED:
            return
        incident_id = event.incident_id
        if incident_id in self._unrecorded:
            await self._record_filed(incident_id, self._unrecorded[incident_id])
            return
        if incident_id in self._unidentified:
            raise PermanentError(self._unidentified[incident_id])
        record = await asyncio.to_thread(self._store.get_incident, incident_id)
        if record is not None and record.case_id:
            log.info(
                "open311 %s: incident %s is already case %s; not filed again", self.name, incident_id, record.case_id
            )
            return
        form = self.request_form(event)
        status, retry_after, body = await self._call("POST", "/requests.json", form)
        if not 200 <= status < 300:
            raise _http_error(status, retry_after, body)
        answer = _first_object(body) or {}
        if answer.get("service_request_id"):
            case_id = str(answer["service_request_id"])
        elif answer.get("token"):
            case_id = TOKEN_PREFIX + str(answer["token"])
        else:
            reason = f"open311 answered HTTP {status} with no service_request_id or token: {body[:200]!r}"
            self._unidentified[incident_id] = reason
            raise PermanentError(reason)
        self._unrecorded[incident_id] = case_id
        await self._record_filed(incident_id, case_id)

    def request_form(self, event: IncidentEvent) -> dict[str, str]:
        """The POST /requests.json fields for ``event``; PermanentError when the event cannot be filed."""
        s = self._settings
        service_code = service_code_for(s, event)
        if service_code is None:
            raise PermanentError(
                f"no Open311 service_code for case code {event.case_code!r} or category {event.category!r} "
                "(add it to service_codes, or set default_service_code)"
            )
        lat, lon, where = self._position(event)
        first_seen = datetime.fromtimestamp(event.first_seen_ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        description = "\n".join(
            [
                f"{event.label} ({event.category}, case code {event.case_code})",
                f"Confidence {event.confidence:.2f}, source {event.source_id}, first seen {first_seen}",
                *([where] if where else []),
                f"StreetWatch incident {event.incident_id}",
            ]
        )
        form = {
            "api_key": s.api_key,
            "jurisdiction_id": s.jurisdiction_id,
            "service_code": service_code,
            "lat": repr(lat),
            "long": repr(lon),
            "description": description[:MAX_DESCRIPTION_CHARS],
            "media_url": self._media_url(event),
            "email": s.email,
            "device_id": s.device_id,
        }
        attributes = {**s.attributes, "incident_id": event.incident_id}
        return {
            **{k: v for k, v in form.items() if v is not None},
            **{f"attribute[{code}]": value for code, value in attributes.items()},
        }

    def _position(self, event: IncidentEvent) -> tuple[float, float, str]:
        if event.location is not None:
            return event.location.lat, event.location.lon, ""
        pose = event.source_pose
        if pose is not None and pose.lat is not None and pose.lon is not None:
            return pose.lat, pose.lon, f"Location: the position of {event.source_id}, not of the object itself"
        note = f" ({event.location_note})" if event.location_note else ""
        raise PermanentError(f"no location{note}: the event has neither a location nor a source position")

    def _media_url(self, event: IncidentEvent) -> str | None:
        evidence_url = self._context.evidence_url if self._context is not None else None
        if evidence_url is None or not event.evidence:
            return None
        frames = [e for e in event.evidence if e.kind is EvidenceKind.FRAME_JPEG]
        return evidence_url((frames or list(event.evidence))[0].sha256, self._clock())

    async def _record_filed(self, incident_id: str, case_id: str) -> None:
        note = f"open311 request {case_id.removeprefix(TOKEN_PREFIX)}"
        try:
            await asyncio.to_thread(
                record_case_update, self._store, incident_id, CaseState.FILED, case_id=case_id, note=note
            )
        except Exception as exc:
            raise RetryableError(f"filed as {case_id} but storing that failed: {exc}") from exc
        del self._unrecorded[incident_id]
        log.info("open311 %s: incident %s filed as %s", self.name, incident_id, case_id)

    # -- polling --------------------------------------------------------------------------------------------

    async def background(self) -> None:
        interval = self._settings.poll_interval_s
        if interval <= 0:
            return
        while True:
            await self.poll_once()
            await asyncio.sleep(interval)

    async def poll_once(self) -> None:
        """Ask the city about every open request this connector could have filed; failures are counted."""
        self.polls += 1
        since = self._clock() - self._settings.poll_max_age_s
        try:
            records = [
                record
                for state in OPEN_CASE_STATES
                for record in await asyncio.to_thread(self._store.incidents_with_case_state, state, since)
            ]
        except Exception:
            self.poll_failures += 1
            log.warning("open311 %s: polling could not read the store", self.name, exc_info=True)
            return
        for record in records:
            if not record.case_id or service_code_for(self._settings, record.last_event) is None:
                continue
            try:
                await self._poll(record)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.poll_failures += 1
                reason = exc.reason if isinstance(exc, DeliveryError) else repr(exc)
                log.warning("open311 %s: polling %s failed: %s", self.name, record.case_id, reason)

    async def _poll(self, record: IncidentRecord) -> None:
        case_id = record.case_id
        if case_id.startswith(TOKEN_PREFIX):
            token = case_id.removeprefix(TOKEN_PREFIX)
            answer = await self._get(f"/tokens/{quote(token, safe='')}.json")
            if not answer.get("service_request_id"):
                return  # the city has not assigned an id yet
            case_id = str(answer["service_request_id"])
            note = f"open311 request {case_id} (token {token})"
            state = record.case_state or CaseState.FILED
            await asyncio.to_thread(record_case_update, self._store, record.incident_id, state, case_id, note)
        answer = await self._get(f"/requests/{quote(case_id, safe='')}.json")
        if str(answer.get("status", "")).lower() != "closed":
            return
        notes = str(answer.get("status_notes") or "")
        rejected = any(p.search(notes) for p in self._rejected)
        state = CaseState.REJECTED if rejected else CaseState.RESOLVED
        note = (notes or f"open311 request {case_id} closed")[:MAX_NOTE_CHARS]
        await asyncio.to_thread(record_case_update, self._store, record.incident_id, state, case_id, note)
        log.info("open311 %s: request %s closed: %s", self.name, case_id, state.value)

    async def _get(self, path: str) -> dict[str, Any]:
        query = {"jurisdiction_id": self._settings.jurisdiction_id} if self._settings.jurisdiction_id else {}
        status, retry_after, body = await self._call("GET", path, query)
        if status != 200:
            raise _http_error(status, retry_after, body)
        answer = _first_object(body)
        if answer is None:
            raise PermanentError(f"GET {path}: not a GeoReport answer: {body[:200]!r}")
        return answer

    async def _call(self, method: str, path: str, fields: dict[str, str]) -> tuple[int, float | None, bytes]:
        await self.start()
        assert self._session is not None
        url = self._endpoint + path
        try:
            if method == "POST":
                headers = {"Content-Type": "application/x-www-form-urlencoded"}
                request = self._session.post(url, data=urlencode(fields), headers=headers)
            else:
                request = self._session.get(url, params=fields)
            async with request as response:
                return response.status, retry_after_s(response.headers.get("Retry-After")), await response.read()
        except TimeoutError as exc:
            raise RetryableError("timeout") from exc
        except aiohttp.ClientError as exc:
            raise RetryableError(f"connection: {type(exc).__name__}") from exc


def _http_error(status: int, retry_after: float | None, body: bytes) -> RetryableError | PermanentError:
    if status >= 500 or status in RETRYABLE_4XX:
        return RetryableError(f"HTTP {status}", retry_after)
    return PermanentError(f"HTTP {status}: {georeport_errors(body)}")


@register_connector("open311")
def _factory(settings: dict[str, Any]) -> Connector:
    return Open311Connector(Open311Settings.model_validate(settings))
