"""Camera authorisations: the prefectoral orders under which cameras film, their purposes and retention.

A city may film the public way only under an order of the prefect that names the cameras, the
purposes they serve (a closed list, :class:`Purpose`) and how long their images may be kept (at
most 30 days). Vigie enforces each part:

- the grabber opens a camera only while the order it names is in force (:meth:`Authorisation.problem`),
  and stops it on the day the order expires, both recorded in the register;
- the detector runs an analytic kind on a camera only when the camera's order lists one of the
  purposes that can justify the kind (:data:`KIND_PURPOSES`, :func:`kind_problem`);
- images never outlive the shortest authorised retention: the ``frames`` topic's retention is
  checked against it at start-up (:func:`longest_keep_problem`), and evidence is destroyed when its
  camera's retention ends.

The orders are declared in the cameras file, beside the cameras::

    authorisations:
      - id: centre-2026
        reference: "Arrêté préfectoral n° 2026-0142"
        order_date: 2026-03-02
        valid_until: 2031-03-01
        purposes: [security_of_persons, protection_of_property, traffic_regulation]
        max_retention_days: 15
    cameras:
      - id: place-carnot-1
        authorisation: centre-2026
        source: rtsp://10.0.4.21:554/stream1
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable

from pydantic import Field, field_validator

from vigie.core.settings import StrictModel

__all__ = [
    "Authorisation", "Clock", "DAY_NS", "KIND_PURPOSES", "Purpose", "kind_problem", "longest_keep_problem",
    "purposes_of", "utc_now",
]

DAY_NS = 86_400 * 10**9
#: The legal ceiling on an authorised retention, days.
MAX_RETENTION_DAYS = 30

#: Returns the current time, an aware UTC datetime. Services take one so tests can advance time.
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The current time, aware, UTC: the default :data:`Clock`."""
    return dt.datetime.now(dt.timezone.utc)


class Purpose(str, enum.Enum):
    """The purposes a prefectoral order may list (the closed list of the law on video protection)."""

    SECURITY_OF_PERSONS = "security_of_persons"
    PROTECTION_OF_PROPERTY = "protection_of_property"
    PROTECTION_OF_PUBLIC_BUILDINGS = "protection_of_public_buildings"
    FIRE_AND_ACCIDENT_PREVENTION = "fire_and_accident_prevention"
    RESCUE_OF_PERSONS = "rescue_of_persons"
    NATURAL_OR_TECHNOLOGICAL_RISKS = "natural_or_technological_risks"
    TRAFFIC_REGULATION = "traffic_regulation"
    TERRORISM_PREVENTION = "terrorism_prevention"
    DRUG_TRAFFICKING = "drug_trafficking"
    CUSTOMS_FRAUD = "customs_fraud"
    SHOPLIFTING = "shoplifting"


P = Purpose
#: Analytic kind -> the purposes that can justify running it. A kind absent here (a plugin) declares its
#: own with a ``purposes`` class attribute (:func:`purposes_of`); one that declares none runs nowhere.
KIND_PURPOSES: dict[str, frozenset[Purpose]] = {
    "abandoned_object": frozenset({P.SECURITY_OF_PERSONS, P.PROTECTION_OF_PROPERTY, P.PROTECTION_OF_PUBLIC_BUILDINGS,
                                   P.TERRORISM_PREVENTION}),
    "crowd_movement": frozenset({P.SECURITY_OF_PERSONS, P.RESCUE_OF_PERSONS, P.TERRORISM_PREVENTION}),
    "density": frozenset({P.SECURITY_OF_PERSONS, P.RESCUE_OF_PERSONS, P.NATURAL_OR_TECHNOLOGICAL_RISKS}),
    "intrusion": frozenset({P.SECURITY_OF_PERSONS, P.PROTECTION_OF_PROPERTY, P.PROTECTION_OF_PUBLIC_BUILDINGS,
                            P.TERRORISM_PREVENTION}),
    "wrong_way": frozenset({P.TRAFFIC_REGULATION, P.SECURITY_OF_PERSONS}),
    "person_down": frozenset({P.RESCUE_OF_PERSONS, P.SECURITY_OF_PERSONS}),
    "fire": frozenset({P.FIRE_AND_ACCIDENT_PREVENTION, P.RESCUE_OF_PERSONS}),
    "smoke": frozenset({P.FIRE_AND_ACCIDENT_PREVENTION, P.RESCUE_OF_PERSONS}),
    # Tampering attacks the authorised system itself, whatever it was authorised for.
    "tamper": frozenset(Purpose),
    "colour_query": frozenset({P.SECURITY_OF_PERSONS, P.PROTECTION_OF_PROPERTY, P.TERRORISM_PREVENTION,
                               P.DRUG_TRAFFICKING, P.CUSTOMS_FRAUD, P.SHOPLIFTING}),
}
del P


def purposes_of(kind: str, declared: Iterable[str] | None = None) -> frozenset[Purpose]:
    """The purposes that can justify ``kind``: :data:`KIND_PURPOSES`, else ``declared`` (a plugin's
    ``purposes`` attribute; unknown names are ignored), else none."""
    if kind in KIND_PURPOSES:
        return KIND_PURPOSES[kind]
    known = {p.value for p in Purpose}
    return frozenset(Purpose(p) for p in (declared or ()) if p in known)


