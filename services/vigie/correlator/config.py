"""Correlator settings: how anomalies merge into incidents, their priority, when a closed one reopens, which
stations see which cameras, and where an incident nobody acknowledges is escalated."""

from __future__ import annotations

from fnmatch import fnmatchcase

from pydantic import Field, field_validator, model_validator

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
    max_open: int = Field(
        500, ge=10, le=5000, title="Open incidents kept per camera",
        description=("Open incidents stay in the table until an operator closes them, however old their last "
                     "anomaly; over this many open incidents on one camera (a camera nobody works), the one "
                     "unchanged for longest leaves the table, logged as an error (its actions are then refused)."),
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
    reactivation_s: dict[str, float] = Field(
        default_factory=dict, title="Reactivation threshold per kind",
        description=("Seconds after its closing during which a new anomaly of the same kind, camera, zone and place "
                     "reopens a closed incident instead of opening a new one; 0 disables it for the kind. "
                     "Kinds not listed use reactivation_default_s."),
    )
    reactivation_default_s: float = Field(
        300.0, ge=0, le=86400, title="Reactivation threshold",
        description="Reactivation threshold of the kinds not in reactivation_s, in seconds (0: never reopen).",
    )

    @field_validator("reactivation_s")
    @classmethod
    def _thresholds(cls, values: dict[str, float]) -> dict[str, float]:
        for kind, seconds in values.items():
            if not 0 <= seconds <= 86400:
                raise ValueError(f"reactivation_s[{kind}]: {seconds} s, expected 0 to 86400")
        return values

    def reactivation_for(self, kind: str) -> float:
        """Reactivation threshold of ``kind`` in seconds (0: a closed incident of this kind never reopens)."""
        return self.reactivation_s.get(kind, self.reactivation_default_s)


#: Default priority per kind (1 is the highest, 5 the lowest): life first, then intrusions, then the rest.
DEFAULT_PRIORITIES = {
    "fire": 1, "smoke": 1, "person_down": 1,
    "intrusion": 2, "crowd_movement": 2, "tamper": 2,
    "abandoned_object": 3, "density": 3, "wrong_way": 3,
    "colour_query": 4,
}


class PriorityOverride(StrictModel):
    """A priority for some cameras (shell-style patterns as in :class:`Route`), optionally only for some kinds."""

    cameras: list[str] = Field(min_length=1, description="Camera id patterns, e.g. 'school-*'.")
    kinds: list[str] = Field(default_factory=list, description="Kinds it applies to; empty: every kind.")
    priority: int = Field(ge=1, le=5, description="1 (highest) to 5 (lowest).")


class PriorityPolicy(StrictModel):
    """Priority of a new incident: the first matching camera override, else the kind's, else ``default``."""

    kinds: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_PRIORITIES), title="Priority per kind",
                                  description="Kind -> 1 (highest) to 5 (lowest); the kinds given change the built-in "
                                  "priorities (DEFAULT_PRIORITIES), the others keep theirs.")
    default: int = Field(3, ge=1, le=5, description="Priority of the kinds not listed.")
    cameras: list[PriorityOverride] = Field(default_factory=list, description="Per-camera overrides, first match wins.")

    @field_validator("kinds")
    @classmethod
    def _levels(cls, kinds: dict[str, int]) -> dict[str, int]:
        for kind, level in kinds.items():
            if not 1 <= level <= 5:
                raise ValueError(f"kinds[{kind}]: priority {level}, expected 1 (highest) to 5 (lowest)")
        return {**DEFAULT_PRIORITIES, **kinds}  # a partial list never drops fire or person_down to the default

    def priority_for(self, kind: str, camera_id: str) -> int:
        """The priority of a ``kind`` incident of ``camera_id``, 1 (highest) to 5."""
        for override in self.cameras:
            if (not override.kinds or kind in override.kinds) and any(
                    fnmatchcase(camera_id, p) for p in override.cameras):
                return override.priority
        return self.kinds.get(kind, self.default)


