"""Every run's gold reward against a baseline run's *at equal KL*: ``equal_kl.csv``.

Runs move away from the initial policy at different speeds (a min objective or a variance penalty
slows the climb), so comparing them at equal steps confounds "better reward" with "less
optimisation". The fair comparison (Gao et al. 2022, Coste et al. 2023) is at equal distance
d = sqrt(KL(pi || pi_init)).

For each replicate (one ``gold_eval.csv``), gold reward at d is read off the replicate's own curve by
linear interpolation between its eval points, sorted by d (``numpy.interp``); never extrapolated.
The grid: ``n_points`` equally spaced values of d in (0, d_common], where d_common is the smallest
largest d of any replicate of any run, so every replicate reaches every grid point.

Per run and d: the mean over replicates and its 95% interval, and the difference from the baseline
run with its 95% interval and two-sided p-value. Source of the intervals, in column ``interval``:

- ``replicates_welch95`` (both runs have two or more replicates): Welch's unequal-variance t-test on
  the replicates' interpolated values (``scipy.stats.ttest_ind(equal_var=False)``); the run's own
  interval is the Student-t interval over its replicates. This is the spread over PPO seeds given the
  eval prompts, as in ``aggregate.csv``.
- ``prompts_normal95`` (either run has one replicate): normal intervals from the eval prompts'
  standard errors (``gold_reward_se``, interpolated like the means; a run's se of its replicate mean
  as in ``aggregate.csv``: :func:`~.replicates.se_of_replicate_mean`); the difference's se is
  ``sqrt(se_run^2 + se_baseline^2)``.

The baseline's own rows have NaN differences. When some replicate never reached a positive d (its mean KL
estimate stayed at or below 0 at every eval step, e.g. a run that barely moved), there is no common range:
one row per run with every value NaN and ``interval`` ``no_common_kl`` (as ``fits.csv`` marks a curve with
too few points ``too_few_points``), so the figure and the fits are still made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import PipelineError
from ..stats import welch
from .replicates import LEVEL, Z95, se_of_replicate_mean, t_interval

EQUAL_KL_COLUMNS = [
    "run", "baseline", "d", "kl", "n_replicates", "n_baseline_replicates",
    "gold", "gold_lo", "gold_hi", "baseline_gold",
    "diff", "diff_lo", "diff_hi", "p_value", "interval",
]


def curve_points(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(d, gold, gold_se)`` of one gold_eval table, sorted by d = sqrt(max(KL, 0))."""
    d = np.sqrt(np.clip(df["kl"].to_numpy(dtype=np.float64), 0.0, None))
    order = np.argsort(d, kind="stable")
    return (d[order], df["gold_reward"].to_numpy(dtype=np.float64)[order],
            df["gold_reward_se"].to_numpy(dtype=np.float64)[order])


