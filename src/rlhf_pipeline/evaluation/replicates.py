"""Aggregate a run's replicates (PPO seeds) into one curve with 95% intervals: ``aggregate.csv``.

Each replicate's ``gold_eval.csv`` has, per eval step, means and standard errors over the eval prompts.
The aggregate has, per step, the mean over replicates of each replicate's mean KL, proxy and gold
reward, and a 95% interval whose source is written in column ``interval``:

- ``replicates_t95`` (two or more replicates): Student-t interval over the replicate means,
  ``mean +- t(0.975, R-1) * sd / sqrt(R)`` (sd with ddof=1). Every replicate is evaluated on the same
  eval prompts, so this interval is the spread over PPO seeds *given those prompts*; the prompt-sampling
  error of the mean is reported apart, as ``gold_reward_se_prompts = sqrt(sum_r se_r^2) / R``.
- ``prompts_normal95`` (one replicate): ``mean +- 1.96 * se`` over the eval prompts (gold_eval's se).

``sqrt_kl`` is ``sqrt(mean KL)``, the x of the overoptimization figure (Gao et al.'s d).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import PipelineError

LEVEL = 0.95
Z95 = 1.959963984540054
"""Normal 97.5% quantile (the one-replicate interval)."""

AGGREGATE_COLUMNS = [
    "step", "n_replicates", "n_prompts",
    "kl", "kl_lo", "kl_hi", "sqrt_kl",
    "proxy_reward", "proxy_reward_lo", "proxy_reward_hi",
    "gold_reward", "gold_reward_lo", "gold_reward_hi", "gold_reward_se_prompts",
    "interval",
]
_SE_COLUMN = {"kl": "kl_se", "proxy_reward": "proxy_reward_se", "gold_reward": "gold_reward_se"}


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """``(mean, lo, hi)``: Student-t interval of the mean of ``values`` (NaN bounds for fewer than 2)."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def se_of_replicate_mean(ses, axis: int = 0):
    """Standard error of the mean over R replicates from each replicate's own standard error (independent
    eval samples): ``sqrt(sum_r se_r^2) / R`` along ``axis``; a NaN se (one eval prompt) counts as 0."""
    ses = np.asarray(ses, dtype=np.float64)
    return np.sqrt(np.nansum(ses**2, axis=axis)) / ses.shape[axis]


def aggregate_replicates(frames: Sequence[pd.DataFrame], names: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per eval step over the replicates' gold_eval tables (:data:`AGGREGATE_COLUMNS`).

    Every replicate must have evaluated the same steps (:class:`PipelineError` naming the replicates
    otherwise): an interval over a subset of replicates would silently mean something else."""
    if not frames:
        raise PipelineError("aggregate: no replicate gold_eval tables")
    names = list(names) if names is not None else [f"replicate {k + 1}" for k in range(len(frames))]
    steps = [tuple(int(s) for s in df["step"]) for df in frames]
    if any(s != steps[0] for s in steps):
        diff = {n: list(s) for n, s in zip(names, steps)}
        raise PipelineError(f"aggregate: replicates evaluated different steps {diff}; rerun the incomplete ones")
    rows = []
    for i, step in enumerate(steps[0]):
        row: dict = {"step": step, "n_replicates": len(frames), "n_prompts": int(frames[0]["n"].iloc[i])}
        for col in ("kl", "proxy_reward", "gold_reward"):
            values = [float(df[col].iloc[i]) for df in frames]
            if len(frames) >= 2:
                mean, lo, hi = t_interval(values)
            else:
                se = float(frames[0][_SE_COLUMN[col]].iloc[i])
                se = 0.0 if math.isnan(se) else se
                mean, lo, hi = values[0], values[0] - Z95 * se, values[0] + Z95 * se
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = mean, lo, hi
        row["gold_reward_se_prompts"] = float(se_of_replicate_mean([df["gold_reward_se"].iloc[i] for df in frames]))
        row["sqrt_kl"] = math.sqrt(max(row["kl"], 0.0))
        row["interval"] = "replicates_t95" if len(frames) >= 2 else "prompts_normal95"
        rows.append(row)
    return pd.DataFrame(rows, columns=AGGREGATE_COLUMNS)
