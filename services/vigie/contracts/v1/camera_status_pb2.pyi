from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CameraStatus(_message.Message):
    __slots__ = ("camera_id", "state", "since_ns", "error", "updated_ns", "grabber", "last_capture_ns", "heartbeat_s")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SINCE_NS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    UPDATED_NS_FIELD_NUMBER: _ClassVar[int]
    GRABBER_FIELD_NUMBER: _ClassVar[int]
    LAST_CAPTURE_NS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_S_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    state: str
    since_ns: int
    error: str
    updated_ns: int
    grabber: str
    last_capture_ns: int
    heartbeat_s: float
    def __init__(self, camera_id: _Optional[str] = ..., state: _Optional[str] = ..., since_ns: _Optional[int] = ..., error: _Optional[str] = ..., updated_ns: _Optional[int] = ..., grabber: _Optional[str] = ..., last_capture_ns: _Optional[int] = ..., heartbeat_s: _Optional[float] = ...) -> None: ...
