"""Miniature of config/experiments/optimisers_cpu.yaml (PPO, GRPO and RLOO against one proxy RM and the mean of
three, on the embedded world, the world's quality as gold): every run with replicates through the real rules, their
gold evals and aggregates, fits, the equal-KL comparisons of each optimiser with PPO on the same objective and of
the mean with the single RM within each optimiser, the figure."""

import json

import pandas as pd
import pytest
from miniature_harness import run_miniature

pytestmark = pytest.mark.integration

OPTIMISERS = ["ppo", "grpo", "rloo"]
RUNS = [f"{opt}_{objective}" for opt in OPTIMISERS for objective in ("single", "mean")]


def test_optimisers_cpu_miniature_runs_to_the_overoptimization_figure(tmp_path):
    wf = tmp_path / "wf"
    run_miniature("optimisers_cpu", wf, targets=["results/plots/overoptimization.png"])
    assert (wf / "results/plots/overoptimization.png").stat().st_size > 10_000
    for run in RUNS:
        agg = pd.read_csv(wf / f"results/ppo/{run}/aggregate.csv")
        assert list(agg["step"]) == [0, 1, 2] and (agg["n_replicates"] == 2).all(), run
        for replicate in (run, f"{run}_r2"):
            out = wf / f"results/ppo/{replicate}"
            gold = pd.read_csv(out / "gold_eval.csv")
            assert list(gold["step"]) == [0, 1, 2], replicate
            assert gold[["kl", "gold_reward", "proxy_reward"]].notna().all().all(), replicate
            assert (gold["sqrt_kl"] >= 0).all(), replicate
            # equal episode budgets: every optimiser logs the same 2 steps of 8 rollouts
            log = pd.read_csv(out / "train_log.csv")
            assert list(log["step"]) == [1, 2] and list(log["episodes"]) == [8, 16], replicate
            assert json.loads((out / "manifest.json").read_text()), replicate
        # replicate 2 has its own seed: its trained policy differs from replicate 1's (same step-0 samples aside)
        last = [pd.read_csv(wf / f"results/ppo/{r}/gold_eval.csv").iloc[-1] for r in (run, f"{run}_r2")]
        assert (last[0]["kl"], last[0]["proxy_reward"]) != (last[1]["kl"], last[1]["proxy_reward"]), run
    assert not (wf / "results/gold_rm").exists()  # gold is the world's quality: no gold RM is trained
    fits = pd.read_csv(wf / "results/plots/fits.csv")
    assert set(RUNS) <= set(fits["run"])
    equal_kl = pd.read_csv(wf / "results/plots/equal_kl.csv")
    pairs = {(run, base) for run, base in zip(equal_kl["run"], equal_kl["baseline"]) if run != base}
    # each TRL optimiser against PPO on the same objective; the mean against the single RM within each optimiser
    assert pairs == {("grpo_single", "ppo_single"), ("rloo_single", "ppo_single"), ("grpo_mean", "ppo_mean"),
                     ("rloo_mean", "ppo_mean"), ("ppo_mean", "ppo_single"), ("grpo_mean", "grpo_single"),
                     ("rloo_mean", "rloo_single")}
    compared = equal_kl[equal_kl["run"] != equal_kl["baseline"]]
    assert (compared["n_replicates"] == 2).all() and (compared["n_baseline_replicates"] == 2).all()
