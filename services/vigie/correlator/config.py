"""Correlator settings: how anomalies merge into incidents, and which stations see which cameras."""

from __future__ import annotations

from fnmatch import fnmatchcase

from pydantic import Field, field_validator

from vigie.core.errors import ConfigError
from vigie.core.settings import KafkaSettings, StrictModel
from vigie.core.topics import station_topic_base


class MergePolicy(StrictModel):
    """When an anomaly joins an open incident instead of opening a new one."""

    window_s: float = Field(
        120.0, gt=0, le=86400, title="Merge window",
        description="Seconds since the incident's last anomaly during which a new anomaly may still join it.",
    )
    min_iou: float = Field(
        0.1, ge=0, le=1, title="Minimum overlap",
        description="Intersection over union between the anomaly's and the incident's regions needed to merge.",
    )
    camera_wide_kinds: list[str] = Field(
        default_factory=lambda: ["crowd_movement"], title="Camera-wide kinds",
        description="Kinds merged per camera whatever their regions (a surge moves across the view).",
    )
    update_interval_s: float = Field(
        10.0, ge=0, le=3600, title="Update interval",
        description="Least seconds between two published updates of an incident that only grew its count.",
    )
    forget_after_s: float = Field(
        3600.0, gt=0, le=30 * 86400, title="Forget after",
        description="Seconds after its last anomaly when an incident leaves the table (actions then no longer apply).",
    )
    remember_ids: int = Field(
        1024, ge=16, le=100_000, title="Anomaly ids remembered",
        description=("Latest anomaly ids kept per camera (8 bytes each, in the incident table) so that an anomaly "
                     "delivered again is recognised and counted once; a replay older than this many anomalies "
                     "of the camera would be counted again."),
    )
    remember_actions: int = Field(
        256, ge=16, le=100_000, title="Action ids remembered",
        description="Latest operator action ids kept per camera so that an action delivered again applies once.",
    )


class Route(StrictModel):
    """Cameras (shell-style patterns, e.g. 'metro-*') whose incidents go to the listed stations."""

    cameras: list[str] = Field(min_length=1, description="Camera id patterns; '*' matches all.")
    stations: list[str] = Field(min_length=1, description="Station ids receiving these cameras' incidents.")

    @field_validator("stations")
    @classmethod
    def _station_ids(cls, stations: list[str]) -> list[str]:
        for station in stations:
            try:
                station_topic_base(station)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return stations


class Routing(StrictModel):
    """The routing table: every route whose patterns match a camera adds its stations."""

    routes: list[Route] = Field(
        default_factory=lambda: [Route(cameras=["*"], stations=["main"])], min_length=1,
        description="At least one route; without a routing file every camera goes to station 'main'.",
    )

    def stations_for(self, camera_id: str) -> list[str]:
        """Stations that receive ``camera_id``'s incidents, sorted, without duplicates."""
        found = {s for r in self.routes if any(fnmatchcase(camera_id, p) for p in r.cameras) for s in r.stations}
        return sorted(found)

    def all_stations(self) -> list[str]:
        """Every station named by some route, sorted."""
        return sorted({s for r in self.routes for s in r.stations})


class CorrelatorSettings(StrictModel):
    """Everything the correlator needs."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    merge: MergePolicy = Field(default_factory=MergePolicy)
    routing: Routing = Field(default_factory=Routing)
    http_host: str = Field("127.0.0.1", description="Address of the health and metrics endpoint.")
    http_port: int = Field(8093, ge=0, le=65535, description="Port of the health and metrics endpoint.")
    session_timeout_s: float = Field(
        15.0, ge=6, le=300, title="Group session timeout",
        description=("Seconds without a heartbeat before the broker removes a worker from the consumer group "
                     "and hands its partitions to the others (a killed worker's partitions wait this long)."),
    )
    data_dir: str | None = Field(None, description=(
        "Folder of the faust worker's local files (its table store is in memory, restored from the "
        "changelog topic); default: <temp dir>/<app id>-data."))
