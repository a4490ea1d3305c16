"""An access export made and recorded in one step, for the command line and the console alike.

:func:`make_access_export` runs :func:`vigie.evidence.access.access_export` and records its ``export``
entry (:meth:`vigie.evidence.catalogue.Catalogue.record_access_export`) before anything is handed
over: the caller writes or sends the MP4 and the manifest only once it returned.
"""

from __future__ import annotations

import time
import uuid

from vigie.core.cameras import CamerasFile
from vigie.core.settings import KafkaSettings
from vigie.core.topics import Topics
from vigie.evidence.access import Box, Method, access_export
from vigie.evidence.catalogue import Catalogue
from vigie.evidence.clip import Clip

__all__ = ["PERSON_SOURCES", "make_access_export"]

#: ``persons`` choices -> the ``objects`` argument of :func:`access_export` (None: the stage when installed).
PERSON_SOURCES = {"auto": None, "objects": True, "foreground": False}


async def make_access_export(kafka: KafkaSettings, catalogue: Catalogue, cameras: CamerasFile, camera_id: str,
                             start_ns: int, end_ns: int, marked_at_ns: int, marked: tuple[int, int, int, int], *,
                             by: str, method: Method = "blur", persons: str = "auto",
                             client: str = "") -> tuple[str, Clip, dict]:
    """``(export id, clip, manifest)`` of an access export by supervisor ``by`` (the caller checked the role),
    recorded in the register's outbox. Raises AccessError (a request refused: range, retention, camera,
    requester) or SQLAlchemy's errors (then nothing is recorded, and nothing must be handed over)."""
    export_id = uuid.uuid4().hex[:16]
    clip, manifest = await access_export(kafka, Topics(kafka.namespace), cameras, camera_id, start_ns, end_ns,
                                         marked_at_ns, Box(*marked), now_ns=time.time_ns(), method=method,
                                         objects=PERSON_SOURCES[persons])
    manifest = {"export": export_id, **manifest, "by": by}
    await catalogue.record_access_export(export_id, manifest, by, client=client)
    return export_id, clip, manifest
