import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from detector.api._gen.streetwatch.v1 import ingest_pb2 as _ingest_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    OPENED: _ClassVar[EventType]
    UPDATED: _ClassVar[EventType]
    CLEARED: _ClassVar[EventType]
    FEEDBACK: _ClassVar[EventType]
    SOURCE_DOWN: _ClassVar[EventType]
    SOURCE_UP: _ClassVar[EventType]
    SOURCE_DEGRADED: _ClassVar[EventType]

class CaseState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CASE_STATE_UNSPECIFIED: _ClassVar[CaseState]
    FILED: _ClassVar[CaseState]
    ACCEPTED: _ClassVar[CaseState]
    DISPATCHED: _ClassVar[CaseState]
    RESOLVED: _ClassVar[CaseState]
    REJECTED: _ClassVar[CaseState]

class LocationMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOCATION_METHOD_UNSPECIFIED: _ClassVar[LocationMethod]
    HOMOGRAPHY: _ClassVar[LocationMethod]
    DRONE_PROJECTION: _ClassVar[LocationMethod]
    SOURCE_FIXED: _ClassVar[LocationMethod]

class IncidentState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INCIDENT_STATE_UNSPECIFIED: _ClassVar[IncidentState]
    OPEN: _ClassVar[IncidentState]
    CLEARED_STATE: _ClassVar[IncidentState]
EVENT_TYPE_UNSPECIFIED: EventType
OPENED: EventType
UPDATED: EventType
CLEARED: EventType
FEEDBACK: EventType
SOURCE_DOWN: EventType
SOURCE_UP: EventType
SOURCE_DEGRADED: EventType
CASE_STATE_UNSPECIFIED: CaseState
FILED: CaseState
ACCEPTED: CaseState
DISPATCHED: CaseState
RESOLVED: CaseState
REJECTED: CaseState
LOCATION_METHOD_UNSPECIFIED: LocationMethod
HOMOGRAPHY: LocationMethod
DRONE_PROJECTION: LocationMethod
SOURCE_FIXED: LocationMethod
INCIDENT_STATE_UNSPECIFIED: IncidentState
OPEN: IncidentState
CLEARED_STATE: IncidentState

class Location(_message.Message):
    __slots__ = ("lat", "lon", "accuracy_m", "method")
    LAT_FIELD_NUMBER: _ClassVar[int]
    LON_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_M_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    lat: float
    lon: float
    accuracy_m: float
    method: LocationMethod
    def __init__(self, lat: _Optional[float] = ..., lon: _Optional[float] = ..., accuracy_m: _Optional[float] = ..., method: _Optional[_Union[LocationMethod, str]] = ...) -> None: ...

class EvidenceRef(_message.Message):
    __slots__ = ("kind", "sha256", "uri")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    kind: str
    sha256: str
    uri: str
    def __init__(self, kind: _Optional[str] = ..., sha256: _Optional[str] = ..., uri: _Optional[str] = ...) -> None: ...