class Authorisation(StrictModel):
    """One prefectoral order. Dates are calendar days, UTC; the order is in force from ``order_date``
    through ``valid_until`` inclusive."""

    id: str = Field(..., min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*$",
                    description="slug the cameras name it by")
    reference: str = Field(..., min_length=1, max_length=200,
                           description="the order's reference as the prefecture wrote it, e.g. 'Arrêté n° 2026-0142'")
    authority: str = Field("", max_length=200, description="who issued it, e.g. 'Préfecture du Rhône'")
    order_date: dt.date = Field(..., description="date of the order (YYYY-MM-DD); in force from that day")
    valid_until: dt.date = Field(..., description="expiry or review date (YYYY-MM-DD), last day in force")
    purposes: list[Purpose] = Field(..., min_length=1, max_length=len(Purpose),
                                    description=f"purposes it lists, among: {', '.join(p.value for p in Purpose)}")
    max_retention_days: int = Field(..., ge=1, le=MAX_RETENTION_DAYS,
                                    description="longest the images may be kept, days (at most 30)")

    @field_validator("purposes")
    @classmethod
    def _unique(cls, value: list[Purpose]) -> list[Purpose]:
        seen = [p for i, p in enumerate(value) if p in value[:i]]
        if seen:
            raise ValueError(f"purpose {seen[0].value!r} is listed twice")
        return value

    @field_validator("valid_until")
    @classmethod
    def _after_order(cls, value: dt.date, info) -> dt.date:  # noqa: ANN001 - pydantic's ValidationInfo
        start = info.data.get("order_date")
        if start is not None and value < start:
            raise ValueError(f"valid_until {value} is before order_date {start}")
        return value

    @property
    def retention_ns(self) -> int:
        """The authorised retention, ns."""
        return self.max_retention_days * DAY_NS

    def problem(self, now: dt.datetime) -> str:
        """Why the order does not allow filming at ``now`` (aware datetime), or "" when it is in force."""
        today = now.astimezone(dt.timezone.utc).date()
        if today < self.order_date:
            return f"authorisation {self.id} ({self.reference}) is not in force before {self.order_date}"
        if today > self.valid_until:
            return f"authorisation {self.id} ({self.reference}) expired on {self.valid_until}"
        return ""

    def ends_at(self) -> dt.datetime:
        """The first instant (UTC) the order is no longer in force: midnight after ``valid_until``."""
        return dt.datetime.combine(self.valid_until + dt.timedelta(days=1), dt.time(), dt.timezone.utc)


def kind_problem(kind: str, camera_id: str, authorisation: Authorisation,
                 declared: Iterable[str] | None = None) -> str:
    """Why ``kind`` may not run on ``camera_id`` under ``authorisation``, or "" when one of its listed purposes
    justifies it. The message names the kind, the camera, the purposes that would and those listed."""
    justifying = purposes_of(kind, declared)
    if justifying & set(authorisation.purposes):
        return ""
    wanted = ", ".join(sorted(p.value for p in justifying)) or "none declared"
    listed = ", ".join(p.value for p in authorisation.purposes)
    return (f"analytic {kind} may not run on camera {camera_id}: its authorisation {authorisation.id} lists "
            f"{listed}, and {kind} needs one of: {wanted}")


def longest_keep_problem(what: str, keep_ms: int, authorisations: Iterable[Authorisation]) -> str:
    """Why a place keeping images up to ``keep_ms`` ms (``what``: e.g. "topic frames") breaks the shortest
    authorised retention of ``authorisations``, or "" when it does not (or there are none)."""
    shortest = min(authorisations, key=lambda a: a.max_retention_days, default=None)
    if shortest is None or keep_ms <= shortest.max_retention_days * 86_400_000:
        return ""
    return (f"{what} keeps images up to {keep_ms / 86_400_000:.2f} days, beyond the {shortest.max_retention_days} "
            f"day(s) authorised by {shortest.id} ({shortest.reference}): lower its retention")


def drill_authorisation(authorisation_id: str = "drill", days: int = 30) -> str:
    """The YAML ``authorisations:`` block of an order for drills, tests and benchmarks on recorded or
    synthetic footage: in force from 2020 to 2099, every purpose, ``days`` of retention. Never for a
    real camera: a city's cameras run under the orders its prefect signed."""
    purposes = ", ".join(p.value for p in Purpose)
    return (f"authorisations:\n  - {{id: {authorisation_id}, reference: drill on recorded footage, "
            f"order_date: 2020-01-01, valid_until: 2099-12-31, max_retention_days: {days}, purposes: [{purposes}]}}\n")


def authorise_cameras(text: str, authorisation_id: str = "drill") -> str:
    """A cameras YAML ``text`` (block style ``- id: x`` or flow style ``- {id: x, ...}`` entries, no
    ``authorisations`` yet) with :func:`drill_authorisation` prepended and every camera naming it."""
    import re

    text = re.sub(r"(?m)^(\s*)- id: ([^\s{}]+)[ \t]*$", rf"\1- id: \2\n\1  authorisation: {authorisation_id}", text)
    text = re.sub(r"(?m)^(\s*)- \{id: ", rf"\1- {{authorisation: {authorisation_id}, id: ", text)
    return drill_authorisation(authorisation_id) + text
