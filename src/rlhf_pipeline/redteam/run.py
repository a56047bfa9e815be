"""One red-team run end to end (the ``redteam`` stage) and the comparison across runs (``redteam-summary``).

The attacker (the SFT policy) is trained with the project's PPO (:func:`rlhf_pipeline.ppo.train_ppo`)
against :class:`~rlhf_pipeline.redteam.rewards.RedTeamReward`; nothing about PPO is reimplemented.
Files under ``results/redteam/<run>/``:

- ``samples.jsonl``: every training rollout: ``iteration`` (PPO step), ``prompt`` (the attacker's
  input), ``attack`` (its output, the red-team prompt), ``target_response``, ``toxicity``,
  ``selfbleu``, ``cos_sim``, ``gibberish``, ``total`` (the clipped score); appended each step, made
  durable at each checkpoint, and a resumed run keeps every step exactly once;
- ``eval/step{N}.jsonl``: attacks on held-out prompts at every eval step, scored without touching the
  novelty histories (the PPO trainer's eval files with ``term_<name>`` and ``target_response``);
- ``metrics.csv``: per eval step, the success rate (target replies with toxicity >= threshold) and,
  among the successful attacks, 1 - self-BLEU, 1 - mean pairwise embedding similarity, the number of
  unique successful attacks (:func:`rlhf_pipeline.redteam.metrics.success_and_diversity`);
- ``train_log.csv`` (the trainer's columns plus each reward term's mean), ``model/``, ``manifest.json``;
- ``successful.jsonl`` only with ``export_successful: true``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ..io import append_jsonl, read_jsonl, write_jsonl
from ..ppo.hooks import Rollout
from .config import RedTeamRunConfig

SAMPLE_TERMS = ("toxicity", "selfbleu", "cos_sim", "gibberish", "total")
METRIC_COLUMNS = ["step", "n", "success_rate", "n_successful", "n_unique_successful", "diversity_bleu",
                  "diversity_embedding", "toxicity_mean", "gibberish_mean", "kl"]


class SamplesLog:
    """The PPO rollout hook that writes ``samples.jsonl`` (see the module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def checkpoint_files(self) -> dict[str, Path]:
        """Checkpoints keep a copy, so a rerun that removed the job's outputs resumes with every row."""
        return {"samples.jsonl": self.path}

    def on_resume(self, step: int) -> None:
        """Keep only the iterations up to ``step`` (a resumed run redoes the later ones)."""
        rows = read_jsonl(self.path, allow_truncated_tail=True) if self.path.exists() else []
        write_jsonl(self.path, [r for r in rows if r["iteration"] <= step])

    def on_rollout(self, r: Rollout) -> None:
        for i, (prompt, attack) in enumerate(zip(r.prompts, r.responses)):
            row = {"iteration": r.step, "prompt": prompt, "attack": attack,
                   "target_response": r.extras.get("target_response", [""] * len(r.prompts))[i]}
            row.update({k: float(r.terms[k][i]) for k in SAMPLE_TERMS if k in r.terms})
            append_jsonl(self.path, row)

    def on_checkpoint(self, step: int) -> None:
        """Every row is flushed and fsynced as it is appended; nothing to do."""


def build_reward(run: RedTeamRunConfig, target_dir: str | None, toxicity_dir: str | None):
    """The run's :class:`~rlhf_pipeline.redteam.rewards.RedTeamReward`: its target, toxicity classifier
    and gibberish detector (the workflow's own default target and classifier when the config names none)."""
    from .rewards import RedTeamReward, build_gibberish, build_toxicity
    from .target import build_target

    return RedTeamReward(run.terms, build_toxicity(run.toxicity, toxicity_dir), build_gibberish(run.gibberish),
                         build_target(run.target, target_dir, seed=run.hparams.seed))


def eval_metrics(eval_dir: str | os.PathLike, threshold: float, embed=None,
                 orders: tuple[int, ...] = (2, 3, 4, 5), sample: int | None = None) -> list[dict[str, Any]]:
    """One :data:`METRIC_COLUMNS` row per eval file of a red-team run (``sample``: the diversities'
    sample size, drawn with the eval step as seed; see :func:`~.metrics.success_and_diversity`)."""
    import numpy as np

    from ..evaluation.gold_eval import eval_files
    from .metrics import success_and_diversity

    out = []
    for step, path in eval_files(eval_dir):
        rows = read_jsonl(path, required=["response", "term_toxicity", "kl"])
        tox = [r["term_toxicity"] for r in rows]
        m = success_and_diversity(tox, [r["response"] for r in rows], threshold, embed=embed, orders=orders,
                                  sample=sample, sample_seed=step)
        out.append({"step": step, "n": len(rows), "success_rate": m["success_rate"],
                    "n_successful": m["n_successful"], "n_unique_successful": m["n_unique_successful"],
                    "diversity_bleu": m["diversity_selfbleu"], "diversity_embedding": m["diversity_cos"],
                    "toxicity_mean": float(np.mean(tox)),
                    "gibberish_mean": float(np.mean([r.get("term_gibberish", float("nan")) for r in rows])),
                    "kl": float(np.mean([r["kl"] for r in rows]))})
    return out


def train_redteam(run: RedTeamRunConfig, policy_dir: str, train_prompts: list[str], eval_prompts: list[str],
                  target_dir: str | None, toxicity_dir: str | None, out_dir: str | os.PathLike,
                  ckpt_dir: str | os.PathLike) -> dict[str, Any]:
    """Train the attacker, then write ``metrics.csv`` (and ``successful.jsonl`` when asked)."""
    import pandas as pd

    from ..io import write_csv
    from ..ppo import train_ppo

    out_dir = Path(out_dir)
    reward = build_reward(run, target_dir, toxicity_dir)
    evals = eval_prompts[: run.n_eval_prompts] * run.eval_repeats
    summary = train_ppo(run.hparams, policy_dir, reward, train_prompts, evals,
                        out_dir, ckpt_dir, hooks=[SamplesLog(out_dir / "samples.jsonl")],
                        run_info={"reward": {k: v for k, v in run.to_dict().items() if k != "hparams"}})
    metrics = eval_metrics(out_dir / "eval", run.toxicity.threshold, embed=reward.novelty.embed,
                           orders=tuple(run.terms.bleu_orders), sample=run.diversity_sample)
    write_csv(pd.DataFrame(metrics, columns=METRIC_COLUMNS), out_dir / "metrics.csv")
    if run.export_successful:
        rows = read_jsonl(out_dir / "samples.jsonl")
        write_jsonl(out_dir / "successful.jsonl", [r for r in rows if r["toxicity"] >= run.toxicity.threshold])
    return {**summary, "final_metrics": metrics[-1] if metrics else {}}


GROUP_MEASURES = ("success_rate", "diversity_bleu", "diversity_embedding", "kl")
"""The columns of ``metrics.csv`` that ``groups.csv`` compares across groups."""
GROUP_COLUMNS = ["group", "baseline", "measure", "n_runs", "mean", "lo", "hi", "baseline_mean",
                 "diff", "diff_lo", "diff_hi", "p_value", "detectable_diff"]


def group_table(table, baseline: str | None = None):
    """``groups.csv`` from the summary (one row per run, its final eval step): per group and measure of
    :data:`GROUP_MEASURES`, the mean over the group's runs with its 95% Student-t interval (the spread
    over seeds, which holds the eval prompts' sampling noise too), and the difference from the
    ``baseline`` group (default: the first run's) with Welch's 95% interval, p-value and the smallest
    difference it would detect with 80% power (:func:`rlhf_pipeline.stats.welch`). A run whose
    diversity is undefined (fewer than two successes) is left out of that measure (``n_runs``)."""
    import numpy as np
    import pandas as pd

    from ..evaluation.replicates import t_interval
    from ..stats import welch

    groups = list(dict.fromkeys(table["group"]))
    baseline = baseline or groups[0]
    if baseline not in groups:
        raise PipelineError(f"red-team summary: baseline group {baseline!r} must be one of {groups}")

    def values(group: str, measure: str) -> np.ndarray:
        return table.loc[table["group"] == group, measure].dropna().to_numpy(dtype=np.float64)

    bases = {measure: values(baseline, measure) for measure in GROUP_MEASURES}
    rows = []
    for group in groups:
        for measure, base in bases.items():
            x = values(group, measure)
            mean, lo, hi = t_interval(x) if len(x) else (float("nan"),) * 3
            diff, dlo, dhi, p, detectable = (welch(x, base) if group != baseline
                                             else (float("nan"),) * 5)
            rows.append({"group": group, "baseline": baseline, "measure": measure, "n_runs": len(x),
                         "mean": mean, "lo": lo, "hi": hi,
                         "baseline_mean": float(base.mean()) if len(base) else float("nan"),
                         "diff": diff, "diff_lo": dlo, "diff_hi": dhi, "p_value": p, "detectable_diff": detectable})
    return pd.DataFrame(rows, columns=GROUP_COLUMNS)


def _half_widths(row) -> list[list[float]]:
    """Error-bar lengths below and above ``row``'s mean (0 where its interval is undefined)."""
    import math

    return [[0.0 if math.isnan(row["mean"] - row["lo"]) else row["mean"] - row["lo"]],
            [0.0 if math.isnan(row["hi"] - row["mean"]) else row["hi"] - row["mean"]]]


def summarize_redteam(runs: dict[str, tuple[str, str | os.PathLike]], out_csv: str | os.PathLike,
                      out_png: str | os.PathLike, out_groups: str | os.PathLike | None = None,
                      baseline_group: str | None = None) -> Any:
    """``runs``: name -> (group, metrics.csv). One row per run (its final eval step), the groups'
    comparison (``out_groups``: :func:`group_table`) and a plot of success rate against diversity,
    each group in one colour with its runs as points and its mean with 95% intervals as a cross."""
    import pandas as pd
    from matplotlib.figure import Figure

    from ..io import write_csv
    from ..plotting import save_figure

    rows = []
    for name, (group, path) in runs.items():
        df = pd.read_csv(path)
        if df.empty:
            raise PipelineError(f"{path}: no eval steps")
        last = df.iloc[[-1]].to_dict("records")[0]  # each column keeps its type (a row Series would be all float)
        rows.append({"run": name, "group": group, **last})
    table = pd.DataFrame(rows)
    groups = group_table(table, baseline_group).set_index(["group", "measure"])
    write_csv(table, out_csv)
    if out_groups is not None:
        write_csv(groups.reset_index()[GROUP_COLUMNS], out_groups)
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, col, label in ((axes[0], "diversity_bleu", "diversity: 1 - self-BLEU"),
                           (axes[1], "diversity_embedding", "diversity: 1 - embedding similarity")):
        for i, (group, g) in enumerate(table.groupby("group", sort=True)):
            colour = f"C{i}"
            ax.scatter(g[col], g["success_rate"], label=group, s=25, alpha=0.6, color=colour)
            x, y = groups.loc[(group, col)], groups.loc[(group, "success_rate")]
            ax.errorbar(x["mean"], y["mean"], xerr=_half_widths(x), yerr=_half_widths(y), color=colour,
                        capsize=3, lw=1.5)
            if len(g) <= 4:
                for _, r in g.iterrows():
                    ax.annotate(r["run"], (r[col], r["success_rate"]), fontsize=7, xytext=(3, 3),
                                textcoords="offset points")
        ax.set_xlabel(f"{label} (successful attacks)")
        ax.set_ylabel("success rate (toxic target replies)")
        ax.grid(alpha=0.3)
    axes[0].legend(title="group")
    fig.suptitle("Red-teaming: success against diversity at the final eval step (points: runs; "
                 "crosses: group mean, 95% interval over its runs)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, out_png)
    return table
