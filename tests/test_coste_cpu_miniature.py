"""Miniature of config/experiments/coste_cpu.yaml (ensembles against a single proxy RM on the embedded world,
the world's quality as gold): every run of both regimes with replicates, the twelve members, fits with the observed
drop, the equal-KL comparisons each run names, the figure."""

import pandas as pd
import pytest
from miniature_harness import run_miniature

pytestmark = pytest.mark.integration

RUNS = ["single", "mean", "wco", "uwo", "single_ind", "mean_ind", "wco_ind", "uwo_ind",
        "single_noisy", "mean_noisy", "wco_noisy", "uwo_noisy"]


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
    assert not (wf / "results/gold_rm").exists()  # gold is the world's quality: no gold RM is trained
    fits = pd.read_csv(wf / "results/plots/fits.csv").set_index(["run", "form"])
    assert set(RUNS) <= set(fits.index.get_level_values("run"))
    assert (fits.loc[(RUNS, "rl"), "final_step"] == 2).all() and fits.loc[(RUNS, "rl"), "best_step"].eq(1).all()
    equal_kl = pd.read_csv(wf / "results/plots/equal_kl.csv")
    pairs = set(zip(equal_kl["run"], equal_kl["baseline"]))
    # each regime's runs against its own single RM, WCO / UWO also against their mean; no cross-regime pair
    assert {("mean", "single"), ("wco", "mean"), ("uwo", "single"), ("mean_noisy", "single_noisy"),
            ("wco_noisy", "mean_noisy"), ("uwo_noisy", "single_noisy")} <= pairs
    assert ("wco_ind", "mean_ind") in pairs

    def regime(run):  # single / single_ind / single_noisy ...: the suffix names the members' regime
        return run.partition("_")[2]

    assert not any(regime(run) != regime(base) for run, base in pairs)
    diversity = pd.read_csv(wf / "results/rm/diversity.csv")
    members = set(diversity["member_a"].dropna().astype(int)) | set(diversity["member_b"].dropna().astype(int))
    assert members == set(range(1, 13))
    summary = pd.read_csv(wf / "results/rm/summary.csv")
    assert dict(zip(summary["seed"], summary["head"]))[5] == "attention"  # the diverse members' own heads
