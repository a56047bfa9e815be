"""Ensemble diversity diagnostics (rlhf_pipeline.evaluation.diversity): held-out error correlations,
residuals of the gold margin, disagreement against the proxy's error."""

import math

import numpy as np
import pandas as pd
import pytest

from rlhf_pipeline.evaluation.diversity import disagreement_rows, heldout_rows, residuals


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
