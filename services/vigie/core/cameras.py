"""The camera registry (``cameras.yaml``): sources, sampling, privacy masks (grabber) and analytics (detector).

Example (authorisations: :mod:`vigie.core.authorisations`)::

    authorisations:
      - {id: centre-2026, reference: "Arrêté n° 2026-0142", order_date: 2026-03-02, valid_until: 2031-03-01,
         purposes: [security_of_persons, protection_of_property], max_retention_days: 15}
    cameras:
      - id: place-carnot-1
        authorisation: centre-2026
        source: rtsp://10.0.4.21:554/stream1
        fps: 5
        width: 640
        privacy_masks_reference_size: [1280, 720]
        privacy_masks:
          - name: windows-north
            polygon: [[0, 0], [300, 0], [300, 120], [0, 140]]
      - id: demo
        authorisation: centre-2026
        source: synthetic://scene?seed=2&leave_at=8
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from vigie.core.authorisations import Authorisation
from vigie.core.config import ConfigError, ConfigProblem, locate_problems, read_config_text, validate_yaml_text
from vigie.core.geometry import covers_any_pixel, crossing_edges
from vigie.core.secrets import redact, register_secret, register_url_password
from vigie.core.settings import read_secret_file


__all__ = [
    "AnalyticsCheck", "Authorisation", "CameraConfig", "authorisation_problems", "CameraCredentials", "CamerasFile", "ConfigError", "PrivacyMask",
    "ReconnectConfig", "SourceKind", "check_polygon", "credential_problems", "load_cameras", "source_kind",
]

SourceKind = Literal["file", "rtsp", "http", "whep", "synthetic"]

Coordinate = Annotated[float, Field(ge=0, le=16384, description="pixels of the masks' reference frame")]
Side = Annotated[int, Field(ge=16, le=16384, description="pixels")]


SCENES = ("scene",)


@dataclass(frozen=True)
class SyntheticParams:
    """Parameters of ``synthetic://NAME?...``: sizes in pixels, times in seconds."""

    name: str = "scene"
    seed: int = 1
    w: int = 720
    h: int = 480
    fps: float = 15.0
    leave_at: float = 5.0
    duration: float | None = None
    people: int = 3


_LIMITS = {  # name: (type, min, max)
    "seed": (int, 0, 2**31 - 1),
    "w": (int, 64, 3840),
    "h": (int, 48, 2160),
    "fps": (float, 1.0, 60.0),
    "leave_at": (float, -1.0, 86400.0),
    "duration": (float, 0.0, 10**7),
    "people": (int, 1, 20),
}


def parse_synthetic_url(url: str) -> SyntheticParams:
    """Parse ``synthetic://scene?seed=1&w=720&h=480&fps=10&leave_at=5``.

    Raises ``ValueError`` naming the bad part (unknown scene, unknown parameter,
    value not a number or out of bounds).
    """
    parts = urlsplit(url)
    if parts.scheme != "synthetic":
        raise ValueError(f"not a synthetic:// URL: {url!r}")
    name = parts.netloc or parts.path.lstrip("/")
    if name not in SCENES:
        raise ValueError(f"unknown synthetic scene {name!r} (known: {', '.join(SCENES)})")
    values: dict[str, object] = {"name": name}
    for key, raw in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _LIMITS:
            raise ValueError(f"unknown synthetic parameter {key!r} (known: {', '.join(_LIMITS)})")
        typ, lo, hi = _LIMITS[key]
        try:
            value = typ(raw)
        except ValueError:
            raise ValueError(f"synthetic parameter {key}={raw!r} is not a {typ.__name__}") from None
        if not lo <= value <= hi:
            raise ValueError(f"synthetic parameter {key}={raw} out of bounds [{lo}, {hi}]")
        values[key] = value
    return SyntheticParams(**values)  # type: ignore[arg-type]


