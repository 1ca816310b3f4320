"""`detector incidents list | show | evidence | update-case`: what the commands ask the Incidents service, and
what they print.

An incident is named by its full id or by a prefix of it that only one incident has (as ``list`` prints the full
id, a copy of any unique start of it works). Evidence files are checked against their sha256 before they are
written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from detector.api.client import ChannelSecurity
from detector.api.incidents_client import IncidentsClient
from detector.api.subscribe import incident_json, incident_line
from detector.store.model import IncidentRecord, IncidentState
from detector.types import CaseState

NO_INCIDENTS = "no incidents"


class IncidentNotFound(LookupError):
    """No incident has that id, or the prefix names none or several (the message says which)."""


@dataclass(frozen=True)
class ListQuery:
    state: IncidentState | None = None
    source_ids: Sequence[str] = ()
    categories: Sequence[str] = ()
    limit: int | None = None


async def list_incidents(client: IncidentsClient, query: ListQuery) -> list[IncidentRecord]:
    """Newest first, at most ``query.limit``, paged as the service pages them."""
    out: list[IncidentRecord] = []
    token = ""
    while query.limit is None or len(out) < query.limit:
        page_size = 200 if query.limit is None else max(1, min(200, query.limit - len(out)))
        page = await client.list(
            query.state,
            categories=query.categories,
            source_ids=query.source_ids,
            page_size=page_size,
            page_token=token,
        )
        out.extend(page.items)
        token = page.next_page_token
        if not token:
            break
    return out if query.limit is None else out[: query.limit]


def list_output(records: Sequence[IncidentRecord], as_json: bool) -> str:
    """The listing: one line per incident (text, or proto JSON of ``streetwatch.v1.Incident`` per line), or
    "no incidents" (text) / nothing (JSON) when there is none."""
    if as_json:
        return "\n".join(incident_json(record) for record in records)
    return "\n".join(incident_line(record) for record in records) or NO_INCIDENTS


async def resolve(client: IncidentsClient, id_or_prefix: str) -> IncidentRecord:
    """The incident with this id, or the one incident whose id starts with it."""
    if not id_or_prefix:
        raise IncidentNotFound("give an incident id (or a unique prefix of one)")
    try:
        return await client.get(id_or_prefix)
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
    matches = [r for r in await client.list_all(page_size=1000) if r.incident_id.startswith(id_or_prefix)]
    if not matches:
        raise IncidentNotFound(f"no incident {id_or_prefix!r} (neither an id nor the start of one)")
    if len(matches) > 1:
        ids = ", ".join(r.incident_id for r in matches[:5])
        raise IncidentNotFound(f"{len(matches)} incidents start with {id_or_prefix!r} ({ids}...): give more of it")
    return matches[0]


async def show(target: str, security: ChannelSecurity, id_or_prefix: str) -> str:
    async with IncidentsClient(target, security) as client:
        return incident_json(await resolve(client, id_or_prefix))


async def fetch_evidence(target: str, security: ChannelSecurity, id_or_prefix: str, out_dir: Path) -> list[Path]:
    """Write the evidence files of the incident's last event with evidence (a cleared incident keeps those of
    its last sighting) to ``out_dir`` as ``<incident id>-<kind>.jpg``; returns the paths. A file whose bytes do
    not match its sha256 is refused (ValueError)."""
    async with IncidentsClient(target, security) as client:
        record = await resolve(client, id_or_prefix)
        evidence = record.last_event.evidence
        if not evidence:
            raise IncidentNotFound(f"incident {record.incident_id} has no evidence (its photo was never stored)")
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for item in evidence:
            data = await client.evidence(item.sha256)
            digest = hashlib.sha256(data).hexdigest()
            if digest != item.sha256.removeprefix("sha256:"):
                raise ValueError(f"evidence {item.sha256} arrived with sha256 {digest}: not written")
            path = out_dir / f"{record.incident_id}-{item.kind.value}.jpg"
            path.write_bytes(data)
            written.append(path)
        return written


def evidence_output(paths: Sequence[Path], as_json: bool) -> str:
    if as_json:
        return json.dumps([str(p) for p in paths])
    return "\n".join(str(p) for p in paths)


@dataclass(frozen=True)
class CaseUpdate:
    id_or_prefix: str
    state: CaseState
    case_id: str = ""
    note: str = ""


async def update_case(target: str, security: ChannelSecurity, update: CaseUpdate) -> str:
    """Give the verdict on the incident the id or prefix names; returns the incident after it, as JSON. A full id
    needs only the ``case`` role; a prefix is looked up with ListIncidents, which needs ``subscribe`` too."""
    async with IncidentsClient(target, security) as client:
        try:
            stored = await client.update_case(
                update.id_or_prefix, update.state, case_id=update.case_id, note=update.note
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or not update.id_or_prefix:
                raise
            record = await resolve(client, update.id_or_prefix)
            stored = await client.update_case(
                record.incident_id, update.state, case_id=update.case_id, note=update.note
            )
        return incident_json(stored)
