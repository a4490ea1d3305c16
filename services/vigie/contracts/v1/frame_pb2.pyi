from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Frame(_message.Message):
    __slots__ = ("camera_id", "seq", "capture_ns", "pts", "width", "height", "encoding", "data", "privacy_masks", "fps", "source_width", "source_height")
    class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ENCODING_UNSPECIFIED: _ClassVar[Frame.Encoding]
        ENCODING_JPEG: _ClassVar[Frame.Encoding]
    ENCODING_UNSPECIFIED: Frame.Encoding
    ENCODING_JPEG: Frame.Encoding
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_NS_FIELD_NUMBER: _ClassVar[int]
    PTS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_MASKS_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    SOURCE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    seq: int
    capture_ns: int
    pts: float
    width: int
    height: int
    encoding: Frame.Encoding
    data: bytes
    privacy_masks: _containers.RepeatedScalarFieldContainer[str]
    fps: float
    source_width: int
    source_height: int
    def __init__(self, camera_id: _Optional[str] = ..., seq: _Optional[int] = ..., capture_ns: _Optional[int] = ..., pts: _Optional[float] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., encoding: _Optional[_Union[Frame.Encoding, str]] = ..., data: _Optional[bytes] = ..., privacy_masks: _Optional[_Iterable[str]] = ..., fps: _Optional[float] = ..., source_width: _Optional[int] = ..., source_height: _Optional[int] = ...) -> None: ...