class IncidentEvent(_message.Message):
    __slots__ = ("event_id", "sequence", "incident_id", "type", "category", "case_code", "label", "severity", "confidence", "source_id", "first_seen", "last_seen", "duration_s", "box", "zone_id", "location", "evidence", "model_version", "rule", "source_pose", "location_note", "case_state", "case_id", "note")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CASE_CODE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    DURATION_S_FIELD_NUMBER: _ClassVar[int]
    BOX_FIELD_NUMBER: _ClassVar[int]
    ZONE_ID_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_POSE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_NOTE_FIELD_NUMBER: _ClassVar[int]
    CASE_STATE_FIELD_NUMBER: _ClassVar[int]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    sequence: int
    incident_id: str
    type: EventType
    category: str
    case_code: str
    label: str
    severity: str
    confidence: float
    source_id: str
    first_seen: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    duration_s: float
    box: _ingest_pb2.Box
    zone_id: str
    location: Location
    evidence: _containers.RepeatedCompositeFieldContainer[EvidenceRef]
    model_version: str
    rule: str
    source_pose: _ingest_pb2.Telemetry
    location_note: str
    case_state: CaseState
    case_id: str
    note: str
    def __init__(self, event_id: _Optional[str] = ..., sequence: _Optional[int] = ..., incident_id: _Optional[str] = ..., type: _Optional[_Union[EventType, str]] = ..., category: _Optional[str] = ..., case_code: _Optional[str] = ..., label: _Optional[str] = ..., severity: _Optional[str] = ..., confidence: _Optional[float] = ..., source_id: _Optional[str] = ..., first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_s: _Optional[float] = ..., box: _Optional[_Union[_ingest_pb2.Box, _Mapping]] = ..., zone_id: _Optional[str] = ..., location: _Optional[_Union[Location, _Mapping]] = ..., evidence: _Optional[_Iterable[_Union[EvidenceRef, _Mapping]]] = ..., model_version: _Optional[str] = ..., rule: _Optional[str] = ..., source_pose: _Optional[_Union[_ingest_pb2.Telemetry, _Mapping]] = ..., location_note: _Optional[str] = ..., case_state: _Optional[_Union[CaseState, str]] = ..., case_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("consumer", "after_sequence", "categories", "source_ids", "min_severity")
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IDS_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    consumer: str
    after_sequence: int
    categories: _containers.RepeatedScalarFieldContainer[str]
    source_ids: _containers.RepeatedScalarFieldContainer[str]
    min_severity: str
    def __init__(self, consumer: _Optional[str] = ..., after_sequence: _Optional[int] = ..., categories: _Optional[_Iterable[str]] = ..., source_ids: _Optional[_Iterable[str]] = ..., min_severity: _Optional[str] = ...) -> None: ...

class AckRequest(_message.Message):
    __slots__ = ("consumer", "sequence")
    CONSUMER_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    consumer: str
    sequence: int
    def __init__(self, consumer: _Optional[str] = ..., sequence: _Optional[int] = ...) -> None: ...

class AckResponse(_message.Message):
    __slots__ = ("committed_sequence",)
    COMMITTED_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    committed_sequence: int
    def __init__(self, committed_sequence: _Optional[int] = ...) -> None: ...

class Incident(_message.Message):
    __slots__ = ("incident_id", "state", "opened_count", "last_event", "case_state", "case_id")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OPENED_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_FIELD_NUMBER: _ClassVar[int]
    CASE_STATE_FIELD_NUMBER: _ClassVar[int]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    state: IncidentState
    opened_count: int
    last_event: IncidentEvent
    case_state: CaseState
    case_id: str
    def __init__(self, incident_id: _Optional[str] = ..., state: _Optional[_Union[IncidentState, str]] = ..., opened_count: _Optional[int] = ..., last_event: _Optional[_Union[IncidentEvent, _Mapping]] = ..., case_state: _Optional[_Union[CaseState, str]] = ..., case_id: _Optional[str] = ...) -> None: ...

class UpdateCaseRequest(_message.Message):
    __slots__ = ("incident_id", "state", "case_id", "note")
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CASE_ID_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    state: CaseState
    case_id: str
    note: str
    def __init__(self, incident_id: _Optional[str] = ..., state: _Optional[_Union[CaseState, str]] = ..., case_id: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class GetIncidentRequest(_message.Message):
    __slots__ = ("incident_id",)
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    incident_id: str
    def __init__(self, incident_id: _Optional[str] = ...) -> None: ...

class ListIncidentsRequest(_message.Message):
    __slots__ = ("categories", "source_ids", "min_severity", "state", "page_size", "page_token")
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_IDS_FIELD_NUMBER: _ClassVar[int]
    MIN_SEVERITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedScalarFieldContainer[str]
    source_ids: _containers.RepeatedScalarFieldContainer[str]
    min_severity: str
    state: IncidentState
    page_size: int
    page_token: str
    def __init__(self, categories: _Optional[_Iterable[str]] = ..., source_ids: _Optional[_Iterable[str]] = ..., min_severity: _Optional[str] = ..., state: _Optional[_Union[IncidentState, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListIncidentsResponse(_message.Message):
    __slots__ = ("incidents", "next_page_token")
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    incidents: _containers.RepeatedCompositeFieldContainer[Incident]
    next_page_token: str
    def __init__(self, incidents: _Optional[_Iterable[_Union[Incident, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetEvidenceRequest(_message.Message):
    __slots__ = ("sha256",)
    SHA256_FIELD_NUMBER: _ClassVar[int]
    sha256: str
    def __init__(self, sha256: _Optional[str] = ...) -> None: ...

class EvidenceChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...
