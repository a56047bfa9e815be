"""Runs compared at equal KL (rlhf_pipeline.evaluation.equal_kl): interpolation per replicate,
Welch intervals worked by hand, one replicate, no common KL range."""

import math

import numpy as np
import pandas as pd
import pytest

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.evaluation.equal_kl import equal_kl_table, gold_at


def _curve(d, gold, se=0.1):
    return pd.DataFrame({"step": range(len(d)), "kl": np.square(d), "gold_reward": gold, "gold_reward_se": se})


def test_equal_kl_interpolates_each_replicate_and_compares_with_welch_hand_worked():
    runs = {"single": [_curve([0, 1, 2], [0.5, 0.7, 0.6]), _curve([0, 1, 3], [0.5, 0.8, 0.8])],
            "wco": [_curve([0, 2, 4], [0.5, 0.9, 1.0]), _curve([0, 2, 2.5], [0.5, 1.1, 1.0])]}
    out = equal_kl_table(runs, "single", n_points=2).set_index(["run", "d"])
    # common range: the smallest largest d is 2 -> grid d = 1, 2 (KL 1, 4)
    assert sorted({d for _, d in out.index}) == [1.0, 2.0] and out.loc[("wco", 2.0), "kl"] == 4.0
    # d = 1: single 0.7, 0.8 (on its points); wco 0.7, 0.8 (halfway to d = 2): no difference
    assert out.loc[("single", 1.0), "gold"] == pytest.approx(0.75) and out.loc[("wco", 1.0), "diff"] == pytest.approx(0)
    # d = 2: single 0.6 and 0.8 (interpolated on (1, 0.8)-(3, 0.8)); wco 0.9, 1.1 -> diff 0.3
    row = out.loc[("wco", 2.0)]
    assert row["baseline_gold"] == pytest.approx(0.7) and row["diff"] == pytest.approx(0.3)
    # Welch: se = sqrt(0.02/2 + 0.02/2) = 0.141421, dof 2, t(0.975, 2) = 4.302653 -> half-width 0.608490;
    # t = 2.12132 with 2 dof: p = 1 - t / sqrt(2 + t^2) = 0.167950
    assert row["diff_lo"] == pytest.approx(0.3 - 0.608490, abs=1e-5)
    assert row["diff_hi"] == pytest.approx(0.3 + 0.608490, abs=1e-5)
    assert row["p_value"] == pytest.approx(0.167950, abs=1e-5) and row["interval"] == "replicates_welch95"
    # the run's own interval: t(0.975, 1) = 12.706205 times se 0.1
    assert row["gold_hi"] - row["gold"] == pytest.approx(1.2706205, abs=1e-6)
    assert out.loc[("single", 2.0), ["diff", "diff_lo", "p_value"]].isna().all()


def test_equal_kl_with_one_replicate_uses_the_prompts_and_never_extrapolates():
    runs = {"a": [_curve([0, 2], [0.5, 0.9], se=[0.1, 0.1])], "b": [_curve([0, 2], [0.5, 0.7], se=[0.1, 0.3])]}
    row = equal_kl_table(runs, "b", n_points=2).set_index(["run", "d"]).loc[("a", 1.0)]
    # d = 1: a 0.7 (se 0.1), b 0.6 (se 0.2) -> diff 0.1, se sqrt(0.05) = 0.223607, half-width 0.438261
    assert row["diff"] == pytest.approx(0.1) and row["diff_hi"] - row["diff"] == pytest.approx(0.438261, abs=1e-6)
    assert row["interval"] == "prompts_normal95"
    gold, se = gold_at(_curve([0, 2], [0.5, 0.9]), [1.0, 2.5])
    assert gold[0] == pytest.approx(0.7) and math.isnan(gold[1]) and math.isnan(se[1])
    with pytest.raises(PipelineError, match=r"run\(s\) \['c'\] must be among the compared runs"):
        equal_kl_table(runs, "c")
    same = {"a": [_curve([0, 2], [0.5, 0.9])] * 2, "b": [_curve([0, 2], [0.5, 0.7])] * 2}  # no spread
    flat = equal_kl_table(same, "b", n_points=1).set_index("run").loc["a"]
    assert (flat["diff_lo"], flat["diff_hi"], flat["p_value"]) == pytest.approx((0.2, 0.2, 0.0))
    # a replicate that never reached d > 0: no common range, one all-NaN row per run (the figure is still made)
    none = equal_kl_table({"a": runs["a"], "z": [_curve([0, 0], [0.5, 0.5])]}, "a")
    assert list(none["run"]) == ["a", "z"] and (none["interval"] == "no_common_kl").all()
    assert none[["d", "gold", "diff", "p_value"]].isna().all().all()


