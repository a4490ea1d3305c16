"""The topic catalogue and one typed wrapper per topic around its protobuf message (the ``cameras`` topic's
values are JSON of the cameras file's own pydantic model: :class:`CamerasTopic`).

Every record a service writes or reads goes through a :class:`Topic`: it knows the
topic's full name (namespace included), its partitions and retention, and turns
messages into bytes and back. No module passes raw bytes between stages.

Keys: every topic is keyed by camera id, so that all records of one camera land in
one partition, in order, and the correlator's tables are co-partitioned with the
anomalies and actions topics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import DecodeError, Message

from vigie.core.camera_records import CameraRecord, decode_record
from vigie.contracts.v1 import Anomaly, AuditEntry, CameraStatus, DeadLetter, Frame, Incident, OperatorAction
from vigie.core.errors import ConfigError, MalformedMessage
from vigie.core.settings import MAX_RETENTION_MS

M = TypeVar("M", bound=Message)

HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS
#: Kafka's retention check runs every 5 minutes (log.retention.check.interval.ms).
CHECK_MS = 5 * 60 * 1000
#: Longest retention a topic may ask for: what is left of 30 days after a one-hour segment and the check.
LONGEST_RETENTION_MS = MAX_RETENTION_MS - HOUR_MS - CHECK_MS
#: Partitions of every camera-keyed topic. The anomalies and actions topics must have the
#: same count: the correlator's incident table is partitioned like both.
CAMERA_PARTITIONS = 6

#: Default partitions of the compacted ``cameras`` topic: grabber replicas share them, so at most this many
#: replicas get cameras (``vigie topics apply --cameras-partitions``; never add partitions to an existing
#: cameras topic: a camera's key would then map to another partition than its older records).
CAMERAS_PARTITIONS = 12

#: Default retention of the frames topic: records gone within a day (segment roll and check included), so
#: that the topic keeps images no longer than the shortest retention an authorisation may give (one day).
FRAMES_RETENTION_MS = DAY_MS - HOUR_MS - CHECK_MS

_STATION_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """How a topic is created: base name, partitions, retention and segment roll (ms), cleanup policy.

    Kafka deletes whole closed segments only, so a record may live up to
    ``retention_ms + segment_ms`` (plus the 5-minute retention check). Both together
    must stay within the 30-day ceiling. Raises ConfigError otherwise.
    """

    base: str
    partitions: int
    retention_ms: int
    segment_ms: int = HOUR_MS
    cleanup_policy: str = "delete"

    def __post_init__(self) -> None:
        if self.retention_ms <= 0 or self.segment_ms <= 0:
            raise ConfigError(f"topic {self.base}: retention.ms and segment.ms must be positive")
        if self.retention_ms + self.segment_ms + CHECK_MS > MAX_RETENTION_MS:
            raise ConfigError(
                f"topic {self.base}: retention.ms + segment.ms must keep records at most 30 days "
                f"({MAX_RETENTION_MS} ms), got {self.retention_ms} + {self.segment_ms}"
            )

    def configs(self) -> dict[str, str]:
        """Topic-level configs given to the broker."""
        return {"retention.ms": str(self.retention_ms), "segment.ms": str(self.segment_ms),
                "cleanup.policy": self.cleanup_policy}


class Topic(Generic[M]):
    """Typed access to one topic.

    Args:
        spec: creation parameters.
        message_type: the protobuf class of its values.
        namespace: prefix of the topic name.
    """

    def __init__(self, spec: TopicSpec, message_type: type[M], namespace: str = "") -> None:
        self.spec = spec
        self.message_type = message_type
        self.name = f"{namespace}{spec.base}"

    def encode(self, message: M) -> bytes:
        """Serialise ``message``. Raises TypeError for a message of another type."""
        if not isinstance(message, self.message_type):
            raise TypeError(f"topic {self.name} carries {self.message_type.__name__}, not {type(message).__name__}")
        return message.SerializeToString()

    def decode(self, value: bytes | None) -> M:
        """Parse a record value. Raises :class:`MalformedMessage` with the reason when it is not a valid message."""
        if value is None:
            raise MalformedMessage(f"{self.name}: empty record (tombstone)")
        message = self.message_type()
        try:
            message.ParseFromString(value)
        except DecodeError as exc:
            raise MalformedMessage(f"{self.name}: not a {self.message_type.DESCRIPTOR.full_name}: {exc}") from exc
        return message

    @staticmethod
    def key(camera_id: str) -> bytes:
        """Record key for ``camera_id``."""
        return camera_id.encode()

    def __repr__(self) -> str:
        return f"Topic({self.name!r}, {self.message_type.__name__})"


class CamerasTopic(Topic):
    """The compacted ``cameras`` topic: a :class:`~vigie.core.camera_records.CameraRecord` (JSON) per camera,
    keyed by camera id; a record with a null value (tombstone) removes the camera."""

    def __init__(self, partitions: int, namespace: str = "") -> None:
        # compact only: a camera's latest record stays for as long as the camera exists (retention.ms does not
        # apply to compacted topics; it is set like the others' for the 30-day check of the spec)
        super().__init__(TopicSpec("cameras", partitions, LONGEST_RETENTION_MS, cleanup_policy="compact"),
                         CameraRecord, namespace)

    def encode(self, message: CameraRecord) -> bytes:
        """JSON of ``message``. Raises TypeError for another type."""
        if not isinstance(message, CameraRecord):
            raise TypeError(f"topic {self.name} carries CameraRecord, not {type(message).__name__}")
        return message.encode()

    def decode(self, value: bytes | None, key: bytes | None = None) -> CameraRecord:
        """Parse and validate a record value (and, given ``key``, check it is its camera's id).

        Raises :class:`MalformedMessage` with the reason (a tombstone, ``None``, too: check it first)."""
        if value is None:
            raise MalformedMessage(f"{self.name}: empty record (tombstone)")
        return decode_record(self.name, value, key)

    def misplaced(self, key: bytes, partition: int, partitions: int) -> str | None:
        """Why a record of camera ``key`` found in ``partition`` (of ``partitions``) is not where Kafka's
        default partitioner puts that key (murmur2, as ``vigie cameras apply`` and Java clients write it), or
        None when it is. A misplaced record is ignored: another replica may own the camera's own partition,
        and two replicas would run the camera (kcat's default partitioner differs: ``-X
        partitioner=murmur2_random``)."""
        from vigie.core.kafka import key_partition  # the clients are imported when used

        home = key_partition(key, partitions)
        if home == partition:
            return None
        return (f"{self.name}: record of {key.decode(errors='replace')!r} written to partition {partition}, but "
                f"its key belongs to partition {home} (murmur2, Kafka's default partitioner): ignored; write it "
                f"with `vigie cameras apply`, or with kcat add -X partitioner=murmur2_random")


def station_topic_base(station: str) -> str:
    """Base name of the alert topic of one operator station. Raises ConfigError on a bad station id."""
    if not _STATION_RE.fullmatch(station):
        raise ConfigError(f"station id {station!r}: use 1-63 lowercase letters, digits, '_' or '-'")
    return f"alerts.{station}"


class Topics:
    """The whole catalogue inside one namespace.

    Args:
        namespace: prefix of every topic name ('' in production, unique per test).
        frames_retention_ms: retention of the frames topic (images), at most 30 days; services holding
            camera authorisations refuse to start when it (segment roll included) exceeds the shortest.
        cameras_partitions: partitions of the ``cameras`` topic when it is created (the most grabber
            replicas that get cameras).
    """

    def __init__(self, namespace: str = "", frames_retention_ms: int = FRAMES_RETENTION_MS,
                 cameras_partitions: int = CAMERAS_PARTITIONS) -> None:
        self.namespace = namespace
        self.frames = Topic(TopicSpec("frames", CAMERA_PARTITIONS, frames_retention_ms), Frame, namespace)
        self.anomalies = Topic(TopicSpec("anomalies", CAMERA_PARTITIONS, LONGEST_RETENTION_MS), Anomaly, namespace)
        self.incidents = Topic(TopicSpec("incidents", CAMERA_PARTITIONS, LONGEST_RETENTION_MS), Incident, namespace)
        self.actions = Topic(TopicSpec("actions", CAMERA_PARTITIONS, LONGEST_RETENTION_MS), OperatorAction, namespace)
        self.deadletter = Topic(TopicSpec("deadletter", 1, LONGEST_RETENTION_MS), DeadLetter, namespace)
        self.audit = Topic(TopicSpec("audit", 1, LONGEST_RETENTION_MS), AuditEntry, namespace)
        # Latest status per camera (compacted; a camera gone from every grabber ages out after 7 days).
        self.camera_status = Topic(TopicSpec("camera-status", CAMERA_PARTITIONS, 7 * 24 * HOUR_MS,
                                             cleanup_policy="compact,delete"), CameraStatus, namespace)
        # Cameras to run, latest configuration per camera (compacted; `vigie cameras apply` writes it).
        self.cameras = CamerasTopic(cameras_partitions, namespace)

    def alerts(self, station: str) -> Topic[Incident]:
        """Alert topic of ``station``: incidents routed to it."""
        return Topic(TopicSpec(station_topic_base(station), 3, LONGEST_RETENTION_MS), Incident, self.namespace)

    def all(self, stations: list[str] = ()) -> list[Topic]:
        """Every topic of the catalogue, with the alert topics of ``stations``."""
        fixed = [self.frames, self.anomalies, self.incidents, self.actions, self.deadletter, self.audit,
                 self.camera_status, self.cameras]
        return fixed + [self.alerts(s) for s in stations]
