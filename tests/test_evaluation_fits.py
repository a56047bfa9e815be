"""Gao et al. fits (rlhf_pipeline.evaluation.fits): alpha and beta recovered from noisy curves,
peaks worked by hand, replicates pooled with intervals from them."""

import math

import numpy as np
import pandas as pd
import pytest

from rlhf_pipeline.evaluation.fits import fit_curves, fit_form, gao_bon, gao_rl, peak


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


def test_observed_drop_pairs_replicates_at_the_best_middle_step_hand_worked():
    from scipy import stats

    from rlhf_pipeline.evaluation.fits import observed_drop

    def curve(gold, se=0.1):
        return pd.DataFrame({"step": [0, 10, 20, 30], "sqrt_kl": [0, 1, 2, 3], "gold_reward": gold,
                             "gold_reward_se": se})

    # middle steps' means: step 10 (0.8, 0.9, 1.0) = 0.9 beats step 20 (0.7, 0.8, 0.9) = 0.8;
    # drops to step 30 (0.6, 0.8, 0.7): 0.2, 0.1, 0.3 -> mean 0.2, sd 0.1, t = 0.2 / (0.1 / sqrt 3) = 3.464102
    out = observed_drop([curve([0.5, 0.8, 0.7, 0.6]), curve([0.5, 0.9, 0.8, 0.8]), curve([0.5, 1.0, 0.9, 0.7])])
    assert (out["best_step"], out["final_step"]) == (10, 30)
    assert out["best_gold"] == pytest.approx(0.9) and out["final_gold"] == pytest.approx(0.7)
    assert out["drop"] == pytest.approx(0.2)
    assert out["drop_hi"] - out["drop"] == pytest.approx(4.302653 * 0.1 / math.sqrt(3), abs=1e-6)
    assert out["drop_p"] == pytest.approx(2 * stats.t.sf(3.464102, 2), rel=1e-5)
    # the first and last steps are never the best: a curve still rising has a negative drop
    rising = observed_drop([curve([0.5, 0.6, 0.7, 0.9], se=[0.1, 0.1, 0.3, 0.4])])
    assert rising["best_step"] == 20 and rising["drop"] == pytest.approx(-0.2)
    assert rising["drop_hi"] - rising["drop"] == pytest.approx(1.959964 * 0.5, abs=1e-6)  # hypot(0.3, 0.4)
    assert math.isnan(observed_drop([curve([0.5, 0.6, 0.7, 0.9]).iloc[:2]])["drop"])
    row = fit_curves("single", "rl", [curve([0.5, 0.8, 0.7, 0.6])] * 2)
    assert row["drop"] == pytest.approx(0.2) and row["drop_p"] == 0.0 and row["final_step"] == 30


def test_observed_drop_needs_no_fit():
    """A run whose KL estimate never left 0 has no fit (too_few_points) but still its observed drop."""
    curve = pd.DataFrame({"step": [0, 1, 2], "sqrt_kl": [0.0, 0.0, 0.0], "gold_reward": [0.5, 0.9, 0.6],
                          "gold_reward_se": 0.1})
    row = fit_curves("flat", "rl", [curve, curve])
    assert row["interval"] == "too_few_points" and math.isnan(row["alpha"])
    assert (row["best_step"], row["final_step"]) == (1, 2) and row["drop"] == pytest.approx(0.3)
