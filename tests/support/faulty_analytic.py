"""A deliberately failing analytic for fault tests, registered through ``VIGIE_ANALYTICS_PLUGINS``.

``VIGIE_ANALYTICS_PLUGINS=faulty=tests.support.faulty_analytic:Faulty`` (the repository root
on ``sys.path``, as with ``python -m vigie`` run from it) makes kind ``faulty`` available to
the detector. It raises one detection per frame (a 4x4 box at the top-left corner, track
id ``<camera>/faulty``), except on the frames listed in ``fail_at_s``: there it raises
``RuntimeError`` (a bug inside an analytic). It counts the frames it has seen per camera,
forgotten by :meth:`Faulty.forget`, so a test can see that a failure reset the camera.
"""

from __future__ import annotations

from pydantic import Field

from vigie.core.settings import StrictModel
from vigie.detector.analytics.base import Analytic, Box, Detection, FrameBatch


class FaultyConfig(StrictModel):
    """Settings of the failing analytic."""

    fail_at_s: list[float] = Field(default_factory=list, max_length=64, description=(
        "Stream times (frame PTS, seconds, to the millisecond) of the frames it raises on."))


class Faulty(Analytic):
    """Detects every frame, raises ``RuntimeError`` on the frames at ``fail_at_s``."""

    kind = "faulty"
    config_model = FaultyConfig
    #: The purposes that can justify running it (a plugin declares its own).
    purposes = ("security_of_persons",)

    def __init__(self, config: FaultyConfig | None = None, device: object = "cpu") -> None:
        self.config = config or FaultyConfig()
        self.seen: dict[str, int] = {}

    def process(self, batch: FrameBatch) -> list[Detection]:
        fail = {round(s * 1000) for s in self.config.fail_at_s}
        for camera_id, ns in zip(batch.camera_ids, batch.time_ns):
            if round(ns / 1e6) in fail:
                raise RuntimeError(f"injected fault on {camera_id} at {ns / 1e9:.3f} s")
        for camera_id in batch.camera_ids:
            self.seen[camera_id] = self.seen.get(camera_id, 0) + 1
        return [Detection(i, self.kind, 1.0, [Box(0, 0, 4, 4)], track_id=f"{cam}/faulty",
                          attributes={"seen": float(self.seen[cam])})
                for i, cam in enumerate(batch.camera_ids)]

    def forget(self, camera_id: str) -> None:
        self.seen.pop(camera_id, None)
