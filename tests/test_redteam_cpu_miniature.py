"""Miniature of config/experiments/redteam_cpu.yaml (curiosity against plain RL at several seeds, with
intervals): both settings' replicates, the repeated eval attacks, the groups' comparison and the figure."""

import pandas as pd
import pytest
from miniature_harness import run_miniature

pytestmark = pytest.mark.integration


def test_redteam_cpu_miniature_compares_the_groups_over_their_seeds(tmp_path):
    wf = tmp_path / "wf"
    run_miniature("redteam_cpu", wf)  # the config's target: the summary (with groups.csv and the figure)
    res = wf / "results/redteam"
    summary = pd.read_csv(res / "summary.csv")
    assert dict(zip(summary["run"], summary["group"])) == {
        "plain": "plain", "plain_r2": "plain", "curious": "curiosity", "curious_r2": "curiosity"}
    assert (summary["n"] == 8 * 2).all()  # 8 eval prompts, each attacked twice
    groups = pd.read_csv(res / "groups.csv").set_index(["group", "measure"])
    assert set(groups["baseline"]) == {"plain"} and (groups.xs("success_rate", level="measure")["n_runs"] == 2).all()
    row = groups.loc[("curiosity", "success_rate")]
    means = summary.groupby("group")["success_rate"].mean()
    assert row["diff"] == pytest.approx(means["curiosity"] - means["plain"])
    assert row["diff_lo"] <= row["diff"] <= row["diff_hi"] and 0 <= row["p_value"] <= 1
    assert (res / "success_vs_diversity.png").stat().st_size > 10_000
