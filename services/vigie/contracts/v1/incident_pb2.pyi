from vigie.contracts.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Incident(_message.Message):
    __slots__ = ("id", "kind", "camera_id", "state", "first_seen_ns", "last_seen_ns", "count", "severity", "regions", "snapshot", "frame_width", "frame_height", "revision", "updated_ns", "stations", "operator", "comments", "snapshot_capture_ns", "opened_by", "track_ids", "attributes", "acknowledged_by", "acknowledged_ns", "escalated_ns", "priority", "owner", "notes", "reopened", "reopened_ns", "verdict", "zone", "history", "escalation_level", "closed_ns")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Incident.State]
        STATE_NEW: _ClassVar[Incident.State]
        STATE_ACKNOWLEDGED: _ClassVar[Incident.State]
        STATE_ESCALATED: _ClassVar[Incident.State]
        STATE_CLOSED: _ClassVar[Incident.State]
        STATE_ON_HOLD: _ClassVar[Incident.State]
    STATE_UNSPECIFIED: Incident.State
    STATE_NEW: Incident.State
    STATE_ACKNOWLEDGED: Incident.State
    STATE_ESCALATED: Incident.State
    STATE_CLOSED: Incident.State
    STATE_ON_HOLD: Incident.State
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_NS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_NS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    FRAME_WIDTH_FIELD_NUMBER: _ClassVar[int]
    FRAME_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_NS_FIELD_NUMBER: _ClassVar[int]
    STATIONS_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    COMMENTS_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_CAPTURE_NS_FIELD_NUMBER: _ClassVar[int]
    OPENED_BY_FIELD_NUMBER: _ClassVar[int]
    TRACK_IDS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_BY_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_NS_FIELD_NUMBER: _ClassVar[int]
    ESCALATED_NS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    REOPENED_FIELD_NUMBER: _ClassVar[int]
    REOPENED_NS_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    CLOSED_NS_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    camera_id: str
    state: Incident.State
    first_seen_ns: int
    last_seen_ns: int
    count: int
    severity: float
    regions: _containers.RepeatedCompositeFieldContainer[_common_pb2.Region]
    snapshot: _common_pb2.RecordRef
    frame_width: int
    frame_height: int
    revision: int
    updated_ns: int
    stations: _containers.RepeatedScalarFieldContainer[str]
    operator: str
    comments: _containers.RepeatedScalarFieldContainer[str]
    snapshot_capture_ns: int
    opened_by: str
    track_ids: _containers.RepeatedScalarFieldContainer[str]
    attributes: _containers.ScalarMap[str, float]
    acknowledged_by: str
    acknowledged_ns: int
    escalated_ns: int
    priority: int
    owner: str
    notes: _containers.RepeatedCompositeFieldContainer[Note]
    reopened: int
    reopened_ns: int
    verdict: Verdict
    zone: str
    history: _containers.RepeatedCompositeFieldContainer[HistoryItem]
    escalation_level: int
    closed_ns: int
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., camera_id: _Optional[str] = ..., state: _Optional[_Union[Incident.State, str]] = ..., first_seen_ns: _Optional[int] = ..., last_seen_ns: _Optional[int] = ..., count: _Optional[int] = ..., severity: _Optional[float] = ..., regions: _Optional[_Iterable[_Union[_common_pb2.Region, _Mapping]]] = ..., snapshot: _Optional[_Union[_common_pb2.RecordRef, _Mapping]] = ..., frame_width: _Optional[int] = ..., frame_height: _Optional[int] = ..., revision: _Optional[int] = ..., updated_ns: _Optional[int] = ..., stations: _Optional[_Iterable[str]] = ..., operator: _Optional[str] = ..., comments: _Optional[_Iterable[str]] = ..., snapshot_capture_ns: _Optional[int] = ..., opened_by: _Optional[str] = ..., track_ids: _Optional[_Iterable[str]] = ..., attributes: _Optional[_Mapping[str, float]] = ..., acknowledged_by: _Optional[str] = ..., acknowledged_ns: _Optional[int] = ..., escalated_ns: _Optional[int] = ..., priority: _Optional[int] = ..., owner: _Optional[str] = ..., notes: _Optional[_Iterable[_Union[Note, _Mapping]]] = ..., reopened: _Optional[int] = ..., reopened_ns: _Optional[int] = ..., verdict: _Optional[_Union[Verdict, _Mapping]] = ..., zone: _Optional[str] = ..., history: _Optional[_Iterable[_Union[HistoryItem, _Mapping]]] = ..., escalation_level: _Optional[int] = ..., closed_ns: _Optional[int] = ...) -> None: ...

