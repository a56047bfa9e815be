"""Evaluation settings (rlhf_pipeline.evaluation.config)."""

import pytest

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.evaluation import BestOfNConfig


def test_bon_config_from_dict():
    assert BestOfNConfig.from_dict({"ns": [1, 2]}).ns == [1, 2]
    assert BestOfNConfig.from_dict(None).standardize is True
    with pytest.raises(PipelineError, match=r"unknown key\(s\) \['n'\].*'ns'"):
        BestOfNConfig.from_dict({"n": [1]})
    with pytest.raises(PipelineError, match="bon.ns"):
        BestOfNConfig.from_dict({"ns": [0, 2]})
