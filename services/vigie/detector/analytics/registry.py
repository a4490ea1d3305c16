"""Registry of the detector's analytics by kind, and a factory from plain config dicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import BaseModel

from vigie.detector.analytics.abandoned import AbandonedObject, AbandonedObjectConfig
from vigie.detector.analytics.base import Analytic
from vigie.detector.analytics.crowd import CrowdMovement, CrowdMovementConfig

#: kind -> (analytic class, pydantic config model)
ANALYTICS: dict[str, tuple[type[Analytic], type[BaseModel]]] = {
    AbandonedObject.kind: (AbandonedObject, AbandonedObjectConfig),
    CrowdMovement.kind: (CrowdMovement, CrowdMovementConfig),
}


def build(kind: str, config: Mapping[str, Any] | BaseModel | None = None,
          device: torch.device | str = "cpu") -> Analytic:
    """Instantiate the analytic registered as ``kind`` on ``device``.

    Args:
        kind: e.g. ``"abandoned_object"`` or ``"crowd_movement"``.
        config: field values of the kind's config model (missing fields take their
            defaults), an instance of that model, or ``None`` for all defaults.
        device: torch device the batches will be on.

    Raises:
        KeyError: unknown ``kind``.
        pydantic.ValidationError: unknown field or value out of bounds.
    """
    try:
        cls, model = ANALYTICS[kind]
    except KeyError:
        raise KeyError(f"unknown analytic kind {kind!r}; known: {sorted(ANALYTICS)}") from None
    if isinstance(config, BaseModel):
        cfg = config if isinstance(config, model) else model.model_validate(config.model_dump())
    else:
        cfg = model.model_validate(dict(config or {}))
    return cls(cfg, device=device)
