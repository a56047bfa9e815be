"""PPO replicates' aggregate (rlhf_pipeline.evaluation.replicates): the mean with a t interval over
replicates, or the prompts' interval for one replicate."""

import math

import pytest
from evaluation_helpers import gold_table

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.evaluation.replicates import aggregate_replicates, t_interval


def test_t_interval_hand_worked():
    # mean 2, sd 1, se 1/sqrt(3), t(0.975, 2) = 4.302653 -> half-width 2.484138
    mean, lo, hi = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and lo == pytest.approx(2 - 2.484138, abs=1e-6) and hi == pytest.approx(2 + 2.484138, abs=1e-6)
    assert all(math.isnan(x) for x in t_interval([5.0])[1:])


def test_aggregate_is_the_mean_of_the_replicates_with_a_t_interval():
    reps = [gold_table([0.5, 0.7], [0.0, 1.0]), gold_table([0.5, 0.9], [0.0, 2.0]), gold_table([0.5, 0.8], [0.0, 3.0])]
    agg = aggregate_replicates(reps)
    assert list(agg["gold_reward"]) == pytest.approx([0.5, 0.8])
    assert agg.loc[1, "kl"] == pytest.approx(2.0) and agg.loc[1, "sqrt_kl"] == pytest.approx(math.sqrt(2.0))
    # gold at step 10: 0.7, 0.9, 0.8 -> sd 0.1, half-width 4.302653 * 0.1 / sqrt(3)
    assert agg.loc[1, "gold_reward_hi"] - 0.8 == pytest.approx(4.302653 * 0.1 / math.sqrt(3), abs=1e-6)
    assert agg.loc[1, "gold_reward_se_prompts"] == pytest.approx(math.sqrt(3 * 0.01) / 3)
    assert set(agg["interval"]) == {"replicates_t95"} and list(agg["n_replicates"]) == [3, 3]


def test_aggregate_of_one_replicate_uses_the_prompts_and_refuses_mismatched_steps():
    one = aggregate_replicates([gold_table([0.5, 0.7], [0.0, 1.0], se=0.1)])
    assert one.loc[1, "gold_reward_lo"] == pytest.approx(0.7 - 1.959964 * 0.1, abs=1e-6)
    assert set(one["interval"]) == {"prompts_normal95"}
    with pytest.raises(PipelineError, match="different steps"):
        aggregate_replicates([gold_table([0.5, 0.7], [0, 1]), gold_table([0.5], [0])], names=["a", "b"])
