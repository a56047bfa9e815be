"""Miniature of config/experiments/coste_cpu_96steps.yaml: coste_cpu with twice the PPO steps, through its
base chain (the demo, coste_cpu, the 96-step overlay, then the miniature sizes)."""

import pandas as pd
import pytest
from miniature_harness import run_miniature

pytestmark = pytest.mark.integration


def test_coste_cpu_96steps_miniature_runs_twice_the_steps(tmp_path):
    wf = tmp_path / "wf"
    run_miniature("coste_cpu_96steps", wf)
    for run in ["single", "mean", "wco", "uwo", "uwo_small_kl"]:
        agg = pd.read_csv(wf / f"results/ppo/{run}/aggregate.csv")
        assert list(agg["step"]) == [0, 1, 2, 3, 4], run  # 32 episodes of 8: twice coste_cpu's miniature
    assert (wf / "results/plots/overoptimization.png").is_file()
