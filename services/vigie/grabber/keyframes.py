"""Waiting for the first keyframe of a connection, counting the packets skipped meanwhile.

A live stream joined mid-GOP (every RTSP connection, a file cut anywhere) starts with
packets that reference a keyframe the decoder never saw. FFmpeg's decoders swallow
them without an error (an H.264 transport stream cut at a sixth of a 2 s GOP: 36 of 84
packets gave no frame and raised nothing), so they were never counted. The gate skips
them before decoding, counted in ``SourceStats.skipped_before_keyframe``.
"""

from __future__ import annotations

import logging

import av

from .source_base import SourceStats

__all__ = ["KeyframeGate", "MAX_PACKETS_BEFORE_KEYFRAME"]

log = logging.getLogger("vigie.grabber.keyframes")

#: Packets skipped at most while waiting for a keyframe; then every packet is decoded (a stream
#: with gradual intra refresh never flags one), with a warning.
MAX_PACKETS_BEFORE_KEYFRAME = 500


class KeyframeGate:
    """Says which packets of one connection to skip: those before its first keyframe.

    ``stats``: the camera's counters (``skipped_before_keyframe`` grows by one per skipped
    packet). Create one per connection (opened container).
    """

    def __init__(self, camera_id: str, stats: SourceStats, limit: int = MAX_PACKETS_BEFORE_KEYFRAME):
        self.camera_id = camera_id
        self.stats = stats
        self.limit = limit
        self.open = False
        self.skipped = 0

    def skip(self, packet: av.Packet) -> bool:
        """True when ``packet`` must not be decoded (counted). Empty packets (decoder flush) pass."""
        if self.open or not packet.size:
            return False
        if packet.is_keyframe:
            self.open = True
            if self.skipped:
                log.info("camera %s: %d packet(s) before the first keyframe skipped", self.camera_id,
                         self.skipped, extra={"camera": self.camera_id})
            return False
        self.skipped += 1
        self.stats.skipped_before_keyframe += 1
        if self.skipped >= self.limit:
            self.open = True
            log.warning("camera %s: no keyframe in the first %d packets; decoding them anyway", self.camera_id,
                        self.skipped, extra={"camera": self.camera_id})
        return True
