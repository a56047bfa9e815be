"""Ensemble members' training pairs (rlhf_pipeline.reward.member_data): bootstrap, disjoint parts,
per-member label noise."""


import numpy as np
import pytest

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.reward.member_data import member_indices, member_pairs


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