def source_kind(source: str) -> SourceKind:
    """Classify a source string: ``rtsp``/``rtsps`` -> 'rtsp', ``http``/``https`` ->
    'http', ``whep``/``wheps`` -> 'whep' (WebRTC-HTTP egress: the endpoint's URL over http or https),
    ``synthetic://`` -> 'synthetic', ``file://`` or a plain path -> 'file'.

    Raises ``ValueError`` for another URL scheme.
    """
    scheme, sep, _ = source.partition("://")
    if not sep:
        return "file"
    scheme = scheme.lower()
    if scheme in ("rtsp", "rtsps"):
        return "rtsp"
    if scheme in ("http", "https"):
        return "http"
    if scheme in ("whep", "wheps"):
        return "whep"
    if scheme == "synthetic":
        return "synthetic"
    if scheme == "file":
        return "file"
    raise ValueError(f"unsupported source scheme {scheme!r}: use a file path, rtsp://, http(s)://, whep(s):// or "
                     "synthetic://")


def check_polygon(polygon: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Return ``polygon`` (vertices ``[x, y]`` in pixels) when it does not intersect itself.

    Raises ``ValueError`` naming two edges that cross (edge ``i`` joins vertices ``i``
    and ``i + 1``), for pydantic validators of polygon fields.
    """
    crossed = crossing_edges(polygon)
    if crossed is not None:
        i, j = crossed
        n = len(polygon)
        raise ValueError(f"polygon edges {i}-{(i + 1) % n} and {j}-{(j + 1) % n} cross: a polygon must not "
                         "intersect itself (list its vertices in order around the area)")
    return polygon


class PrivacyMask(BaseModel):
    """A polygon blacked out in every frame before it leaves the grabber."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    name: str | None = Field(
        None, min_length=1, max_length=64,
        description="label reported in CapturedFrame.masks_applied (default 'mask<N>')",
    )
    polygon: list[tuple[Coordinate, Coordinate]] = Field(
        ..., min_length=3, max_length=256,
        description="vertices [x, y] in pixels of the camera's privacy_masks_reference_size frame (origin "
        "top-left, upright picture), at least 3, not crossing itself; a mask must cover a pixel of that frame",
    )

    @field_validator("polygon")
    @classmethod
    def check_simple(cls, polygon: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return check_polygon(polygon)


class ReconnectConfig(BaseModel):
    """Back-off between reconnection attempts of a live source (rtsp, http, whep)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    initial_s: float = Field(0.5, gt=0, le=60, description="first delay, seconds")
    max_s: float = Field(30.0, gt=0, le=3600, description="delay cap, seconds")
    factor: float = Field(2.0, ge=1, le=10, description="delay multiplier per failed attempt")
    jitter: float = Field(0.2, ge=0, le=1, description="relative random spread of each delay (0.2: +-20 %)")
    unauthorised_s: float = Field(
        60.0, ge=0.5, le=3600,
        description="delay between attempts while the camera refuses the credentials (401/403), seconds "
        "(the same jitter applies); the camera is reported 'unauthorised' meanwhile",
    )

    @model_validator(mode="after")
    def check_max_not_below_initial(self) -> "ReconnectConfig":
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s ({self.max_s}) must be >= initial_s ({self.initial_s})")
        return self


class CameraCredentials(BaseModel):
    """User and password of a live camera kept out of its URL: the password comes from an environment
    variable or a file (a mounted Kubernetes or Docker secret), read each time the camera is opened and
    merged into the URL then only, so it is in no configuration field, log or ``/healthz``.

    Example: ``credentials: {username: viewer, password_file: /run/secrets/cam-3}``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    username: str = Field(..., min_length=1, max_length=256, description="user name the camera knows")
    password_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=256,
        description="environment variable holding the password",
    )
    password_file: str | None = Field(
        None, min_length=1, max_length=4096,
        description="file holding the password (one trailing newline ignored), e.g. /run/secrets/cam-3",
    )

    @model_validator(mode="after")
    def check_one_password_source(self) -> "CameraCredentials":
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError("give exactly one of password_env and password_file")
        return self

    def password(self) -> str:
        """The password, read now, and registered for redaction (:func:`vigie.core.secrets.register_secret`).

        Raises ``ValueError`` naming the variable or file (never the password) when it is unset,
        empty or cannot be read.
        """
        if self.password_env is not None:
            value = os.environ.get(self.password_env, "")
            if not value:
                raise ValueError(f"environment variable {self.password_env} is not set or empty")
        else:
            value = read_secret_file(str(self.password_file))
        register_secret(value)
        return value


