from vigie.contracts.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Incident(_message.Message):
    __slots__ = ("id", "kind", "camera_id", "state", "first_seen_ns", "last_seen_ns", "count", "severity", "regions", "snapshot", "frame_width", "frame_height", "revision", "updated_ns", "stations", "operator", "comments", "snapshot_capture_ns", "opened_by", "track_ids", "attributes", "acknowledged_by", "acknowledged_ns", "escalated_ns")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Incident.State]
        STATE_NEW: _ClassVar[Incident.State]
        STATE_ACKNOWLEDGED: _ClassVar[Incident.State]
        STATE_ESCALATED: _ClassVar[Incident.State]
        STATE_CLOSED: _ClassVar[Incident.State]
    STATE_UNSPECIFIED: Incident.State
    STATE_NEW: Incident.State
    STATE_ACKNOWLEDGED: Incident.State
    STATE_ESCALATED: Incident.State
    STATE_CLOSED: Incident.State
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
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., camera_id: _Optional[str] = ..., state: _Optional[_Union[Incident.State, str]] = ..., first_seen_ns: _Optional[int] = ..., last_seen_ns: _Optional[int] = ..., count: _Optional[int] = ..., severity: _Optional[float] = ..., regions: _Optional[_Iterable[_Union[_common_pb2.Region, _Mapping]]] = ..., snapshot: _Optional[_Union[_common_pb2.RecordRef, _Mapping]] = ..., frame_width: _Optional[int] = ..., frame_height: _Optional[int] = ..., revision: _Optional[int] = ..., updated_ns: _Optional[int] = ..., stations: _Optional[_Iterable[str]] = ..., operator: _Optional[str] = ..., comments: _Optional[_Iterable[str]] = ..., snapshot_capture_ns: _Optional[int] = ..., opened_by: _Optional[str] = ..., track_ids: _Optional[_Iterable[str]] = ..., attributes: _Optional[_Mapping[str, float]] = ..., acknowledged_by: _Optional[str] = ..., acknowledged_ns: _Optional[int] = ..., escalated_ns: _Optional[int] = ...) -> None: ...

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
