"""Registry of the detector's analytics by kind; plugins are imported only when some camera enables them.

Each plugin is one module holding an :class:`~vigie.detector.analytics.base.Analytic`
subclass whose ``config_model`` is its pydantic settings (unknown keys rejected).
A site adds its own analytics without changing Vigie through the environment variable
:data:`PLUGINS_ENV`: ``kind=module:Class`` pairs separated by commas, read at import.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

import torch
from pydantic import BaseModel

from vigie.core.errors import ConfigError
from vigie.detector.analytics.base import Analytic

#: kind -> "module:Class" of its plugin.
PLUGINS: dict[str, str] = {
    "abandoned_object": "vigie.detector.analytics.abandoned:AbandonedObject",
    "crowd_movement": "vigie.detector.analytics.crowd:CrowdMovement",
    "density": "vigie.detector.analytics.density:Density",
    "intrusion": "vigie.detector.analytics.intrusion:Intrusion",
    "wrong_way": "vigie.detector.analytics.wrong_way:WrongWay",
    "person_down": "vigie.detector.analytics.person_down:PersonDown",
    "fire": "vigie.detector.analytics.fire:Fire",
    "smoke": "vigie.detector.analytics.smoke:Smoke",
    "tamper": "vigie.detector.analytics.tamper:Tamper",
    "colour_query": "vigie.detector.analytics.colour:ColourQuery",
}


#: Environment variable adding (or replacing) plugins: ``kind=module:Class[,kind=module:Class...]``.
PLUGINS_ENV = "VIGIE_ANALYTICS_PLUGINS"


def plugins_from(value: str) -> dict[str, str]:
    """Parse a :data:`PLUGINS_ENV` value into kind -> ``"module:Class"``.

    Raises:
        ConfigError: an entry that is not ``kind=module:Class``.
    """
    extra = {}
    for entry in filter(None, (e.strip() for e in value.split(","))):
        kind, _, target = (part.strip() for part in entry.partition("="))
        module_name, _, class_name = target.partition(":")
        if not kind or not module_name or not class_name:
            raise ConfigError(f"{PLUGINS_ENV}: {entry!r} is not kind=module:Class")
        extra[kind] = target
    return extra


PLUGINS.update(plugins_from(os.environ.get(PLUGINS_ENV, "")))

#: Kinds that act on what an operator draws or asks (zones, headings, a colour): they run where a
#: camera's settings give them, never by default (a whole-frame "forbidden zone" means nothing).
NEEDS_SETTINGS = frozenset({"intrusion", "wrong_way", "density", "colour_query"})


def plugin(kind: str) -> type[Analytic]:
    """The analytic class of ``kind``, imported on first use.

    Raises:
        ConfigError: unknown kind, or a kind whose module is not installed.
    """
    try:
        module_name, class_name = PLUGINS[kind].split(":")
    except KeyError:
        raise ConfigError(f"unknown analytic kind {kind!r}; known: {sorted(PLUGINS)}") from None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise ConfigError(f"analytic kind {kind!r} is not available in this build ({module_name})") from None
    return getattr(module, class_name)


def config_model(kind: str) -> type[BaseModel]:
    """The pydantic settings model of ``kind``. Raises ConfigError like :func:`plugin`."""
    return plugin(kind).config_model


def build(kind: str, config: Mapping[str, Any] | BaseModel | None = None,
          device: torch.device | str = "cpu") -> Analytic:
    """Instantiate the analytic registered as ``kind`` on ``device``.

    Args:
        kind: e.g. ``"abandoned_object"`` or ``"crowd_movement"``.
        config: field values of the kind's config model (missing fields take their
            defaults), an instance of that model, or ``None`` for all defaults.
        device: torch device the batches will be on.

    Raises:
        ConfigError: unknown or unavailable kind.
        pydantic.ValidationError: unknown field or value out of bounds.
    """
    cls = plugin(kind)
    model = cls.config_model
    if isinstance(config, BaseModel):
        cfg = config if isinstance(config, model) else model.model_validate(config.model_dump())
    else:
        cfg = model.model_validate(dict(config or {}))
    return cls(cfg, device=device)