def _station_ids(stations: list[str]) -> list[str]:
    """``stations`` unchanged; raises ValueError for an id that cannot name a topic."""
    for station in stations:
        try:
            station_topic_base(station)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    return stations


class EscalationStep(StrictModel):
    """One level of escalation: ``after_s`` seconds without acknowledgement, the incident also goes to ``to``."""

    after_s: float = Field(gt=0, le=7 * 86400, description="Seconds since the opening (first step) or the last "
                           "escalation without an acknowledgement.")
    to: list[str] = Field(min_length=1, description="Stations added to the incident's (e.g. 'supervisors').")

    @field_validator("to")
    @classmethod
    def _ids(cls, stations: list[str]) -> list[str]:
        return _station_ids(stations)


class Route(StrictModel):
    """Cameras (shell-style patterns, e.g. 'metro-*') whose incidents go to the listed stations."""

    cameras: list[str] = Field(min_length=1, description="Camera id patterns; '*' matches all.")
    stations: list[str] = Field(min_length=1, description="Station ids receiving these cameras' incidents.")
    escalation: list[EscalationStep] = Field(
        default_factory=list, description="Escalation steps, in order, of the incidents nobody acknowledges.")

    @field_validator("stations")
    @classmethod
    def _ids(cls, stations: list[str]) -> list[str]:
        return _station_ids(stations)


class Routing(StrictModel):
    """The routing table: every route whose patterns match a camera adds its stations."""

    routes: list[Route] = Field(
        default_factory=lambda: [Route(cameras=["*"], stations=["main"])], min_length=1,
        description="At least one route; without a routing file every camera goes to station 'main'.",
    )
    stations: list[str] = Field(default_factory=list, description=(
        "Stations that only receive escalations (e.g. 'supervisors'); an escalation step may name a station only "
        "when it is here or in some route's stations."))

    @field_validator("stations")
    @classmethod
    def _ids(cls, stations: list[str]) -> list[str]:
        return _station_ids(stations)

    @model_validator(mode="after")
    def _escalations_reach_known_stations(self) -> "Routing":
        known = {s for r in self.routes for s in r.stations} | set(self.stations)
        for n, route in enumerate(self.routes):
            for step in route.escalation:
                for station in step.to:
                    if station not in known:
                        raise ValueError(
                            f"routes[{n}] (cameras {', '.join(route.cameras)}) escalates to station {station!r}, "
                            "which is neither in a route's stations nor declared in 'stations'")
        return self

    def stations_for(self, camera_id: str) -> list[str]:
        """Stations that receive ``camera_id``'s incidents, sorted, without duplicates."""
        found = {s for r in self.routes if any(fnmatchcase(camera_id, p) for p in r.cameras) for s in r.stations}
        return sorted(found)

    def all_stations(self) -> list[str]:
        """Every station named by some route, escalation step or ``stations``, sorted (each has an alert topic)."""
        named = {s for r in self.routes for s in r.stations}
        escalated = {s for r in self.routes for step in r.escalation for s in step.to}
        return sorted(named | escalated | set(self.stations))

    def escalation_for(self, camera_id: str) -> list[EscalationStep]:
        """The escalation steps of ``camera_id``: those of the first matching route that has some, else none."""
        for route in self.routes:
            if route.escalation and any(fnmatchcase(camera_id, p) for p in route.cameras):
                return list(route.escalation)
        return []


class CorrelatorSettings(StrictModel):
    """Everything the correlator needs."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    merge: MergePolicy = Field(default_factory=MergePolicy)
    routing: Routing = Field(default_factory=Routing)
    priority: PriorityPolicy = Field(default_factory=PriorityPolicy)
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


class CorrelatorPolicy(StrictModel):
    """The correlator's policy file (``vigie correlator --policy FILE``): merging and reactivation, priorities."""

    merge: MergePolicy = Field(default_factory=MergePolicy)
    priority: PriorityPolicy = Field(default_factory=PriorityPolicy)
