"""Reward-model settings (rlhf_pipeline.reward.config)."""

import pytest

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.reward.config import RMConfig


def test_member_overrides_and_the_disjoint_partition_seeds():
    rm = RMConfig.from_dict({"seeds": [1, 2, 3, 4], "data": "disjoint",
                             "members": {"2": {"data": "bootstrap", "member_label_noise": 0.1}}})
    assert rm.member(1).seeds == [1, 3, 4] and rm.member(4).data == "disjoint"
    assert rm.member(2).seeds == [2] and rm.member(2).data == "bootstrap" and rm.member(2).member_label_noise == 0.1
    with pytest.raises(PipelineError, match=r"rm.data: got 'half'"):
        RMConfig.from_dict({"data": "half"})
