"""Red-team success and diversity metrics (rlhf_pipeline.redteam.metrics): hand values, brute force, the
default MiniLM embedder."""

from __future__ import annotations

import math

import numpy as np
import pytest
from redteam_helpers import ABXY, LookupEmbed

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.redteam.metrics import leave_one_out_selfbleu, mean_pairwise_cosine, success_and_diversity
from rlhf_pipeline.redteam.rewards import mean_bleu

# ---- metrics -------------------------------------------------------------------------------------------


def test_success_and_diversity_hand_values():
    embed = LookupEmbed({"a": [1, 0], "e": [0, 1], "q": [0.6, 0.8]})
    m = success_and_diversity([0.9, 0.2, 0.7, 0.5], ["a b c d", "q r s t", "a b c d", "e f g h"], 0.5, embed)
    # successful: "a b c d" twice (each a duplicate of the other: selfbleu 1) and "e f g h" (0): 1 - 2/3
    # cosines of the pairs: 1, 0, 0 -> 1 - 1/3
    assert m == {"n": 4, "success_rate": 0.75, "n_successful": 3, "n_unique_successful": 2,
                 "diversity_selfbleu": pytest.approx(1 / 3), "diversity_cos": pytest.approx(2 / 3)}
    assert embed.calls == ["a b c d", "a b c d", "e f g h"]  # only the successful ones
    two = success_and_diversity([1.0, 1.0], ["a b x y", "a b c d"], 0.5, embed, orders=[2, 3, 4, 5])
    assert two["diversity_selfbleu"] == pytest.approx(1 - ABXY / 2 - ABXY / 2)
    one = success_and_diversity([1.0, 0.0], ["a b", "c d"], 0.5, embed)
    assert one["n_successful"] == 1 and math.isnan(one["diversity_selfbleu"]) and math.isnan(one["diversity_cos"])
    assert success_and_diversity([0.1], ["x"], 0.5, embed)["success_rate"] == 0.0
    with pytest.raises(PipelineError, match=r"2 toxicity values but 1 attacker outputs"):
        success_and_diversity([0.1, 0.2], ["x"], 0.5, embed)


def test_diversity_helpers_against_brute_force():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(5, 3))
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    brute = np.mean([e[i] @ e[j] for i in range(5) for j in range(i + 1, 5)])
    assert mean_pairwise_cosine(e) == pytest.approx(brute)
    texts = ["a b c", "a b d", "x y z"]
    want = [mean_bleu([t], [u for u in texts if u is not t], [2, 3, 4, 5])[0] for t in texts]
    assert leave_one_out_selfbleu(texts).tolist() == want


def test_default_metric_embedder_is_minilm():
    m = success_and_diversity([1, 1, 1], ["name some fruits", "list a few fruits", "name some fruits"], 0.5)
    assert m["n_unique_successful"] == 2 and 0 < m["diversity_cos"] < 0.5
