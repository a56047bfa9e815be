"""rlhf_pipeline.stats: hand-computed values, and nan (never a made-up number) on degenerate input."""

import math

import numpy as np
import pytest

from rlhf_pipeline.stats import mean_se, pearson, pearson_se, slope_se, spearman


def test_mean_se_hand_computed():
    # mean 3; sample variance (4 + 1 + 0 + 9) / 3 = 14/3; se = sqrt(14/3) / sqrt(4)
    assert mean_se([1, 2, 3, 6]) == pytest.approx((3.0, math.sqrt(14 / 3) / 2, 4))
    assert mean_se(np.array([1.0, 2.0, 3.0, 6.0])) == pytest.approx((3.0, math.sqrt(14 / 3) / 2, 4))


def test_mean_se_leaves_non_finite_values_out():
    # (1, 3): mean 2, sample variance 2, se = sqrt(2) / sqrt(2) = 1
    assert mean_se([1.0, float("nan"), 3.0, float("inf")]) == pytest.approx((2.0, 1.0, 2))


def test_mean_se_degenerate():
    mean, se, n = mean_se([5.0])
    assert (mean, n) == (5.0, 1) and math.isnan(se)
    mean, se, n = mean_se([])
    assert math.isnan(mean) and math.isnan(se) and n == 0
    mean, se, n = mean_se([float("nan")])
    assert math.isnan(mean) and math.isnan(se) and n == 0


def test_pearson_hand_computed():
    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 4.0, 6.0, 8.0])
    assert pearson(x, y) == pytest.approx(1.0)
    assert pearson(x, -y) == pytest.approx(-1.0)
    # dx = (-1.5, -.5, .5, 1.5), dy = (-1.5, .5, -.5, 1.5): sum dx*dy = 4, sum dx^2 = sum dy^2 = 5
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert -1.0 <= pearson(x, 3 * x + 1e-9) <= 1.0


def test_pearson_is_the_centred_sum_formula_to_the_last_bit():
    """The gold RM's metrics.json of the embedded default is written with this formula: keep its bytes."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50).astype(np.float32), rng.normal(size=50).astype(np.float32)
    dx, dy = np.asarray(x, float) - np.asarray(x, float).mean(), np.asarray(y, float) - np.asarray(y, float).mean()
    assert pearson(x, y) == float((dx * dy).sum() / np.sqrt((dx * dx).sum() * (dy * dy).sum()))


@pytest.mark.parametrize(("x", "y"), [
    ([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]),   # one side constant
    ([0.1, 0.1, 0.1], [1.0, 2.0, 3.0]),              # constant, though its mean is not exactly 0.1 in floats
    ([2.0, 2.0], [2.0, 2.0]),                        # both constant
    ([1.0], [2.0]),                                  # one pair
    ([], []),                                        # none
])
def test_correlations_are_nan_on_degenerate_input(x, y):
    assert math.isnan(pearson(x, y)) and math.isnan(spearman(x, y))
    r, se, n = pearson_se(x, y)
    assert math.isnan(r) and math.isnan(se) and n == len(x)


def test_spearman_hand_computed():
    x = np.array([1.0, 2.0, 3.0, 4.0])
    # y = x^3 is monotone: Spearman 1, Pearson < 1
    assert spearman(x, x ** 3) == pytest.approx(1.0) and pearson(x, x ** 3) < 0.99
    # ranks of [1, 3, 2] vs [1, 2, 3]: d = (0, 1, -1), rho = 1 - 6*2/(3*8) = 0.5
    assert spearman([1, 3, 2], [1, 2, 3]) == pytest.approx(0.5)
    # ties get their average rank: [1, 1, 2] -> (1.5, 1.5, 3), Pearson with (1, 2, 3) = sqrt(3)/2
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2)


def test_pearson_se_hand_computed():
    r, se, n = pearson_se([1, 2, 3, 4], [1, 3, 2, 4])
    assert r == pytest.approx(0.8) and se == pytest.approx(math.sqrt((1 - 0.64) / 2)) and n == 4
    # pairs with a non-finite value are left out
    assert pearson_se([1, 2, float("nan"), 3, 4], [1, 3, 5, 2, 4]) == pytest.approx((r, se, 4))
    r, se, n = pearson_se([1, 2], [1, 2])  # two pairs: no standard error
    assert math.isnan(r) and math.isnan(se) and n == 2


def test_slope_se_hand_computed():
    # y = 2x + 1 exactly: slope 2, standard error 0
    assert slope_se([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx((2.0, 0.0, 4))
    # residuals of the fit of (0,0), (1,2), (2,1) (slope .5, intercept .5): -.5, 1, -.5; s^2 = 1.5 / 1;
    # se = sqrt(s^2 / sum (x - 1)^2) = sqrt(1.5 / 2)
    assert slope_se([0, 1, 2], [0, 2, 1]) == pytest.approx((0.5, math.sqrt(0.75), 3))
    slope, se, n = slope_se([1, 1, 1], [1, 2, 3])
    assert math.isnan(slope) and math.isnan(se) and n == 3
