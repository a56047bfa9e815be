"""Statistics the AD evaluations report: means, correlations and slopes with their standard errors
(each returns ``(value, standard error, n)``; non-finite inputs are left out)."""

from __future__ import annotations

import math

import numpy as np


def mean_se(x) -> tuple[float, float, int]:
    """Mean of the finite values and its standard error (sample std / sqrt(n); nan for n < 2)."""
    x = np.asarray([v for v in x if np.isfinite(v)], dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan"), 0
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan"), len(x)


def pearson_se(a, b) -> tuple[float, float, int]:
    """Pearson r over the finite pairs and its standard error sqrt((1 - r^2) / (n - 2))."""
    from scipy import stats

    pairs = [(x, y) for x, y in zip(a, b) if np.isfinite(x) and np.isfinite(y)]
    if len(pairs) < 3 or len({p[0] for p in pairs}) < 2 or len({p[1] for p in pairs}) < 2:
        return float("nan"), float("nan"), len(pairs)
    r = float(stats.pearsonr(*zip(*pairs)).statistic)
    return r, math.sqrt(max(0.0, 1 - r * r) / (len(pairs) - 2)), len(pairs)


def slope_se(x, y) -> tuple[float, float, int]:
    """Least-squares slope of y on x and its standard error (scipy.stats.linregress)."""
    from scipy import stats

    if len(set(x)) < 2:
        return float("nan"), float("nan"), len(x)
    fit = stats.linregress(x, y)
    return float(fit.slope), float(fit.stderr), len(x)
