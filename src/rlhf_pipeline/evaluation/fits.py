"""Gao et al. 2022's functional forms, fitted to gold-reward curves against d = sqrt(KL): ``fits.csv``.

- PPO (``form: rl``):          R(d) = d (alpha - beta log d)
- best-of-n (``form: bon``):   R(d) = d (alpha - beta d)

R is the gold reward *gained over the initial policy*: gold minus the curve's own value at d = 0 (the
step-0 row of a PPO run, the n = 1 row of best-of-n); the forms are 0 at d = 0 by construction, so
the d = 0 points are left out of the fit. Fits are least squares (``scipy.optimize.curve_fit``).

Peaks: ``rl``: d* = exp(alpha / beta - 1), R(d*) = beta d*; ``bon``: d* = alpha / (2 beta),
R(d*) = alpha^2 / (4 beta); NaN when beta <= 0 (no peak: the curve never turns down).
``gold_peak`` is the absolute gold at the peak (start + R(d*)); ``peak_in_range`` says whether d*
lies within the fitted d values (otherwise the peak is an extrapolation).

Point estimates come from one fit to all replicates' points pooled. Intervals (95%), source in
``interval``: ``replicates_t95`` with two or more replicates (Student-t over the per-replicate fits'
values; NaN when a replicate has fewer than 2 points with d > 0); ``fit_covariance_t95`` with one
curve (``curve_fit``'s covariance, t with n - 2 degrees of freedom; no interval for the peak).
``too_few_points``: fewer than 2 points with d > 0 in all (every value NaN).

The observed turn, without a functional form (``rl`` rows; NaN for ``bon`` and with fewer than three
eval steps): ``best_step`` is the eval step between the first and the last with the highest gold
mean over replicates, ``drop`` the mean over replicates of gold at ``best_step`` minus gold at the last
step (``final_step``), paired by replicate: Student-t 95% interval and two-sided p-value over the
replicates (one replicate: the eval prompts' standard errors, normal). The best step is picked on the
same data, so ``drop`` leans high (more so with few replicates and many eval steps); a drop whose
interval excludes 0 with the fitted peak in range is the downturn Gao et al. describe.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import PipelineError
from .replicates import Z95, t_interval

FORMS = ("rl", "bon")
FIT_COLUMNS = [
    "run", "form", "n_replicates", "n_points", "d_max", "gold_start",
    "alpha", "alpha_lo", "alpha_hi", "beta", "beta_lo", "beta_hi", "r2",
    "d_peak", "d_peak_lo", "d_peak_hi", "gold_peak", "gold_peak_lo", "gold_peak_hi", "peak_in_range", "interval",
    "best_step", "best_gold", "final_step", "final_gold", "drop", "drop_lo", "drop_hi", "drop_p",
]


def gao_rl(d, alpha: float, beta: float):
    """d (alpha - beta log d), with d log d = 0 at d = 0."""
    d = np.asarray(d, dtype=np.float64)
    dlogd = np.where(d > 0, d * np.log(np.where(d > 0, d, 1.0)), 0.0)
    return alpha * d - beta * dlogd


def gao_bon(d, alpha: float, beta: float):
    """d (alpha - beta d)."""
    d = np.asarray(d, dtype=np.float64)
    return d * (alpha - beta * d)


FUNCTIONS = {"rl": gao_rl, "bon": gao_bon}


def fit_form(form: str, d: Sequence[float], gain: Sequence[float]) -> dict:
    """Least-squares fit of ``form`` to points (d, gain) with d > 0: alpha, beta, their covariance, R^2."""
    from scipy.optimize import OptimizeWarning, curve_fit

    if form not in FORMS:
        raise PipelineError(f"fit: form {form!r} must be one of {list(FORMS)}")
    d, gain = np.asarray(d, dtype=np.float64), np.asarray(gain, dtype=np.float64)
    keep = d > 0
    d, gain = d[keep], gain[keep]
    if len(d) < 2:
        raise PipelineError(f"fit {form}: needs at least 2 points with d > 0, got {len(d)}")
    f = FUNCTIONS[form]
    with warnings.catch_warnings():  # two points: no covariance (inf), so no covariance interval
        warnings.simplefilter("ignore", OptimizeWarning)
        (alpha, beta), cov = curve_fit(f, d, gain, p0=[1.0, 0.1])
    resid = gain - f(d, alpha, beta)
    ss_tot = float(((gain - gain.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else math.nan
    return {"alpha": float(alpha), "beta": float(beta), "cov": np.asarray(cov), "r2": r2, "n": len(d),
            "d_max": float(d.max())}


def peak(form: str, alpha: float, beta: float) -> tuple[float, float]:
    """``(d*, R(d*))`` of a fitted form; NaN when beta <= 0 (no maximum)."""
    if not beta > 0:
        return math.nan, math.nan
    if form == "rl":
        d_star = math.exp(alpha / beta - 1.0)
        return d_star, beta * d_star
    return alpha / (2 * beta), alpha**2 / (4 * beta)


def gains(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, float]:
    """``(d, gold - gold at d=0, gold at d=0)`` of a gold_eval / bon table (first row = the start)."""
    order = df["sqrt_kl"].to_numpy(dtype=np.float64)
    gold = df["gold_reward"].to_numpy(dtype=np.float64)
    start = float(gold[int(np.argmin(order))])
    return order, gold - start, start


def fit_curves(run: str, form: str, curves: Sequence[pd.DataFrame]) -> dict:
    """One ``fits.csv`` row (:data:`FIT_COLUMNS`) for ``run``'s replicate curves under ``form``."""
    from scipy import stats

    parts = [gains(df) for df in curves]
    d = np.concatenate([p[0] for p in parts])
    g = np.concatenate([p[1] for p in parts])
    start = float(np.mean([p[2] for p in parts]))
    if (d > 0).sum() < 2:  # e.g. a run stopped after one eval step: a row of NaN, not a failed stage
        return {**dict.fromkeys(FIT_COLUMNS, math.nan), "run": run, "form": form, "n_replicates": len(curves),
                "n_points": int((d > 0).sum()), "gold_start": start, "peak_in_range": False,
                "interval": "too_few_points", **(observed_drop(curves) if form == "rl" else {})}
    pooled = fit_form(form, d, g)
    d_peak, r_peak = peak(form, pooled["alpha"], pooled["beta"])
    row = {"run": run, "form": form, "n_replicates": len(curves), "n_points": pooled["n"], "d_max": pooled["d_max"],
           "gold_start": start, "alpha": pooled["alpha"], "beta": pooled["beta"], "r2": pooled["r2"],
           "d_peak": d_peak, "gold_peak": start + r_peak,
           "peak_in_range": bool(d_peak <= pooled["d_max"]) if not math.isnan(d_peak) else False}
    if len(curves) >= 2:
        each = [fit_form(form, p[0], p[1]) if (p[0] > 0).sum() >= 2 else {"alpha": math.nan, "beta": math.nan}
                for p in parts]
        peaks = [peak(form, e["alpha"], e["beta"]) for e in each]
        for key, values in (("alpha", [e["alpha"] for e in each]), ("beta", [e["beta"] for e in each]),
                            ("d_peak", [p[0] for p in peaks]),
                            ("gold_peak", [s[2] + p[1] for s, p in zip(parts, peaks)])):
            _, lo, hi = t_interval(values) if np.all(np.isfinite(values)) else (math.nan, math.nan, math.nan)
            row[f"{key}_lo"], row[f"{key}_hi"] = lo, hi
        row["interval"] = "replicates_t95"
    else:
        dof = max(pooled["n"] - 2, 1)
        t = float(stats.t.ppf(0.975, dof))
        for i, key in enumerate(("alpha", "beta")):
            half = t * math.sqrt(max(float(pooled["cov"][i, i]), 0.0)) if np.isfinite(pooled["cov"][i, i]) \
                else math.nan
            row[f"{key}_lo"], row[f"{key}_hi"] = row[key] - half, row[key] + half
        row.update(d_peak_lo=math.nan, d_peak_hi=math.nan, gold_peak_lo=math.nan, gold_peak_hi=math.nan)
        row["interval"] = "fit_covariance_t95"
    if form == "rl":
        row.update(observed_drop(curves))
    return row


