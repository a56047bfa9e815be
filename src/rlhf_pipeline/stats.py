"""Summary statistics every family reports: means, correlations and slopes, with standard errors.

One convention for degenerate input, everywhere: a statistic that is undefined is ``nan``, never a
made-up number. A mean of no values, a standard error of fewer than two, a correlation where either
side is constant (or fewer than two pairs), a slope over a single x value: all ``nan``. ``nan`` is
written as an empty CSV cell and as ``null`` by :func:`rlhf_pipeline.io.write_json`, so a reader sees
"undefined", not a correlation of zero.

:func:`mean_se`, :func:`pearson_se` and :func:`slope_se` return ``(value, standard error, n)`` and
leave non-finite inputs out (``n`` counts what was used); :func:`pearson` and :func:`spearman` take
the arrays as they are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

NAN = float("nan")


def mean_se(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean of the finite values, its standard error (sample standard deviation / sqrt(n); nan for
    n < 2) and n; ``(nan, nan, 0)`` when there is none."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(x) == 0:
        return NAN, NAN, 0
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else NAN, len(x)


def pearson(x: Iterable[float], y: Iterable[float]) -> float:
    """Pearson correlation of two equally long arrays: sum(dx * dy) / sqrt(sum(dx^2) * sum(dy^2)) of
    the deviations from the means, clipped to [-1, 1]; nan when either side is constant (or has fewer
    than two values)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or x.min() == x.max() or y.min() == y.max():
        return NAN
    x, y = x - x.mean(), y - y.mean()
    denom = np.sqrt((x * x).sum() * (y * y).sum())
    return float(np.clip((x * y).sum() / denom, -1.0, 1.0)) if denom > 0 else NAN


def spearman(x: Iterable[float], y: Iterable[float]) -> float:
    """Spearman rank correlation: :func:`pearson` of the ranks (ties get their average rank); nan
    when either side is constant."""
    from scipy.stats import rankdata

    return pearson(rankdata(np.asarray(x, dtype=float)), rankdata(np.asarray(y, dtype=float)))


def pearson_se(x: Iterable[float], y: Iterable[float]) -> tuple[float, float, int]:
    """:func:`pearson` over the pairs where both values are finite, its standard error
    sqrt((1 - r^2) / (n - 2)) and n; nan for fewer than three pairs or a constant side."""
    pairs = [(a, b) for a, b in zip(x, y) if np.isfinite(a) and np.isfinite(b)]
    n = len(pairs)
    r = pearson(*zip(*pairs)) if n >= 3 else NAN
    if math.isnan(r):
        return NAN, NAN, n
    return r, math.sqrt(max(0.0, 1 - r * r) / (n - 2)), n


def slope_se(x: Iterable[float], y: Iterable[float]) -> tuple[float, float, int]:
    """Least-squares slope of y on x, its standard error (``scipy.stats.linregress``) and n; nan
    when x takes a single value."""
    from scipy import stats

    x, y = list(x), list(y)
    if len(set(x)) < 2:
        return NAN, NAN, len(x)
    fit = stats.linregress(x, y)
    return float(fit.slope), float(fit.stderr), len(x)


def welch(a: Iterable[float], b: Iterable[float], level: float = 0.95,
          power: float = 0.8) -> tuple[float, float, float, float, float]:
    """Welch's unequal-variance comparison of mean(a) - mean(b): ``(diff, lo, hi, p, detectable)``.

    ``lo, hi``: the ``level`` interval and ``p`` the two-sided p-value of
    ``scipy.stats.ttest_ind(equal_var=False)``; ``detectable``: the smallest true difference this test
    would find at ``1 - level`` with probability ``power`` given the observed spreads, the minimum
    detectable difference ``(t_{(1+level)/2} + t_{power}) * se`` on Welch-Satterthwaite degrees of
    freedom. Both sides without spread: the interval is the difference itself, p is 1 if it is 0 else 0,
    detectable 0. Fewer than two values on a side: every value but ``diff`` is nan."""
    from scipy import stats

    a, b = np.asarray(list(a), dtype=float), np.asarray(list(b), dtype=float)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else NAN
    if len(a) < 2 or len(b) < 2:
        return diff, NAN, NAN, NAN, NAN
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va == 0 and vb == 0:
        return diff, diff, diff, (1.0 if diff == 0 else 0.0), 0.0
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(level)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    detectable = (stats.t.ppf(0.5 + level / 2, df) + stats.t.ppf(power, df)) * math.sqrt(va + vb)
    return diff, float(ci.low), float(ci.high), float(res.pvalue), float(detectable)
