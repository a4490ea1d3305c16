"""95 % confidence intervals of the figures of a collection of clips.

* :func:`wilson`: a proportion ``k / n`` (events found), Wilson score interval;
* :func:`poisson_rate`: a count over an exposure (false alarms per hour), exact
  Poisson interval of Garwood (1936), from the chi-square quantiles;
* :func:`bootstrap`: any statistic of independent units (event delays, blocks of
  frames for the AUC), percentile bootstrap with a fixed seed (the same input gives
  the same interval).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

T = TypeVar("T")

LEVEL = 0.95


def _z(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float] | None:
    """Wilson score interval of the proportion ``k / n``; None when ``n`` is 0.

    Raises:
        ValueError: ``k`` outside ``0..n``.
    """
    if not 0 <= k <= n:
        raise ValueError(f"{k} successes out of {n}")
    if n == 0:
        return None
    z = _z(level)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def poisson_rate(k: int, exposure: float, level: float = LEVEL) -> tuple[float, float] | None:
    """Exact (Garwood) interval of a Poisson rate: ``k`` events over ``exposure`` (e.g. hours);
    None for a zero exposure. With ``k`` = 0 the lower end is 0.

    Raises:
        ValueError: negative ``k`` or ``exposure``.
    """
    from scipy.stats import chi2

    if k < 0 or exposure < 0:
        raise ValueError(f"count {k} over exposure {exposure}")
    if exposure == 0:
        return None
    alpha = 1 - level
    low = 0.0 if k == 0 else float(chi2.ppf(alpha / 2, 2 * k)) / 2
    high = float(chi2.ppf(1 - alpha / 2, 2 * k + 2)) / 2
    return low / exposure, high / exposure


def bootstrap(units: Sequence[T], statistic: Callable[[list[T]], float | None], reps: int = 1000,
              level: float = LEVEL, seed: int = 0, least: int = 2) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``statistic`` over ``units`` resampled with replacement.

    Resamples where the statistic is None (undefined, e.g. an AUC without both classes)
    are dropped; None when fewer than ``least`` units, or most resamples are undefined.
    """
    if len(units) < least:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(reps):
        value = statistic([units[i] for i in rng.integers(0, len(units), len(units))])
        if value is not None and math.isfinite(value):
            values.append(value)
    if len(values) < reps / 2:
        return None
    alpha = (1 - level) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return float(low), float(high)
