"""Ensemble diversity diagnostics: how correlated are the members' errors, and does their disagreement
track the proxy's error on the samples PPO produces? Written to ``results/rm/diversity.csv``.

Long format, one number per row: ``scope, subject, member_a, member_b, measure, value, n``.

``scope: heldout_pairs`` (the held-out preference pairs, scored by every member):

- ``accuracy_gold`` (member_a): fraction of pairs the member orders like the gold RM.
- ``error_corr`` (member_a, member_b): Pearson correlation of the two members' *mistakes*, the 0/1
  indicators "orders this pair against gold" (the phi coefficient). 1 = they err on the same pairs.
- ``residual_corr`` (member_a, member_b): Pearson correlation of the members' margin residuals: each
  member's standardised margin (r_chosen - r_rejected) / reward_std minus its least-squares fit on
  the gold margin (gold_chosen - gold_rejected). Needs gold scores in the pairs file.
- ``mean_error_corr`` / ``mean_residual_corr`` (subject = a run, or ``all``): the mean over its
  members' pairs.

``scope: ppo_eval`` (subject = an ensemble run, its replicates' eval samples pooled):

- ``disagreement_error_pearson`` / ``disagreement_error_spearman``: correlation between each sample's
  ensemble disagreement (``ensemble_variance``, the population variance of the standardised member
  scores PPO logged) and its proxy-minus-gold error ``z(mean member score) - z(gold)``, both z-scored
  over the run's samples. UWO relies on this being positive: it only helps if the members disagree
  where the proxy overrates the sample. ``..._last_step``: the same on the last eval step only.
- ``mean_variance``: the mean ensemble variance over those samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from ..errors import PipelineError
from ..stats import pearson, spearman

DIVERSITY_COLUMNS = ["scope", "subject", "member_a", "member_b", "measure", "value", "n"]


def gold_orientation(rows: Sequence[dict]) -> np.ndarray:
    """+1 where the pair's chosen response is the gold-better one, -1 where its label was flipped."""
    return np.array([-1.0 if r["label_flipped"] else 1.0 for r in rows])


def member_errors(margins: np.ndarray, orientation: np.ndarray) -> np.ndarray:
    """0/1 mistakes (K, P): the member's margin does not agree in sign with the gold preference (ties err)."""
    return (np.asarray(margins) * orientation[None, :] <= 0).astype(np.float64)


def residuals(margins: np.ndarray, gold_margin: np.ndarray) -> np.ndarray:
    """(K, P) least-squares residuals of each member's margin regressed (with intercept) on the gold margin."""
    x = np.column_stack([np.ones_like(gold_margin), gold_margin])
    coef, *_ = np.linalg.lstsq(x, np.asarray(margins, dtype=np.float64).T, rcond=None)
    return (np.asarray(margins).T - x @ coef).T


def _row(scope, subject, a, b, measure, value, n) -> dict:
    return {"scope": scope, "subject": subject, "member_a": a, "member_b": b, "measure": measure,
            "value": float(value), "n": int(n)}


def heldout_rows(members: Sequence[int], margins: np.ndarray, rows: Sequence[dict],
                 groups: dict[str, Sequence[int]] | None = None) -> list[dict]:
    """The ``heldout_pairs`` rows from the members' standardised margins (K, P) on the pairs ``rows``."""
    margins = np.asarray(margins, dtype=np.float64)
    orient = gold_orientation(rows)
    errs = member_errors(margins, orient)
    has_gold = all(r.get("gold_chosen") is not None and r.get("gold_rejected") is not None for r in rows)
    res = residuals(margins, np.array([r["gold_chosen"] - r["gold_rejected"] for r in rows])) if has_gold else None
    n = margins.shape[1]
    out = [_row("heldout_pairs", "all", m, "", "accuracy_gold", 1.0 - errs[k].mean(), n) for k, m in enumerate(members)]
    err_corr, res_corr = {}, {}
    for i, j in combinations(range(len(members)), 2):
        a, b = members[i], members[j]
        err_corr[a, b] = pearson(errs[i], errs[j])
        out.append(_row("heldout_pairs", "all", a, b, "error_corr", err_corr[a, b], n))
        if res is not None:
            res_corr[a, b] = pearson(res[i], res[j])
            out.append(_row("heldout_pairs", "all", a, b, "residual_corr", res_corr[a, b], n))
    for name, seeds in {"all": list(members), **(groups or {})}.items():
        pairs = [(a, b) for a, b in combinations(members, 2) if a in seeds and b in seeds]
        if not pairs:
            continue
        out.append(_row("heldout_pairs", name, "", "", "mean_error_corr", np.mean([err_corr[p] for p in pairs]), n))
        if res_corr:
            out.append(_row("heldout_pairs", name, "", "", "mean_residual_corr",
                            np.mean([res_corr[p] for p in pairs]), n))
    return out


