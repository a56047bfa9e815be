"""Issue 13: PPO replicates and their aggregate, Gao et al. fits, ensemble member data options and the
diversity diagnostics, and the CPU experiment config (validation and plan)."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.evaluation.diversity import disagreement_rows, heldout_rows, residuals
from rlhf_pipeline.evaluation.equal_kl import equal_kl_table, gold_at
from rlhf_pipeline.evaluation.fits import fit_curves, fit_form, gao_bon, gao_rl, peak
from rlhf_pipeline.evaluation.plots import plot_overoptimization
from rlhf_pipeline.evaluation.replicates import aggregate_replicates, t_interval
from rlhf_pipeline.reward.config import RMConfig
from rlhf_pipeline.reward.member_data import member_indices, member_pairs
from rlhf_pipeline.runs import REPLICATE_SEED_STRIDE, PPOSection
from rlhf_pipeline.workflow_config import resolve_config

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "config/experiments/coste_cpu.yaml"


# --- replicates ---------------------------------------------------------------------------------

def test_replicates_expand_to_jobs_with_distinct_seeds():
    ppo = PPOSection.from_dict({"runs": {"one": {"rm_seeds": [4], "replicates": 3},
                                         "ens": {"rm_seeds": [1, 2], "objective": "WCO", "seed": 7}}})
    assert ppo.run_names() == ["one", "one_r2", "one_r3", "ens"]
    seeds = [ppo.run_config(n).hparams.seed for n in ("one", "one_r2", "one_r3")]
    assert seeds == [4, 4 + REPLICATE_SEED_STRIDE, 4 + 2 * REPLICATE_SEED_STRIDE]  # replicate 1 keeps today's seed
    assert ppo.run_config("ens").hparams.seed == 7
    assert ppo.replicate_of("one_r3") == ("one", 3)
    for bad_name in ("one_r4", "ens_r2", "one_r1", "one_r02"):
        with pytest.raises(KeyError):
            ppo.replicate_of(bad_name)


def test_replicate_names_may_not_name_other_runs():
    with pytest.raises(PipelineError, match=r"ppo.runs.a.replicates: got 2, expected a count whose replicate names"):
        PPOSection.from_dict({"runs": {"a": {"rm_seeds": [1], "replicates": 2}, "a_r2": {"rm_seeds": [1]}}})


def test_t_interval_hand_worked():
    # mean 2, sd 1, se 1/sqrt(3), t(0.975, 2) = 4.302653 -> half-width 2.484138
    mean, lo, hi = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and lo == pytest.approx(2 - 2.484138, abs=1e-6) and hi == pytest.approx(2 + 2.484138, abs=1e-6)
    assert all(math.isnan(x) for x in t_interval([5.0])[1:])


def _gold_eval(gold, kl, se=0.1, n=8):
    steps = list(range(0, 10 * len(gold), 10))
    return pd.DataFrame({"step": steps, "n": n, "kl": kl, "kl_se": se, "sqrt_kl": np.sqrt(kl),
                         "proxy_reward": [g + 1 for g in gold], "proxy_reward_se": se,
                         "gold_reward": gold, "gold_reward_se": se})


def test_aggregate_is_the_mean_of_the_replicates_with_a_t_interval():
    reps = [_gold_eval([0.5, 0.7], [0.0, 1.0]), _gold_eval([0.5, 0.9], [0.0, 2.0]), _gold_eval([0.5, 0.8], [0.0, 3.0])]
    agg = aggregate_replicates(reps)
    assert list(agg["gold_reward"]) == pytest.approx([0.5, 0.8])
    assert agg.loc[1, "kl"] == pytest.approx(2.0) and agg.loc[1, "sqrt_kl"] == pytest.approx(math.sqrt(2.0))
    # gold at step 10: 0.7, 0.9, 0.8 -> sd 0.1, half-width 4.302653 * 0.1 / sqrt(3)
    assert agg.loc[1, "gold_reward_hi"] - 0.8 == pytest.approx(4.302653 * 0.1 / math.sqrt(3), abs=1e-6)
    assert agg.loc[1, "gold_reward_se_prompts"] == pytest.approx(math.sqrt(3 * 0.01) / 3)
    assert set(agg["interval"]) == {"replicates_t95"} and list(agg["n_replicates"]) == [3, 3]


def test_aggregate_of_one_replicate_uses_the_prompts_and_refuses_mismatched_steps():
    one = aggregate_replicates([_gold_eval([0.5, 0.7], [0.0, 1.0], se=0.1)])
    assert one.loc[1, "gold_reward_lo"] == pytest.approx(0.7 - 1.959964 * 0.1, abs=1e-6)
    assert set(one["interval"]) == {"prompts_normal95"}
    with pytest.raises(PipelineError, match="different steps"):
        aggregate_replicates([_gold_eval([0.5, 0.7], [0, 1]), _gold_eval([0.5], [0])], names=["a", "b"])


# --- fits ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("form,f,alpha,beta", [("rl", gao_rl, 0.6, 0.3), ("bon", gao_bon, 0.5, 0.12)])
def test_fits_recover_alpha_and_beta_from_noisy_curves(form, f, alpha, beta):
    rng = np.random.default_rng(0)
    d = np.linspace(0.1, 3.0, 40)
    fit = fit_form(form, d, f(d, alpha, beta) + rng.normal(0, 0.01, len(d)))
    assert fit["alpha"] == pytest.approx(alpha, abs=0.02) and fit["beta"] == pytest.approx(beta, abs=0.02)
    assert fit["r2"] > 0.95


def test_peaks_hand_worked():
    # rl: d* = exp(alpha/beta - 1) = exp(1) for alpha = 2 beta; R(d*) = beta d*
    d_star, r_star = peak("rl", 0.6, 0.3)
    assert d_star == pytest.approx(math.e) and r_star == pytest.approx(0.3 * math.e)
    assert gao_rl(d_star, 0.6, 0.3) == pytest.approx(r_star)
    assert peak("bon", 0.5, 0.125) == pytest.approx((2.0, 0.5))  # alpha/(2 beta), alpha^2/(4 beta)
    assert all(math.isnan(x) for x in peak("rl", 0.5, -0.1))


def test_fit_curves_pools_replicates_and_takes_intervals_from_them():
    rng = np.random.default_rng(1)
    d = np.linspace(0.0, 2.5, 6)
    curves = []
    for k in range(3):
        gold = 0.6 + gao_rl(d, 0.5 + 0.02 * k, 0.3) + np.r_[0, rng.normal(0, 0.005, 5)]
        curves.append(pd.DataFrame({"sqrt_kl": d, "gold_reward": gold}))
    row = fit_curves("x", "rl", curves)
    assert row["interval"] == "replicates_t95" and row["n_points"] == 15  # d = 0 points left out
    assert row["alpha_lo"] < row["alpha"] < row["alpha_hi"] and row["alpha"] == pytest.approx(0.52, abs=0.03)
    assert row["gold_start"] == pytest.approx(0.6)
    assert row["gold_peak"] == pytest.approx(0.6 + peak("rl", row["alpha"], row["beta"])[1])
    one = fit_curves("x", "bon", curves[:1])
    assert one["interval"] == "fit_covariance_t95" and one["beta_lo"] < one["beta"] < one["beta_hi"]
    short = pd.DataFrame({"sqrt_kl": [0.0, 0.5], "gold_reward": [0.6, 0.7]})  # one point with d > 0
    assert fit_curves("x", "rl", [short])["interval"] == "too_few_points"
    assert math.isnan(fit_curves("x", "rl", [short, curves[0]])["alpha_lo"])  # a replicate too short to fit


# --- equal KL ------------------------------------------------------------------------------------

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
    with pytest.raises(PipelineError, match="baseline run 'c' must be one of the compared runs"):
        equal_kl_table(runs, "c")
    same = {"a": [_curve([0, 2], [0.5, 0.9])] * 2, "b": [_curve([0, 2], [0.5, 0.7])] * 2}  # no spread
    flat = equal_kl_table(same, "b", n_points=1).set_index("run").loc["a"]
    assert (flat["diff_lo"], flat["diff_hi"], flat["p_value"]) == pytest.approx((0.2, 0.2, 0.0))
    # a replicate that never reached d > 0: no common range, one all-NaN row per run (the figure is still made)
    none = equal_kl_table({"a": runs["a"], "z": [_curve([0, 0], [0.5, 0.5])]}, "a")
    assert list(none["run"]) == ["a", "z"] and (none["interval"] == "no_common_kl").all()
    assert none[["d", "gold", "diff", "p_value"]].isna().all().all()


def test_baseline_run_defaults_to_the_first_single_rm_run_and_must_be_a_run():
    runs = {"ens": {"rm_seeds": [1, 2]}, "one": {"rm_seeds": [1]}, "two": {"rm_seeds": [2]}}
    assert PPOSection.from_dict({"runs": runs}).baseline() == "one"
    assert PPOSection.from_dict({"runs": runs, "baseline_run": "ens"}).baseline() == "ens"
    assert PPOSection.from_dict({"runs": {"ens": runs["ens"]}}).baseline() == "ens"
    with pytest.raises(PipelineError, match=r"ppo.baseline_run: got 'x', expected one of the configured runs"):
        PPOSection.from_dict({"runs": runs, "baseline_run": "x"})


# --- member data ----------------------------------------------------------------------------------

def _pairs(n):
    return [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}", "gold_chosen": 1.0, "gold_rejected": 0.0,
             "label_flipped": i % 4 == 0} for i in range(n)]


def test_bootstrap_is_seeded_reproducible_and_differs_between_members():
    a, b = member_indices(100, "bootstrap", 4), member_indices(100, "bootstrap", 5)
    assert np.array_equal(a, member_indices(100, "bootstrap", 4)) and not np.array_equal(a, b)
    assert len(a) == 100 and 50 < len(set(a.tolist())) < 80  # about 63% distinct
    assert np.array_equal(member_indices(10, "all", 4), np.arange(10))


def test_disjoint_parts_partition_the_pairs():
    parts = [member_indices(10, "disjoint", seed, part, 3) for part, seed in enumerate((7, 8, 9))]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10)) and [len(p) for p in parts] == [4, 3, 3]
    assert np.array_equal(parts[0], member_indices(10, "disjoint", 1, 0, 3))  # the partition is shared
    with pytest.raises(PipelineError, match="only 2 training pairs"):
        member_indices(2, "disjoint", 1, 0, 3)


def test_member_label_noise_flips_exactly_its_share_reproducibly():
    rows = _pairs(40)
    out = member_pairs(rows, "all", seed=5, label_noise=0.25)
    flipped = [i for i, (r, o) in enumerate(zip(rows, out)) if r["chosen"] != o["chosen"]]
    assert len(flipped) == 10 and out == member_pairs(rows, "all", seed=5, label_noise=0.25)
    for i in flipped:  # a flip swaps the texts and gold scores and toggles label_flipped
        assert out[i]["chosen"] == rows[i]["rejected"] and out[i]["gold_chosen"] == 0.0
        assert out[i]["label_flipped"] is (not rows[i]["label_flipped"])
    assert flipped != [i for i, (r, o) in enumerate(zip(rows, member_pairs(rows, "all", 6, label_noise=0.25)))
                       if r["chosen"] != o["chosen"]]
    assert rows[0]["chosen"] == "c0"  # inputs untouched


def test_member_overrides_and_the_disjoint_partition_seeds():
    rm = RMConfig.from_dict({"seeds": [1, 2, 3, 4], "data": "disjoint",
                             "members": {"2": {"data": "bootstrap", "member_label_noise": 0.1}}})
    assert rm.member(1).seeds == [1, 3, 4] and rm.member(4).data == "disjoint"
    assert rm.member(2).seeds == [2] and rm.member(2).data == "bootstrap" and rm.member(2).member_label_noise == 0.1
    with pytest.raises(PipelineError, match=r"rm.data: got 'half'"):
        RMConfig.from_dict({"data": "half"})


# --- diversity ----------------------------------------------------------------------------------

def test_heldout_error_correlations_hand_worked():
    rows = [{"label_flipped": f, "gold_chosen": g, "gold_rejected": 0.0}
            for f, g in [(False, 1.0), (False, 2.0), (True, -1.0), (False, 3.0)]]
    # orientation +1, +1, -1, +1. Mistakes: member 1 errs on pairs 0, 2; member 2 on 0; member 3 on 1, 3.
    margins = np.array([[-1.0, 1.0, 1.0, 1.0], [-1.0, 1.0, -1.0, 1.0], [1.0, -1.0, -1.0, -2.0]])
    out = pd.DataFrame(heldout_rows([1, 2, 3], margins, rows, groups={"g": [1, 2]}))
    err = out[out["measure"] == "error_corr"].set_index(["member_a", "member_b"])["value"]
    # e1 = [1,0,1,0], e2 = [1,0,0,0]: phi = 1/sqrt(3); e1 vs e3 = [0,1,0,1]: -1; e2 vs e3: -1/sqrt(3)
    assert err[1, 2] == pytest.approx(1 / math.sqrt(3)) and err[1, 3] == pytest.approx(-1.0)
    assert err[2, 3] == pytest.approx(-1 / math.sqrt(3))
    acc = out[out["measure"] == "accuracy_gold"].set_index("member_a")["value"]
    assert list(acc) == [0.5, 0.75, 0.5]
    mean = out[out["measure"] == "mean_error_corr"].set_index("subject")["value"]
    assert mean["g"] == pytest.approx(1 / math.sqrt(3))
    assert mean["all"] == pytest.approx((1 / math.sqrt(3) - 1 - 1 / math.sqrt(3)) / 3)


def test_residuals_remove_the_gold_margin():
    g = np.array([0.0, 1.0, 2.0, 3.0])
    res = residuals(np.array([2 * g + 1, 2 * g + 1 + np.array([1, -1, -1, 1])]), g)
    assert np.allclose(res[0], 0) and np.allclose(res[1], [1, -1, -1, 1])


def test_disagreement_correlates_with_the_proxy_error():
    # proxy overrates the samples with high variance: error z(proxy) - z(gold) is +, -, +, - here
    df = pd.DataFrame({"step": [0, 0, 1, 1], "variance": [1.0, 0.0, 1.0, 0.0],
                       "proxy_mean": [1.0, 0.0, 1.0, 0.0], "gold": [0.0, 1.0, 0.0, 1.0]})
    out = pd.DataFrame(disagreement_rows("r", df)).set_index("measure")
    assert out.loc["disagreement_error_pearson", "value"] == pytest.approx(1.0)
    assert out.loc["disagreement_error_pearson_last_step", "n"] == 2
    assert out.loc["mean_variance", "value"] == pytest.approx(0.5)


def test_overoptimization_figure_with_bands_fits_and_diversity(tmp_path):
    reps = [_gold_eval([0.5, 0.7, 0.6], [0.0, 1.0, 4.0]), _gold_eval([0.5, 0.8, 0.7], [0.0, 1.5, 4.5])]
    agg = aggregate_replicates(reps)
    fits = pd.DataFrame([fit_curves("a", "rl", reps)])
    div = pd.DataFrame(heldout_rows([1, 2], np.array([[1.0, -1.0, 1.0], [1.0, 1.0, -1.0]]),
                                    [{"label_flipped": False, "gold_chosen": None, "gold_rejected": None}] * 3))
    out = tmp_path / "o.png"
    plot_overoptimization({"a": agg}, {}, out, fits=fits, diversity=div)
    assert out.stat().st_size > 10000


# --- the experiment -------------------------------------------------------------------------------

def test_experiment_config_is_valid_and_plans_three_replicates_of_each_run(tmp_path):
    cfg = resolve_config([EXPERIMENT], root=ROOT)[0]
    runs = cfg.ppo.runs
    assert {"single", "mean", "wco", "uwo", "uwo_small_kl"} <= set(runs)
    assert {r.replicates for r in runs.values()} == {3}
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
                        "--configfile", str(EXPERIMENT), "-n", "--cores", "2", "results/plots/overoptimization.png"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    table = r.stdout.split("Job stats:")[1].split("total")[0]
    jobs = {line.split()[0]: int(line.split()[1]) for line in table.strip().splitlines()[2:]}
    assert jobs["ppo"] == 3 * len(runs) and jobs["gold_eval"] == 3 * len(runs)
    assert jobs["aggregate_replicates"] == len(runs) and jobs["bon"] == len(runs)
    assert jobs["rm_train"] == len(cfg.rm.seeds) and jobs["rm_diversity"] == 1 and jobs["fit_curves"] == 1