class CameraConfig(BaseModel):
    """One camera: where to read it and how to sample, size and mask its frames."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    id: str = Field(
        ..., min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9_-]*$",
        description="slug: lower-case letters, digits, '-' and '_'; used in topics and metrics",
    )
    source: str = Field(
        ..., min_length=1, max_length=2048,
        description="file path, rtsp://, http(s):// URL, whep(s):// URL of a WHEP endpoint (WebRTC), or "
        "synthetic://scene?params",
    )
    fps: float = Field(5.0, gt=0, le=30, description="target sampling rate, frames per second of video (PTS)")
    width: int = Field(640, ge=64, le=3840, description="analysis width in pixels, aspect kept; never upscaled")
    privacy_masks: list[PrivacyMask] = Field(
        default_factory=list, max_length=64, description="polygons blacked out before frames leave the process",
    )
    privacy_masks_reference_size: tuple[Side, Side] | None = Field(
        None,
        description="[width, height] of the (upright) frame the privacy masks were drawn on; masks are scaled "
        "to every frame size that arrives, rounding outward. Absent: the size of the camera's first frame, "
        "with a warning (a stream that starts at another profile would then place them wrongly)",
    )
    min_frame_size: int = Field(
        16, ge=1, le=1024, description="frames narrower or lower than this many pixels are refused (degenerate)",
    )
    max_aspect_ratio: float = Field(
        8.0, ge=1, le=100, description="frames whose longer side exceeds this many times the shorter are refused",
    )
    realtime: bool = Field(
        True,
        description="files and synthetic: play at real-time pace by PTS (a CLI flag may force as fast as possible)",
    )
    loop: bool = Field(False, description="files: start again at the end instead of stopping")
    folder_fps: float = Field(
        10.0, gt=0, le=120, description="folders of numbered stills (001.tif...): their frame rate, frames per second",
    )
    timeout_s: float = Field(
        5.0, ge=0.5, le=120, description="live sources: connect/read timeout in seconds before a reconnect",
    )
    credentials: CameraCredentials | None = Field(
        None, description="live sources: user, and the password from an environment variable or a file, merged "
        "into the source URL when the camera is opened (the URL then carries no user or password)",
    )
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig, description="live sources: back-off")
    authorisation: str | None = Field(
        None, min_length=1, max_length=63,
        description="id of the prefectoral authorisation (cameras file's `authorisations`) the camera films under; "
        "a camera without one in force is never opened",
    )
    analytics: dict[str, dict[str, Any] | bool] | None = Field(
        None, description="detector: analytic kind -> its settings (zones, thresholds), false to disable a "
        "default kind; absent: the detector's defaults. Checked by the detector and `vigie validate`.",
    )

    @field_validator("source")
    @classmethod
    def check_source(cls, value: str) -> str:
        kind = source_kind(value)
        if kind == "synthetic":
            parse_synthetic_url(value)
        return value

    @model_validator(mode="after")
    def check_credentials_fit_the_source(self) -> "CameraConfig":
        register_url_password(self.source)
        if self.credentials is not None:
            if self.kind not in ("rtsp", "http", "whep"):
                raise ValueError(f"credentials are for rtsp://, http(s):// and whep(s):// sources, not {self.kind}")
            if urlsplit(self.source).username is not None:
                raise ValueError("source already holds a user (user@host): remove it from the URL or the credentials")
        return self

    @model_validator(mode="after")
    def check_masks_cover_their_reference(self) -> "CameraConfig":
        size = self.privacy_masks_reference_size
        for i, mask in enumerate(self.privacy_masks if size else ()):
            if not covers_any_pixel(mask, size):
                raise ValueError(f"privacy_masks[{i}] ({self.mask_names()[i]!r}) covers no pixel of its "
                                 f"{size[0]}x{size[1]} reference frame: check its coordinates (origin top-left)")
        return self

    @property
    def kind(self) -> SourceKind:
        """'file', 'rtsp', 'http', 'whep' or 'synthetic'."""
        return source_kind(self.source)

    def open_url(self) -> str:
        """The URL to open the camera with: ``source`` with the user and password of ``credentials``
        (percent-encoded) when it has some. Call it when opening, keep the result in no field, never log it.

        Raises ``ValueError`` naming the variable or file when the password cannot be read.
        """
        if self.credentials is None:
            return self.source
        password = self.credentials.password()
        parts = urlsplit(self.source)
        userinfo = f"{quote(self.credentials.username, safe='')}:{quote(password, safe='')}"
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))

    def __repr_args__(self):  # noqa: ANN204 - pydantic's hook: repr() and str() show the source redacted
        for name, value in super().__repr_args__():
            yield name, redact(value) if name == "source" else value

    def mask_names(self) -> list[str]:
        """Names of the privacy masks, 'mask<N>' (0-based) for unnamed ones."""
        return [m.name or f"mask{i}" for i, m in enumerate(self.privacy_masks)]


class CamerasFile(BaseModel):
    """The ``cameras.yaml`` document."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    authorisations: list[Authorisation] = Field(
        default_factory=list, max_length=1000,
        description="the prefectoral orders the cameras film under (vigie.core.authorisations)",
    )
    cameras: list[CameraConfig] = Field(..., min_length=1, max_length=1000, description="cameras served by this grabber")

    @field_validator("authorisations", "cameras")
    @classmethod
    def check_unique_ids(cls, items: list[Any], info: Any) -> list[Any]:
        first: dict[str, int] = {}
        what = "camera" if info.field_name == "cameras" else "authorisation"
        for i, item in enumerate(items):
            if item.id in first:
                raise ValueError(f"duplicate {what} id {item.id!r} ({info.field_name}[{first[item.id]}] and "
                                 f"{info.field_name}[{i}])")
            first[item.id] = i
        return items

    def authorisation_of(self, camera_id: str) -> Authorisation | None:
        """The authorisation camera ``camera_id`` names, None when it names none (or is not in the file)."""
        wanted = next((c.authorisation for c in self.cameras if c.id == camera_id), None)
        return next((a for a in self.authorisations if a.id == wanted), None)