def disagreement_rows(run: str, samples: pd.DataFrame) -> list[dict]:
    """The ``ppo_eval`` rows of one run from per-sample columns ``step, variance, proxy_mean, gold``."""
    def z(x):
        x = np.asarray(x, dtype=np.float64)
        return (x - x.mean()) / x.std() if x.std() > 0 else x * 0.0

    out = []
    for suffix, df in (("", samples), ("_last_step", samples[samples["step"] == samples["step"].max()])):
        err = z(df["proxy_mean"]) - z(df["gold"])
        var = df["variance"].to_numpy(dtype=np.float64)
        out.append(_row("ppo_eval", run, "", "", f"disagreement_error_pearson{suffix}", pearson(var, err), len(df)))
        out.append(_row("ppo_eval", run, "", "", f"disagreement_error_spearman{suffix}", spearman(var, err), len(df)))
        out.append(_row("ppo_eval", run, "", "", f"mean_variance{suffix}", var.mean(), len(df)))
    return out


def eval_samples(eval_dirs: Sequence[str], scorer: Callable[[list[str], list[str]], np.ndarray]) -> pd.DataFrame:
    """Every eval sample of the run's replicates with its ensemble variance, member-mean proxy score and
    gold score (``scorer`` on all samples at once)."""
    from .gold_eval import load_eval_dir

    rows = []
    for d in eval_dirs:
        for step, (_, step_rows) in load_eval_dir(d).items():
            rows += [{"step": step, "prompt": r["prompt"], "response": r["response"],
                      "variance": r["ensemble_variance"], "proxy_mean": float(np.mean(r["proxy_scores"]))}
                     for r in step_rows]
    if not rows:
        raise PipelineError(f"diversity: no eval samples in {list(eval_dirs)}")
    df = pd.DataFrame(rows)
    df["gold"] = np.asarray(scorer(df["prompt"].tolist(), df["response"].tolist()), dtype=np.float64).reshape(-1)
    return df


def diversity_table(rm_dirs: Sequence[str], members: Sequence[int], pairs_path: str,
                    runs: dict[str, Sequence[str]], gold_scorer, groups: dict[str, Sequence[int]] | None = None,
                    *, batch_size: int) -> pd.DataFrame:
    """diversity.csv: every member scores the held-out pairs; every ensemble run's eval samples are
    gold-scored. ``runs``: run name -> its replicates' eval directories."""
    from ..reward.ensemble import EnsembleReward
    from ..reward.train import read_preferences

    rows = read_preferences(pairs_path)
    ens = EnsembleReward(rm_dirs, standardize=True, batch_size=batch_size)
    prompts = [r["prompt"] for r in rows]
    chosen = ens.score_detail(prompts, [r["chosen"] for r in rows])["members"].numpy()
    rejected = ens.score_detail(prompts, [r["rejected"] for r in rows])["members"].numpy()
    out = heldout_rows(list(members), chosen - rejected, rows, groups)
    for run, dirs in runs.items():
        out += disagreement_rows(run, eval_samples(dirs, gold_scorer))
    return pd.DataFrame(out, columns=DIVERSITY_COLUMNS)
