from vigie.contracts.v1 import common_pb2 as _common_pb2
from vigie.contracts.v1 import incident_pb2 as _incident_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Anomaly(_message.Message):
    __slots__ = ("id", "camera_id", "kind", "score", "regions", "capture_ns", "frame", "frame_width", "frame_height", "detector", "detector_version", "track_id", "attributes", "published_ns", "withdraws", "withdrawal", "withdrawal_reason")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_NS_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    FRAME_WIDTH_FIELD_NUMBER: _ClassVar[int]
    FRAME_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    PUBLISHED_NS_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWS_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWAL_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWAL_REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    camera_id: str
    kind: str
    score: float
    regions: _containers.RepeatedCompositeFieldContainer[_common_pb2.Region]
    capture_ns: int
    frame: _common_pb2.RecordRef
    frame_width: int
    frame_height: int
    detector: str
    detector_version: str
    track_id: str
    attributes: _containers.ScalarMap[str, float]
    published_ns: int
    withdraws: str
    withdrawal: str
    withdrawal_reason: _incident_pb2.Verdict.Reason
    def __init__(self, id: _Optional[str] = ..., camera_id: _Optional[str] = ..., kind: _Optional[str] = ..., score: _Optional[float] = ..., regions: _Optional[_Iterable[_Union[_common_pb2.Region, _Mapping]]] = ..., capture_ns: _Optional[int] = ..., frame: _Optional[_Union[_common_pb2.RecordRef, _Mapping]] = ..., frame_width: _Optional[int] = ..., frame_height: _Optional[int] = ..., detector: _Optional[str] = ..., detector_version: _Optional[str] = ..., track_id: _Optional[str] = ..., attributes: _Optional[_Mapping[str, float]] = ..., published_ns: _Optional[int] = ..., withdraws: _Optional[str] = ..., withdrawal: _Optional[str] = ..., withdrawal_reason: _Optional[_Union[_incident_pb2.Verdict.Reason, str]] = ...) -> None: ...