def test_equal_kl_compares_each_run_with_its_own_baselines_on_each_blocks_grid():
    runs = {"single": [_curve([0, 1, 2], [0.5, 0.7, 0.6]), _curve([0, 1, 2], [0.5, 0.8, 0.6])],
            "mean": [_curve([0, 2, 4], [0.5, 0.9, 1.0]), _curve([0, 2, 4], [0.5, 0.9, 1.2])],
            "wco": [_curve([0, 1, 3], [0.5, 1.0, 1.0]), _curve([0, 1, 3], [0.5, 1.0, 1.2])]}
    out = equal_kl_table(runs, "single", n_points=2, compare={"mean": ["single"], "wco": ["single", "mean"]})
    # single's block: every run (mean and wco name it), grid to d = 2 (single's end)
    single = out[out["baseline"] == "single"].set_index(["run", "d"])
    assert set(single.index.get_level_values("run")) == {"single", "mean", "wco"}
    assert sorted(set(single.index.get_level_values("d"))) == [1.0, 2.0]
    # mean's block: mean and wco only, on their common range: d to 3 (wco's end) -> grid 1.5, 3
    block = out[out["baseline"] == "mean"].set_index(["run", "d"])
    assert list(out["baseline"].drop_duplicates()) == ["single", "mean"]
    assert set(block.index.get_level_values("run")) == {"mean", "wco"}
    assert sorted(set(block.index.get_level_values("d"))) == [1.5, 3.0]
    # d = 3: mean interpolates 0.95 and 1.05 (halfway 2 -> 4), wco 1.0 and 1.2: diff +0.1
    assert block.loc[("wco", 3.0), "diff"] == pytest.approx(0.1)
    assert block.loc[("mean", 3.0), ["diff", "p_value"]].isna().all()
    with pytest.raises(PipelineError, match=r"\['nope'\]"):
        equal_kl_table(runs, "single", compare={"wco": ["nope"]})
    # exactly the comparisons given: wco against mean only -> one block, single in none
    only = equal_kl_table(runs, None, n_points=2, compare={"wco": ["mean"]})
    assert set(only["baseline"]) == {"mean"} and set(only["run"]) == {"mean", "wco"}


def test_welch_hand_worked_with_its_minimum_detectable_difference():
    from rlhf_pipeline.stats import welch

    # a: mean 2, var 1 -> 1/3; b: mean 0.5, var 0.25 -> 1/12; se^2 = 5/12 -> se 0.645497
    # Welch-Satterthwaite dof = (5/12)^2 / ((1/3)^2/2 + (1/12)^2/2) = 0.173611 / 0.059028 = 2.941176
    diff, lo, hi, p, detectable = welch([1, 2, 3], [0, 0.5, 1])
    assert diff == pytest.approx(1.5)
    # t = 1.5 / 0.645497 = 2.323790
    from scipy import stats
    assert p == pytest.approx(2 * stats.t.sf(2.323790, 2.941176), rel=1e-5)
    half = stats.t.ppf(0.975, 2.941176) * 0.645497
    assert (lo, hi) == (pytest.approx(1.5 - half, rel=1e-5), pytest.approx(1.5 + half, rel=1e-5))
    assert detectable == pytest.approx((stats.t.ppf(0.975, 2.941176) + stats.t.ppf(0.8, 2.941176)) * 0.645497,
                                       rel=1e-5)
    assert math.isnan(welch([1.0], [0.0, 1.0])[1]) and welch([1, 1], [0, 0])[1:] == (1.0, 1.0, 0.0, 0.0)