def observed_drop(curves: Sequence[pd.DataFrame]) -> dict:
    """The ``best_step`` ... ``drop_p`` values of one PPO run's replicate curves (see the module doc)."""
    from scipy import stats

    out = dict.fromkeys(("best_step", "best_gold", "final_step", "final_gold", "drop", "drop_lo", "drop_hi",
                         "drop_p"), math.nan)
    if not all("step" in df for df in curves):
        return out
    steps = sorted(set.intersection(*(set(df["step"]) for df in curves)))
    if len(steps) < 3:
        return out
    gold = np.array([df.set_index("step")["gold_reward"].loc[steps].to_numpy(dtype=np.float64) for df in curves])
    best = 1 + int(np.argmax(gold[:, 1:-1].mean(axis=0)))
    drops = gold[:, best] - gold[:, -1]
    out.update(best_step=steps[best], best_gold=float(gold[:, best].mean()), final_step=steps[-1],
               final_gold=float(gold[:, -1].mean()), drop=float(drops.mean()))
    if len(curves) >= 2:
        _, out["drop_lo"], out["drop_hi"] = t_interval(drops)
        sd = float(drops.std(ddof=1))
        out["drop_p"] = float(stats.ttest_1samp(drops, 0.0).pvalue) if sd > 0 else float(drops.mean() == 0)
    else:
        se = curves[0].set_index("step")["gold_reward_se"]
        s = math.hypot(float(se.loc[steps[best]]), float(se.loc[steps[-1]]))
        out["drop_lo"], out["drop_hi"] = out["drop"] - Z95 * s, out["drop"] + Z95 * s
        out["drop_p"] = float(2 * stats.norm.sf(abs(out["drop"]) / s)) if s > 0 else math.nan
    return out


def fit_table(rl: dict[str, Sequence[pd.DataFrame]], bon: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """fits.csv: one ``rl`` row per PPO run (its replicates' gold_eval tables), one ``bon`` row per
    best-of-n table."""
    rows = [fit_curves(run, "rl", curves) for run, curves in rl.items()]
    rows += [fit_curves(run, "bon", [df]) for run, df in bon.items()]
    return pd.DataFrame(rows, columns=FIT_COLUMNS)
