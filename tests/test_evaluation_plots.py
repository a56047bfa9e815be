"""Evaluation figures (rlhf_pipeline.evaluation.plots): gold vs KL, and the overoptimization figure
with best-of-n, replicate bands, fits and diversity."""

import numpy as np
import pandas as pd
import pytest
from evaluation_helpers import bon_rows, gold_table, word_count, write_eval_dir, write_samples

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.evaluation import best_of_n, plot_gold_vs_kl
from rlhf_pipeline.evaluation.diversity import heldout_rows
from rlhf_pipeline.evaluation.fits import fit_curves
from rlhf_pipeline.evaluation.gold_eval import gold_eval
from rlhf_pipeline.evaluation.plots import plot_overoptimization
from rlhf_pipeline.evaluation.replicates import aggregate_replicates


def _run_table(alpha, beta, steps=8):
    d = np.linspace(0, 3, steps)
    return pd.DataFrame(
        {
            "step": np.arange(steps) * 100,
            "sqrt_kl": d,
            "kl": d**2,
            "gold_reward": d * (alpha - beta * np.log(np.maximum(d, 1e-9))),
            "gold_reward_se": 0.1,
            "proxy_reward": alpha * d,
            "proxy_reward_se": 0.1,
        }
    )


def test_plots(tmp_path):
    eval_dir = write_eval_dir(tmp_path / "eval", truncate_last=False)
    run = gold_eval(eval_dir, word_count)
    out = tmp_path / "plots" / "gold_vs_kl.png"
    plot_gold_vs_kl(run, out, "run mean")
    assert out.stat().st_size > 10_000

    samples = tmp_path / "samples.jsonl"
    write_samples(samples, bon_rows())
    bon = best_of_n(samples, "mean", 0.0, [1, 2, 3, 4], None, standardize=False)
    runs = {"mean": _run_table(1.0, 0.8), "uwo": _run_table(0.8, 0.2), "wco": run}
    over = tmp_path / "plots" / "overoptimization.png"
    plot_overoptimization(runs, {"mean": bon}, over)
    assert over.stat().st_size > 30_000
    assert not list((tmp_path / "plots").glob(".*tmp"))
    with pytest.raises(PipelineError, match="nothing|no PPO runs"):
        plot_overoptimization({}, {}, tmp_path / "x.png")


def test_overoptimization_figure_with_bands_fits_and_diversity(tmp_path):
    reps = [gold_table([0.5, 0.7, 0.6], [0.0, 1.0, 4.0]), gold_table([0.5, 0.8, 0.7], [0.0, 1.5, 4.5])]
    agg = aggregate_replicates(reps)
    fits = pd.DataFrame([fit_curves("a", "rl", reps)])
    div = pd.DataFrame(heldout_rows([1, 2], np.array([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]]),
                                    [{"label_flipped": False, "gold_chosen": None, "gold_rejected": None}] * 3))
    out = tmp_path / "o.png"
    plot_overoptimization({"a": agg}, {}, out, fits=fits, diversity=div)
    assert out.stat().st_size > 10000


def test_overoptimization_labels_name_each_runs_optimiser(tmp_path, monkeypatch):
    from rlhf_pipeline.evaluation import plots

    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, out: figures.append(fig))
    runs = {"ppo_single": _run_table(1.0, 0.8), "grpo_single": _run_table(0.8, 0.2), "odpo": _run_table(0.5, 0.1)}
    plot_overoptimization(runs, {}, tmp_path / "o.png", optimizers={"grpo_single": "grpo", "odpo": "online_dpo"})
    (fig,) = figures
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["ppo_single (PPO)", "grpo_single (GRPO)", "odpo (online DPO)"]  # unnamed: ppo
    assert fig._suptitle.get_text().startswith("Reward-model overoptimization: GRPO, PPO, online DPO (solid)")