class Note(_message.Message):
    __slots__ = ("author", "at_ns", "text")
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    AT_NS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    author: str
    at_ns: int
    text: str
    def __init__(self, author: _Optional[str] = ..., at_ns: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class HistoryItem(_message.Message):
    __slots__ = ("at_ns", "actor", "what", "detail")
    AT_NS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    WHAT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    at_ns: int
    actor: str
    what: str
    detail: str
    def __init__(self, at_ns: _Optional[int] = ..., actor: _Optional[str] = ..., what: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("kind", "reason", "author", "at_ns")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Verdict.Kind]
        KIND_CONFIRMED: _ClassVar[Verdict.Kind]
        KIND_FALSE_ALARM: _ClassVar[Verdict.Kind]
        KIND_TEST: _ClassVar[Verdict.Kind]
    KIND_UNSPECIFIED: Verdict.Kind
    KIND_CONFIRMED: Verdict.Kind
    KIND_FALSE_ALARM: Verdict.Kind
    KIND_TEST: Verdict.Kind
    class Reason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        REASON_UNSPECIFIED: _ClassVar[Verdict.Reason]
        REASON_SHADOW_OR_LIGHT: _ClassVar[Verdict.Reason]
        REASON_REFLECTION: _ClassVar[Verdict.Reason]
        REASON_VEGETATION: _ClassVar[Verdict.Reason]
        REASON_PERSON_STILL: _ClassVar[Verdict.Reason]
        REASON_OBJECT_OWNED: _ClassVar[Verdict.Reason]
        REASON_OTHER: _ClassVar[Verdict.Reason]
    REASON_UNSPECIFIED: Verdict.Reason
    REASON_SHADOW_OR_LIGHT: Verdict.Reason
    REASON_REFLECTION: Verdict.Reason
    REASON_VEGETATION: Verdict.Reason
    REASON_PERSON_STILL: Verdict.Reason
    REASON_OBJECT_OWNED: Verdict.Reason
    REASON_OTHER: Verdict.Reason
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    AT_NS_FIELD_NUMBER: _ClassVar[int]
    kind: Verdict.Kind
    reason: Verdict.Reason
    author: str
    at_ns: int
    def __init__(self, kind: _Optional[_Union[Verdict.Kind, str]] = ..., reason: _Optional[_Union[Verdict.Reason, str]] = ..., author: _Optional[str] = ..., at_ns: _Optional[int] = ...) -> None: ...

class CameraIncidents(_message.Message):
    __slots__ = ("incidents", "recent_anomalies", "recent_actions", "closed_incidents")
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    RECENT_ANOMALIES_FIELD_NUMBER: _ClassVar[int]
    RECENT_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    CLOSED_INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    incidents: _containers.RepeatedCompositeFieldContainer[Incident]
    recent_anomalies: _containers.RepeatedScalarFieldContainer[int]
    recent_actions: _containers.RepeatedScalarFieldContainer[int]
    closed_incidents: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, incidents: _Optional[_Iterable[_Union[Incident, _Mapping]]] = ..., recent_anomalies: _Optional[_Iterable[int]] = ..., recent_actions: _Optional[_Iterable[int]] = ..., closed_incidents: _Optional[_Iterable[str]] = ...) -> None: ...