def gold_at(df: pd.DataFrame, d: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """``(gold, gold_se)`` of one replicate at each ``d``, linearly interpolated; NaN beyond its largest d."""
    xs, gold, se = curve_points(df)
    d = np.asarray(d, dtype=np.float64)
    inside = (d >= xs[0]) & (d <= xs[-1])
    return (np.where(inside, np.interp(d, xs, gold), np.nan),
            np.where(inside, np.interp(d, xs, np.nan_to_num(se, nan=0.0)), np.nan))


def common_grid(runs: dict[str, Sequence[pd.DataFrame]], n_points: int = 4) -> np.ndarray:
    """``n_points`` equally spaced d in (0, d_common]; d_common: the smallest largest d of any replicate.
    Empty when some replicate's largest d is 0 (no common range)."""
    d_common = min(float(curve_points(df)[0][-1]) for frames in runs.values() for df in frames)
    if not d_common > 0:
        return np.array([])
    return d_common * np.arange(1, n_points + 1) / n_points


def equal_kl_table(runs: dict[str, Sequence[pd.DataFrame]], baseline: str | None, n_points: int = 4,
                   compare: dict[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """equal_kl.csv (:data:`EQUAL_KL_COLUMNS`): every run of ``runs`` (its replicates' gold_eval tables)
    against ``baseline`` at ``n_points`` common values of d; or, with ``compare`` (run -> the runs it is
    compared with), exactly those comparisons. One block per baseline, with its own grid (the common
    range of the baseline and the runs compared with it), the baseline's own rows first."""
    if compare is None:
        compare = {name: [baseline] for name in runs if name != baseline}
    named = {baseline, *compare, *(b for bs in compare.values() for b in bs)} - {None}
    unknown = sorted(n for n in named if n not in runs)
    if unknown:
        raise PipelineError(f"equal KL: run(s) {unknown} must be among the compared runs {list(runs)}")
    if any(len(frames) == 0 for frames in runs.values()):
        raise PipelineError(f"equal KL: every run needs at least one gold_eval table, got "
                            f"{ {name: len(frames) for name, frames in runs.items()} }")
    baselines = list(dict.fromkeys(b for name in runs for b in compare.get(name, []) if b != name))
    if not baselines and baseline is not None:
        baselines = [baseline]
    blocks = [_against({b: runs[b], **{n: f for n, f in runs.items() if n != b and b in compare.get(n, [])}},
                       b, n_points) for b in baselines]
    return pd.concat(blocks, ignore_index=True)[EQUAL_KL_COLUMNS] if blocks else \
        pd.DataFrame(columns=EQUAL_KL_COLUMNS)


def _against(runs: dict[str, Sequence[pd.DataFrame]], baseline: str, n_points: int) -> pd.DataFrame:
    """The rows of one baseline's block: ``baseline`` (first in ``runs``) and the runs compared with it."""
    from scipy import stats

    grid = common_grid(runs, n_points)
    if grid.size == 0:
        return pd.DataFrame([{"run": name, "baseline": baseline, "n_replicates": len(frames),
                              "n_baseline_replicates": len(runs[baseline]), "interval": "no_common_kl"}
                             for name, frames in runs.items()], columns=EQUAL_KL_COLUMNS)
    at = {name: [gold_at(df, grid) for df in frames] for name, frames in runs.items()}
    base_gold = np.array([g for g, _ in at[baseline]])  # [R_baseline, n_points]
    base_se = se_of_replicate_mean([s for _, s in at[baseline]])
    rows = []
    for name, values in at.items():
        gold = np.array([g for g, _ in values])
        se = se_of_replicate_mean([s for _, s in values])
        replicated = len(gold) >= 2 and len(base_gold) >= 2
        for j, d in enumerate(grid):
            row = {"run": name, "baseline": baseline, "d": float(d), "kl": float(d * d),
                   "n_replicates": len(gold), "n_baseline_replicates": len(base_gold),
                   "baseline_gold": float(base_gold[:, j].mean()),
                   "interval": "replicates_welch95" if replicated else "prompts_normal95"}
            if replicated:
                row["gold"], row["gold_lo"], row["gold_hi"] = t_interval(gold[:, j])
            else:
                mean = float(gold[:, j].mean())
                row["gold"], row["gold_lo"], row["gold_hi"] = mean, mean - Z95 * se[j], mean + Z95 * se[j]
            row["diff"] = row["gold"] - row["baseline_gold"]
            if name == baseline:
                row["diff"] = row["diff_lo"] = row["diff_hi"] = row["p_value"] = math.nan
            elif replicated:
                _, row["diff_lo"], row["diff_hi"], row["p_value"], _ = welch(gold[:, j], base_gold[:, j], LEVEL)
            else:
                s = math.hypot(se[j], base_se[j])
                row["diff_lo"], row["diff_hi"] = row["diff"] - Z95 * s, row["diff"] + Z95 * s
                row["p_value"] = float(2 * stats.norm.sf(abs(row["diff"]) / s)) if s > 0 else math.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=EQUAL_KL_COLUMNS)
