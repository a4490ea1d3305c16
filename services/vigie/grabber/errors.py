"""Errors raised by the grabber."""

from __future__ import annotations

from vigie.core.config import ConfigError
from vigie.core.errors import VigieError

__all__ = ["ConfigError", "GrabberError", "SourceError"]


class GrabberError(VigieError):
    """Base class of grabber errors."""


class SourceError(GrabberError):
    """A camera source cannot be used and retrying will not help.

    Raised for files (missing, unreadable, no video stream) and for malformed source
    URLs. The message starts with ``camera <id>:``. Live sources (rtsp, http) never
    raise it for network problems: they reconnect with back-off instead.
    """

    def __init__(self, camera_id: str, message: str):
        self.camera_id = camera_id
        super().__init__(f"camera {camera_id}: {message}")
