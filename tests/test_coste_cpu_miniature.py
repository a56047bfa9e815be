"""Miniature of config/experiments/coste_cpu.yaml (ensembles against a single proxy RM on the embedded world):
every run with replicates, the six members in two diversity regimes, fits, equal-KL comparison, the figure."""

import pandas as pd
import pytest
from miniature_harness import run_miniature

pytestmark = pytest.mark.integration

RUNS = ["single", "mean", "wco", "uwo", "uwo_small_kl"]


def test_coste_cpu_miniature_runs_to_the_overoptimization_figure(tmp_path):
    wf = tmp_path / "wf"
    run_miniature("coste_cpu", wf)  # the config's targets: the RM summary and the figure
    assert (wf / "results/plots/overoptimization.png").stat().st_size > 10_000
    for run in RUNS:
        agg = pd.read_csv(wf / f"results/ppo/{run}/aggregate.csv")
        assert list(agg["step"]) == [0, 1, 2] and (agg["n_replicates"] == 2).all(), run
        for replicate in (run, f"{run}_r2"):
            gold = pd.read_csv(wf / f"results/ppo/{replicate}/gold_eval.csv")
            # the KL estimate of a barely moved policy can dip below 0 by its noise; sqrt_kl clips at 0
            assert gold[["kl", "gold_reward"]].notna().all().all() and (gold["sqrt_kl"] >= 0).all(), replicate
    fits = pd.read_csv(wf / "results/plots/fits.csv")
    assert set(RUNS) <= set(fits["run"])
    equal_kl = pd.read_csv(wf / "results/plots/equal_kl.csv")
    assert set(equal_kl["baseline"]) == {"single"} and set(equal_kl["run"]) == set(RUNS)
    diversity = pd.read_csv(wf / "results/rm/diversity.csv")
    members = set(diversity["member_a"].dropna().astype(int)) | set(diversity["member_b"].dropna().astype(int))
    assert members == {1, 2, 3, 4, 5, 6}
    summary = pd.read_csv(wf / "results/rm/summary.csv")
    assert dict(zip(summary["seed"], summary["head"]))[5] == "attention"  # the diverse members' own heads