#: ``check(section) -> [(loc, message)]``: the problems of one camera's ``analytics`` section
#: (kind -> settings, or a bool), ``loc`` starting at the kind, e.g. ``("fire", "zones", 0)``.
#: The detector's is :func:`vigie.detector.plan.analytics_problems`: the analytics import torch,
#: which a process that only grabs frames never loads, so this module does not import it.
AnalyticsCheck = Callable[[Mapping[str, Any]], list[tuple[tuple[Any, ...], str]]]


def _analytics_problems(text: str, loaded: CamerasFile | None, check: AnalyticsCheck) -> list[ConfigProblem]:
    """Problems of the ``analytics`` sections found by ``check``, located in ``text``."""
    if loaded is not None:
        sections = [camera.analytics for camera in loaded.cameras]
    else:  # the file has other errors: check what its sections say anyway, to report everything at once
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError:
            return []
        cameras = data.get("cameras") if isinstance(data, dict) else None
        sections = [c.get("analytics") if isinstance(c, dict) else None
                    for c in (cameras if isinstance(cameras, list) else [])]
    issues = [(("cameras", i, "analytics", *loc), message)
              for i, section in enumerate(sections) if isinstance(section, Mapping)
              for loc, message in check(section)]
    return locate_problems(text, issues) if issues else []


