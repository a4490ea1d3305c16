from vigie.contracts.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditEntry(_message.Message):
    __slots__ = ("id", "kind", "camera_id", "operator", "station", "at_ns", "record", "incident_id", "detail", "service", "client", "subject")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[AuditEntry.Kind]
        KIND_VIEW: _ClassVar[AuditEntry.Kind]
        KIND_EXPORT: _ClassVar[AuditEntry.Kind]
        KIND_PURGE: _ClassVar[AuditEntry.Kind]
        KIND_HOLD: _ClassVar[AuditEntry.Kind]
        KIND_ACTION: _ClassVar[AuditEntry.Kind]
        KIND_LOGIN: _ClassVar[AuditEntry.Kind]
        KIND_LOGIN_FAILED: _ClassVar[AuditEntry.Kind]
        KIND_LOGOUT: _ClassVar[AuditEntry.Kind]
        KIND_ACCOUNT_CHANGE: _ClassVar[AuditEntry.Kind]
        KIND_CAMERA_CONFIG: _ClassVar[AuditEntry.Kind]
        KIND_CAMERA_STARTED: _ClassVar[AuditEntry.Kind]
        KIND_CAMERA_STOPPED: _ClassVar[AuditEntry.Kind]
        KIND_SERVICE_STARTED: _ClassVar[AuditEntry.Kind]
        KIND_SERVICE_STOPPED: _ClassVar[AuditEntry.Kind]
        KIND_CAMERA_REFUSED: _ClassVar[AuditEntry.Kind]
        KIND_AUTHORISATION: _ClassVar[AuditEntry.Kind]
        KIND_ANALYTIC_REFUSED: _ClassVar[AuditEntry.Kind]
        KIND_RECORDING: _ClassVar[AuditEntry.Kind]
        KIND_HOLD_RELEASED: _ClassVar[AuditEntry.Kind]
        KIND_TRANSMISSION: _ClassVar[AuditEntry.Kind]
        KIND_VIEW_REFUSED: _ClassVar[AuditEntry.Kind]
    KIND_UNSPECIFIED: AuditEntry.Kind
    KIND_VIEW: AuditEntry.Kind
    KIND_EXPORT: AuditEntry.Kind
    KIND_PURGE: AuditEntry.Kind
    KIND_HOLD: AuditEntry.Kind
    KIND_ACTION: AuditEntry.Kind
    KIND_LOGIN: AuditEntry.Kind
    KIND_LOGIN_FAILED: AuditEntry.Kind
    KIND_LOGOUT: AuditEntry.Kind
    KIND_ACCOUNT_CHANGE: AuditEntry.Kind
    KIND_CAMERA_CONFIG: AuditEntry.Kind
    KIND_CAMERA_STARTED: AuditEntry.Kind
    KIND_CAMERA_STOPPED: AuditEntry.Kind
    KIND_SERVICE_STARTED: AuditEntry.Kind
    KIND_SERVICE_STOPPED: AuditEntry.Kind
    KIND_CAMERA_REFUSED: AuditEntry.Kind
    KIND_AUTHORISATION: AuditEntry.Kind
    KIND_ANALYTIC_REFUSED: AuditEntry.Kind
    KIND_RECORDING: AuditEntry.Kind
    KIND_HOLD_RELEASED: AuditEntry.Kind
    KIND_TRANSMISSION: AuditEntry.Kind
    KIND_VIEW_REFUSED: AuditEntry.Kind
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    STATION_FIELD_NUMBER: _ClassVar[int]
    AT_NS_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: AuditEntry.Kind
    camera_id: str
    operator: str
    station: str
    at_ns: int
    record: _common_pb2.RecordRef
    incident_id: str
    detail: str
    service: str
    client: str
    subject: str
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[AuditEntry.Kind, str]] = ..., camera_id: _Optional[str] = ..., operator: _Optional[str] = ..., station: _Optional[str] = ..., at_ns: _Optional[int] = ..., record: _Optional[_Union[_common_pb2.RecordRef, _Mapping]] = ..., incident_id: _Optional[str] = ..., detail: _Optional[str] = ..., service: _Optional[str] = ..., client: _Optional[str] = ..., subject: _Optional[str] = ...) -> None: ...
