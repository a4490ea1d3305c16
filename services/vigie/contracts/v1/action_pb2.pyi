from vigie.contracts.v1 import incident_pb2 as _incident_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OperatorAction(_message.Message):
    __slots__ = ("id", "incident_id", "camera_id", "kind", "operator", "station", "at_ns", "comment", "assignee", "verdict", "reason", "automatic")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[OperatorAction.Kind]
        KIND_ACKNOWLEDGE: _ClassVar[OperatorAction.Kind]
        KIND_ESCALATE: _ClassVar[OperatorAction.Kind]
        KIND_COMMENT: _ClassVar[OperatorAction.Kind]
        KIND_CLOSE: _ClassVar[OperatorAction.Kind]
        KIND_HOLD: _ClassVar[OperatorAction.Kind]
        KIND_RESUME: _ClassVar[OperatorAction.Kind]
        KIND_ASSIGN: _ClassVar[OperatorAction.Kind]
    KIND_UNSPECIFIED: OperatorAction.Kind
    KIND_ACKNOWLEDGE: OperatorAction.Kind
    KIND_ESCALATE: OperatorAction.Kind
    KIND_COMMENT: OperatorAction.Kind
    KIND_CLOSE: OperatorAction.Kind
    KIND_HOLD: OperatorAction.Kind
    KIND_RESUME: OperatorAction.Kind
    KIND_ASSIGN: OperatorAction.Kind
    ID_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    STATION_FIELD_NUMBER: _ClassVar[int]
    AT_NS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AUTOMATIC_FIELD_NUMBER: _ClassVar[int]
    id: str
    incident_id: str
    camera_id: str
    kind: OperatorAction.Kind
    operator: str
    station: str
    at_ns: int
    comment: str
    assignee: str
    verdict: _incident_pb2.Verdict.Kind
    reason: _incident_pb2.Verdict.Reason
    automatic: bool
    def __init__(self, id: _Optional[str] = ..., incident_id: _Optional[str] = ..., camera_id: _Optional[str] = ..., kind: _Optional[_Union[OperatorAction.Kind, str]] = ..., operator: _Optional[str] = ..., station: _Optional[str] = ..., at_ns: _Optional[int] = ..., comment: _Optional[str] = ..., assignee: _Optional[str] = ..., verdict: _Optional[_Union[_incident_pb2.Verdict.Kind, str]] = ..., reason: _Optional[_Union[_incident_pb2.Verdict.Reason, str]] = ..., automatic: _Optional[bool] = ...) -> None: ...
