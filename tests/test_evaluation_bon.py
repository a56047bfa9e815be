"""Best-of-n (rlhf_pipeline.evaluation.bon): the unbiased estimator against hand values and brute force,
its KL, and the stage on sample files (mean and standardised UWO objectives, bad input)."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from evaluation_helpers import GOLD, PROXY, bon_rows, write_samples

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.evaluation import BON_COLUMNS, best_of_n, bon_expected, bon_weights, kl_bon


def test_bon_expected_hand_values():
    # n=1: plain mean of the targets.
    assert bon_expected(PROXY, GOLD, 1) == pytest.approx(2.5)
    # n=N: the target of the proxy argmax (0.4 -> 2).
    assert bon_expected(PROXY, GOLD, 4) == pytest.approx(2.0)
    # n=2: the 6 pairs' proxy-argmax golds: {.1,.4}->2 {.1,.2}->3 {.1,.3}->4 {.4,.2}->2 {.4,.3}->2
    # {.2,.3}->4: 17/6.  Weights C(i-1,1)/C(4,2) = [0,1,2,3]/6 over ascending proxy give the same.
    assert bon_expected(PROXY, GOLD, 2) == pytest.approx(17 / 6)
    # n=3: weights [0,0,1,3]/4 over golds sorted by proxy [1,3,4,2]: (4 + 6)/4.
    assert bon_expected(PROXY, GOLD, 3) == pytest.approx(2.5)
    # proxy as its own target: the expected best-of-2 proxy (0.2 + 2*0.3 + 3*0.4)/6.
    assert bon_expected(PROXY, PROXY, 2) == pytest.approx(2.0 / 6)


def test_bon_weights():
    np.testing.assert_allclose(bon_weights(4, 2), [0, 1 / 6, 2 / 6, 3 / 6])
    np.testing.assert_allclose(bon_weights(5, 1), [0.2] * 5)
    for N, n in [(1, 1), (7, 3), (200, 50)]:
        assert bon_weights(N, n).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n=5, N=4"):
        bon_weights(4, 5)


def test_bon_ties_share_weight_and_ignore_order():
    # proxy ties at the top: pairs {a,b} tie -> (3+5)/2, {a,c} -> 3, {b,c} -> 5; mean 4.
    proxy, gold = np.array([1.0, 1.0, 0.0]), np.array([3.0, 5.0, 0.0])
    assert bon_expected(proxy, gold, 2) == pytest.approx(4.0)
    assert bon_expected(proxy[::-1], gold[::-1], 2) == pytest.approx(4.0)
    # n=N with a tied maximum: the mean of the tied targets, not whichever came first.
    assert bon_expected(proxy, gold, 3) == pytest.approx(4.0)


def _brute_force(proxy, target, n):
    """Average over all n-subsets of the target at the proxy argmax (ties: mean of the tied)."""
    vals = []
    for subset in itertools.combinations(range(len(proxy)), n):
        top = max(proxy[i] for i in subset)
        vals.append(np.mean([target[i] for i in subset if proxy[i] == top]))
    return float(np.mean(vals))


@pytest.mark.parametrize("ties", [False, True])
def test_bon_matches_brute_force_over_subsets(ties):
    rng = np.random.default_rng(0)
    for _ in range(5):
        N = 8
        proxy = rng.integers(0, 4, N).astype(float) if ties else rng.normal(size=N)
        gold = rng.normal(size=N)
        for n in range(1, N + 1):
            assert bon_expected(proxy, gold, n) == pytest.approx(_brute_force(proxy, gold, n))


def test_kl_bon():
    assert kl_bon(1) == 0.0
    assert kl_bon(4) == pytest.approx(math.log(4) - 0.75)
    assert kl_bon(2) == pytest.approx(0.19314718)
    with pytest.raises(ValueError):
        kl_bon(0)


def test_best_of_n_stage_mean_objective(tmp_path):
    samples = tmp_path / "samples.jsonl"
    write_samples(samples, bon_rows())
    out = tmp_path / "bon" / "bon.csv"
    df = best_of_n(samples, "mean", 0.0, [4, 1, 2], out, standardize=False)
    back = pd.read_csv(out)
    assert list(back.columns) == BON_COLUMNS
    assert back["n"].tolist() == [1, 2, 4]
    assert back["n_prompts"].tolist() == [2, 2, 2]
    np.testing.assert_allclose(back["kl"], [0.0, math.log(2) - 0.5, math.log(4) - 0.75])
    # gold per prompt: n=1 -> 2.5 and 0; n=2 -> 17/6 and (10 + 2*20 - 3*30)/6 = -40/6; n=4 -> 2, -30
    np.testing.assert_allclose(back["gold_reward"], [1.25, (17 / 6 - 40 / 6) / 2, -14.0])
    # proxy per prompt: n=1 -> 0.25, 2.5; n=4 -> 0.4, 4
    np.testing.assert_allclose(back["proxy_reward"].iloc[[0, 2]], [1.375, 2.2])
    # SE over 2 prompts = |a - b| / 2
    assert back["gold_reward_se"].iloc[2] == pytest.approx(16.0)
    pd.testing.assert_frame_equal(df, back, check_dtype=False)


def test_best_of_n_stage_uwo_standardized(tmp_path):
    # One prompt; member 2 = 10 * member 1 + 100, so after standardising both are the same z-score
    # and the variance across members is 0: UWO = mean = z. Without standardising, member 2 wins.
    raw = [1.0, 2.0, 3.0, 4.0]
    rows = [
        {"prompt": "p", "response": "r", "proxy_scores": [x, 10 * x + 100], "gold_reward": g}
        for x, g in zip(raw, [4.0, 3.0, 2.0, 1.0])
    ]
    samples = tmp_path / "s.jsonl"
    write_samples(samples, rows)
    df = best_of_n(samples, "uwo", 0.5, [1, 4], None, standardize=True)
    z_max = (4.0 - 2.5) / np.std(raw)
    np.testing.assert_allclose(df["proxy_reward"], [0.0, z_max], atol=1e-12)
    np.testing.assert_allclose(df["gold_reward"], [2.5, 1.0])
    assert df["gold_reward_se"].isna().all()  # one prompt: no standard error
    # Unstandardised UWO: members (x, 10x+100) differ by 9x+100, population var = ((9x+100)/2)^2;
    # for x=4: mean 72 - 0.5 * 68^2 = -2240, and x=1 has the highest UWO (55.5 - 0.5*54.5^2).
    df = best_of_n(samples, "uwo", 0.5, [4], None, standardize=False)
    assert df["gold_reward"].iloc[0] == pytest.approx(4.0)
    assert df["proxy_reward"].iloc[0] == pytest.approx(55.5 - 0.5 * 54.5**2)


def test_best_of_n_rejects_n_above_N(tmp_path):
    samples = tmp_path / "samples.jsonl"
    write_samples(samples, bon_rows())
    with pytest.raises(PipelineError, match=r"n=8 exceeds N=4"):
        best_of_n(samples, "mean", 0.0, [1, 8], tmp_path / "bon.csv")
    assert not (tmp_path / "bon.csv").exists()
    rows = bon_rows()
    rows[3]["proxy_scores"] = [1.0]
    write_samples(samples, rows)
    with pytest.raises(PipelineError, match="row 4: proxy_scores"):
        best_of_n(samples, "mean", 0.0, [1], None)
