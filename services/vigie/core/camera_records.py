"""A camera as a record of the compacted ``cameras`` topic: its configuration and the authorisation it films under.

``vigie cameras apply cameras.yaml`` writes one record per camera, keyed by camera id; grabber replicas
in the consumer group ``vigie-grabber`` read the partitions Kafka assigns them and run those cameras
(:mod:`vigie.grabber.assignment`). A record with a null value (a tombstone) removes its camera.

The value is JSON: :class:`CameraRecord`, i.e. the cameras file's own :class:`~vigie.core.cameras.CameraConfig`
and the :class:`~vigie.core.authorisations.Authorisation` it names, validated by the same pydantic
models as the file, so a record written by another client (kcat) is held to the same rules. JSON, not
protobuf: the camera's configuration is already a pydantic model with free-form analytics sections,
and a second schema for it would drift from the file's.

Secrets follow the cameras file's rule: a camera's password is a *reference* (``credentials:
{username, password_file | password_env}``), resolved by each grabber when it opens the camera. A
source URL holding a password itself (``user:password@``, ``?pwd=``) is refused: the topic never
carries a password.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, model_validator

from vigie.core.authorisations import Authorisation
from vigie.core.cameras import CameraConfig, CamerasFile
from vigie.core.config import ConfigProblem, format_loc, locate_problems, validation_issues
from vigie.core.errors import MalformedMessage
from vigie.core.secrets import redact
from vigie.core.settings import StrictModel

__all__ = ["CameraRecord", "decode_record", "inline_password_problems", "record_problem", "records_of"]


def inline_password(source: str) -> bool:
    """Whether the source URL holds a password itself (``user:password@``, a credential query parameter)."""
    return redact(source) != source


INLINE_PASSWORD = ("its source holds a password (user:password@ or a credential parameter): the cameras topic "
                   "never carries one; give it as credentials: {username: ..., password_file: ...} (or "
                   "password_env), which each grabber reads itself")


class CameraRecord(StrictModel):
    """The value of a ``cameras`` record: one camera and the authorisation it names (None when it names none).

    Raises ``pydantic.ValidationError`` when the authorisation is not the one the camera names, or the
    source holds a password.
    """

    camera: CameraConfig = Field(description="the camera, as in cameras.yaml (file sources as absolute paths)")
    authorisation: Authorisation | None = Field(
        None, description="the prefectoral authorisation the camera names, copied from the file's `authorisations`")

    @model_validator(mode="after")
    def check_consistent(self) -> "CameraRecord":
        named = self.camera.authorisation
        given = self.authorisation.id if self.authorisation is not None else None
        if named != given:
            raise ValueError(f"camera {self.camera.id} names authorisation {named!r}, the record carries {given!r}")
        if inline_password(self.camera.source):
            raise ValueError(f"camera {self.camera.id}: {INLINE_PASSWORD}")
        return self

    def encode(self) -> bytes:
        """The record value: compact JSON of the fields set (defaults left out, so they follow the code)."""
        return self.model_dump_json(exclude_unset=True).encode()

    def same_as(self, other: "CameraRecord | None") -> bool:
        """Whether ``other`` configures the camera exactly alike (defaults included)."""
        return other is not None and self.model_dump(mode="json") == other.model_dump(mode="json")


def decode_record(topic_name: str, value: bytes, key: bytes | None = None) -> CameraRecord:
    """Parse and validate one record of the cameras topic.

    Raises:
        MalformedMessage: with the reason (``cameras: camera.fps: Input should be ...``), when the value
            is not JSON of a valid :class:`CameraRecord` (the same checks as a cameras file's, the
            frame-size checks of masks included), or ``key`` (when given) is not its camera's id.
    """
    try:
        record = CameraRecord.model_validate_json(value)
    except ValidationError as exc:
        issues = "; ".join(f"{format_loc(loc) or 'value'}: {message}" for loc, message in validation_issues(exc))
        raise MalformedMessage(f"{topic_name}: not a valid camera record: {issues}") from None
    if key is not None and key != record.camera.id.encode():
        raise MalformedMessage(f"{topic_name}: record key {key.decode(errors='replace')!r} is not its camera's id {record.camera.id!r}")
    problem = record_problem(record)
    if problem:
        raise MalformedMessage(f"{topic_name}: camera {record.camera.id}: {problem}")
    return record


def record_problem(record: CameraRecord) -> str:
    """The checks of a cameras file that need more than one camera's fields (privacy masks wholly outside the
    frame size the record gives), as one line; "" when there is none."""
    from vigie.core.camera_frames import frame_problems

    one = CamerasFile(cameras=[record.camera], authorisations=[record.authorisation] if record.authorisation else [])
    return "; ".join(f"{p.location}: {p.message}" if p.location else p.message for p in frame_problems("", one))


def records_of(cameras: CamerasFile) -> dict[str, CameraRecord]:
    """One record per camera of a validated cameras file, by camera id."""
    known = {a.id: a for a in cameras.authorisations}
    return {c.id: CameraRecord(camera=c, authorisation=known.get(c.authorisation) if c.authorisation else None)
            for c in cameras.cameras}


def inline_password_problems(text: str, cameras: CamerasFile) -> list[ConfigProblem]:
    """Cameras whose source holds a password, located in ``text`` (the cameras YAML): they may not go to the
    topic (``cameras.yaml:7: cameras[0].source: camera x: its source holds a password ...``)."""
    issues: list[tuple[tuple[Any, ...], str]] = [
        (("cameras", i, "source"), f"camera {c.id}: {INLINE_PASSWORD}")
        for i, c in enumerate(cameras.cameras) if inline_password(c.source)]
    return locate_problems(text, issues) if issues else []
