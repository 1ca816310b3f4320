"""The case system's verdict on an incident, as a FEEDBACK event in the log.

``Incidents.UpdateCase`` and the connectors that poll a case system (Open311) both call ``record_case_update``:
the verdict is stored on the incident (``IncidentRecord.case_state`` / ``case_id``) and appended to the log as a
FEEDBACK event that carries the incident's fields as last known, so every consumer (subscribers, connectors,
the rules' feedback watcher) sees it in log order.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from detector.store.base import IncidentStore
from detector.store.model import IncidentRecord
from detector.types import CaseState, EventType

MAX_NOTE_CHARS = 2000


class UnknownIncident(LookupError):
    """No incident has that id."""


def record_case_update(
    store: IncidentStore, incident_id: str, state: CaseState, case_id: str = "", note: str = ""
) -> IncidentRecord:
    """Append a FEEDBACK event for ``incident_id`` and return the incident as stored after it.

    ``case_id`` empty keeps the one the incident has. Raises ``UnknownIncident``, ValueError for a note longer
    than ``MAX_NOTE_CHARS``, and the store's errors. Synchronous: asyncio callers use ``asyncio.to_thread``.
    """
    if len(note) > MAX_NOTE_CHARS:
        raise ValueError(f"note is {len(note)} characters; at most {MAX_NOTE_CHARS}")
    record = store.get_incident(incident_id)
    if record is None:
        raise UnknownIncident(f"no incident {incident_id!r}")
    event = replace(
        record.last_event,
        event_id=str(uuid.uuid4()),
        type=EventType.FEEDBACK,
        sequence=0,
        case_state=CaseState(state),
        case_id=case_id or record.case_id,
        note=note,
    )
    store.append([event])
    stored = store.get_incident(incident_id)
    assert stored is not None
    return stored
