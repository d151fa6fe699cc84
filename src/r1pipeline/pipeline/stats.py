"""The statistics of the findings: ratio metrics over prompts, a paired bootstrap, a t interval over seeds.

Small pure functions on plain numbers (numpy inside the bootstrap only; scipy is not a
dependency: the t quantiles are a table).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

Ratio = tuple[float, float]  # (numerator, denominator) of one prompt


def ratio(values: Sequence[Ratio]) -> float:
    """A ratio of sums: the metric over all prompts.

    >>> ratio([(1.0, 2.0), (3.0, 2.0)])
    1.0
    """
    return sum(n for n, _ in values) / sum(d for _, d in values)


def paired_bootstrap(left: Sequence[Ratio], right: Sequence[Ratio] | float, left_scale: float = 1.0,
                     right_scale: float = 1.0, n: int = 1000, seed: int = 0, paired: bool = True,
                     level: float = 0.95) -> tuple[float, list[float]]:
    """Effect ``left_scale * ratio(left) - right_scale * ratio(right)`` and its percentile
    bootstrap interval over prompts: paired (the same resampled prompts on both sides, ``left``
    and ``right`` in the same prompt order), or each side on its own draw (``paired=False``); a
    constant ``right``: a plain bootstrap of the left side.

    >>> paired_bootstrap([(1.0, 1.0), (0.0, 1.0)], [(1.0, 1.0), (0.0, 1.0)])
    (0.0, [0.0, 0.0])
    """
    import numpy as np

    rng = np.random.default_rng(seed)

    def draws(values: Sequence[Ratio], idx) -> Any:
        num, den = np.array(values, dtype=float).T
        with np.errstate(invalid="ignore", divide="ignore"):
            return num[idx].sum(axis=1) / den[idx].sum(axis=1)

    idx = rng.integers(0, len(left), size=(n, len(left)))
    boot = left_scale * draws(left, idx)
    if isinstance(right, (int, float)):
        effect = left_scale * ratio(left) - right
        boot = boot - right
    else:
        effect = left_scale * ratio(left) - right_scale * ratio(right)
        other = idx if paired else rng.integers(0, len(right), size=(n, len(right)))
        boot = boot - right_scale * draws(right, other)
    boot = np.sort(boot[np.isfinite(boot)])
    if not len(boot):
        return effect, [float("nan"), float("nan")]
    lo = boot[int((1 - level) / 2 * len(boot))]
    hi = boot[min(len(boot) - 1, int((1 + level) / 2 * len(boot)))]
    return float(effect), [float(lo), float(hi)]


# Two-sided 95% quantiles of Student's t, df = 1..30 (beyond 30: the df = 30 value, a little wide).
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


def t_interval(values: Sequence[float]) -> list[float] | None:
    """The t-based 95% interval of the mean of ``values`` (one value per seed); None for n < 2.

    >>> t_interval([1.0, 3.0])  # mean 2, sd sqrt(2), 12.706 * sqrt(2) / sqrt(2)
    [-10.706, 14.706]
    >>> t_interval([0.5])
    """
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T_975[min(n - 1, len(T_975)) - 1] * sd / math.sqrt(n)
    return [round(mean - half, 12), round(mean + half, 12)]
