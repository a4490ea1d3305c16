"""The checks of ``vigie validate`` on a cameras file, shared by ``vigie cameras apply``.

Both refuse the same files with the same errors (``FILE:LINE: location: message``, one per line), so a
file that validates is a file that applies.
"""

from __future__ import annotations

from pathlib import Path

from vigie.core.cameras import CamerasFile

__all__ = ["validate_cameras"]


def validate_cameras(cameras_path: str | Path) -> tuple[CamerasFile, list[str]]:
    """Load and check a cameras file as ``vigie validate`` does; returns it and what to report (notes, warnings).

    Every problem of the file, its analytics sections, its cameras' password variables and files, missing
    source files, and privacy masks or zones wholly outside frames of a size the file gives included, is
    reported as ``FILE:LINE: location: message``, one per line. Imports the detector's analytics (torch).

    Raises:
        ConfigError: (:class:`vigie.core.config.ConfigError`) listing every problem.
    """
    from vigie.core.authorisations import utc_now
    from vigie.core.cameras import load_cameras
    from vigie.core.config import ConfigError as FileError, locate_problems, read_config_text
    from vigie.detector.app import DEFAULT_KINDS
    from vigie.detector.plan import AnalyticsPlan, analytics_problems, authorised_sections

    lines = []
    cameras = load_cameras(Path(cameras_path), analytics_problems, check_credentials=True,
                           authorisations_at=utc_now(), check_files=True, check_zones=True)
    AnalyticsPlan({c.id: c.analytics for c in cameras.cameras}, DEFAULT_KINDS, "cpu")
    _, refusals = authorised_sections(cameras, DEFAULT_KINDS)
    index = {c.id: i for i, c in enumerate(cameras.cameras)}
    asked = [(("cameras", index[r.camera_id], "analytics", r.kind), r.reason) for r in refusals if r.asked]
    if asked:
        raise FileError(cameras_path, locate_problems(read_config_text(cameras_path), asked))
    lines.append(f"{cameras_path}: {len(cameras.cameras)} camera(s) valid: "
                 f"{', '.join(c.id for c in cameras.cameras)}")
    for authorisation in cameras.authorisations:
        covered = [c.id for c in cameras.cameras if c.authorisation == authorisation.id]
        lines.append(f"  authorisation {authorisation.id} ({authorisation.reference}): in force "
                     f"{authorisation.order_date} to {authorisation.valid_until}, images kept at most "
                     f"{authorisation.max_retention_days} day(s), purposes "
                     f"{', '.join(p.value for p in authorisation.purposes)}; cameras: {', '.join(covered) or 'none'}")
    for refusal in refusals:
        lines.append(f"  note: default {refusal.reason}: it will not run there")
    for camera in cameras.cameras:
        if camera.privacy_masks and camera.privacy_masks_reference_size is None:
            lines.append(f"  warning: camera {camera.id}: privacy masks without privacy_masks_reference_size: "
                         "the size of its first frame will be assumed")
    return cameras, lines