def credential_problems(text: str, cameras: CamerasFile) -> list[ConfigProblem]:
    """Problems of the cameras whose ``credentials`` password cannot be read here and now (environment
    variable unset or empty, file missing or unreadable), located in ``text`` (the cameras YAML), e.g.
    ``cameras[2].credentials.password_file: camera gate-3: cannot read secret file /run/secrets/cam-3: ...``.
    """
    issues = []
    for i, camera in enumerate(cameras.cameras):
        if camera.credentials is None:
            continue
        field = "password_env" if camera.credentials.password_env is not None else "password_file"
        try:
            camera.credentials.password()
        except ValueError as exc:
            issues.append((("cameras", i, "credentials", field), f"camera {camera.id}: {exc}"))
    return locate_problems(text, issues) if issues else []


def authorisation_problems(text: str, cameras: CamerasFile, at: dt.datetime | None = None) -> list[ConfigProblem]:
    """Cameras naming an authorisation the file does not declare, located in ``text``; with ``at`` (an aware
    datetime), also cameras naming none and those whose authorisation is not in force then."""
    issues = []
    known = {a.id: a for a in cameras.authorisations}
    for i, camera in enumerate(cameras.cameras):
        if camera.authorisation is None:
            if at is not None:
                issues.append((("cameras", i), f"camera {camera.id} names no authorisation: it would never be "
                               "opened (give `authorisation:` the id of its prefectoral order)"))
        elif camera.authorisation not in known:
            issues.append((("cameras", i, "authorisation"), f"camera {camera.id}: authorisation "
                           f"{camera.authorisation!r} is not declared under authorisations (declared: "
                           f"{', '.join(sorted(known)) or 'none'})"))
        elif at is not None and (problem := known[camera.authorisation].problem(at)):
            issues.append((("cameras", i, "authorisation"), f"camera {camera.id}: {problem}"))
    return locate_problems(text, issues) if issues else []


def load_cameras(path: str | os.PathLike[str], analytics_check: AnalyticsCheck | None = None, *,
                 check_credentials: bool = False, authorisations_at: dt.datetime | None = None,
                 check_files: bool = False, check_zones: bool = False) -> CamerasFile:
    """Read and validate a cameras YAML file (blocking; call at start-up).

    Relative file sources are resolved against the YAML file's directory. With
    ``analytics_check`` (the detector's, :data:`AnalyticsCheck`), every camera's
    ``analytics`` section is checked too; with ``check_credentials``, every camera's password
    variable or file must be readable (:func:`credential_problems`; ``vigie validate`` asks it, the
    grabber does not: a camera without its password fails alone); with ``check_files``, every file source must
    exist (:func:`~vigie.core.camera_frames.file_problems`; ``vigie validate`` again: the grabber lets a missing file fail alone); privacy
    masks wholly outside frames of a size the file gives are refused, and with ``check_zones`` analytics zones
    too (:func:`~vigie.core.camera_frames.frame_problems`). Raises ``ConfigError`` whose
    message lists ``path:line: cameras[1].fps: ...`` for each problem of the file, one per line.
    """
    from vigie.core.camera_frames import file_of, file_problems, frame_problems  # they use this module's models

    text = read_config_text(path)
    loaded: CamerasFile | None = None
    problems: list[ConfigProblem] = []
    try:
        loaded = validate_yaml_text(text, CamerasFile, path=path)
    except ConfigError as exc:
        problems = list(exc.problems)
    if analytics_check is not None:
        problems += _analytics_problems(text, loaded, analytics_check)
    if check_credentials and loaded is not None:
        problems += credential_problems(text, loaded)
    base = Path(path).resolve().parent
    if loaded is not None:
        problems += authorisation_problems(text, loaded, authorisations_at)
        problems += frame_problems(text, loaded, zones=check_zones)
        if check_files:
            problems += file_problems(text, loaded, base)
    if problems or loaded is None:
        raise ConfigError(path, sorted(problems, key=lambda p: (p.line, p.location)))
    cams = []
    for cam in loaded.cameras:
        if cam.kind == "file" and not cam.source.startswith("file://"):
            cam = cam.model_copy(update={"source": file_of(cam.source, base)})
        cams.append(cam)
    return loaded.model_copy(update={"cameras": cams})
