"""What the register keeps of a grabber's configuration: its authorisations and each camera's settings, digested."""

from __future__ import annotations

import hashlib

from vigie.core.authorisations import Authorisation
from vigie.core.cameras import CameraConfig
from vigie.core.secrets import redact

__all__ = ["authorisation_summary", "config_summary"]


def authorisation_summary(authorisation: Authorisation, cameras: list[str]) -> str:
    """What the register keeps of an authorisation as loaded (a change shows as a new digest)."""
    dumped = authorisation.model_dump_json()
    digest = hashlib.sha256(dumped.encode()).hexdigest()[:16]
    return (f"authorisation {authorisation.id} sha256:{digest} reference={authorisation.reference!r} "
            f"order_date={authorisation.order_date} valid_until={authorisation.valid_until} "
            f"purposes={','.join(p.value for p in authorisation.purposes)} "
            f"max_retention_days={authorisation.max_retention_days} cameras={','.join(cameras) or 'none'}")


def config_summary(camera: CameraConfig) -> str:
    """What the register keeps of a camera's configuration: a SHA-256 of it (credentials redacted first, so
    the digest cannot be used to guess a password) and its main settings. Never the password."""
    dumped = redact(camera.model_dump_json())
    digest = hashlib.sha256(dumped.encode()).hexdigest()[:16]
    return (f"config sha256:{digest} source={redact(camera.source)} fps={camera.fps:g} width={camera.width} "
            f"privacy_masks={len(camera.privacy_masks)} authorisation={camera.authorisation or 'none'}")
