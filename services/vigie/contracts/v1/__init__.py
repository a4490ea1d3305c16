"""Version 1 of the contracts (package ``vigie.v1``). Generated modules: do not edit them."""

from vigie.contracts.v1.action_pb2 import OperatorAction
from vigie.contracts.v1.anomaly_pb2 import Anomaly
from vigie.contracts.v1.audit_pb2 import AuditEntry
from vigie.contracts.v1.camera_status_pb2 import CameraStatus
from vigie.contracts.v1.common_pb2 import RecordRef, Region
from vigie.contracts.v1.deadletter_pb2 import DeadLetter
from vigie.contracts.v1.frame_pb2 import Frame
from vigie.contracts.v1.incident_pb2 import CameraIncidents, HistoryItem, Incident, Note, Verdict

__all__ = [
    "Anomaly",
    "AuditEntry",
    "CameraStatus",
    "DeadLetter",
    "Frame",
    "CameraIncidents",
    "HistoryItem",
    "Incident",
    "Note",
    "OperatorAction",
    "RecordRef",
    "Region",
    "Verdict",
]
