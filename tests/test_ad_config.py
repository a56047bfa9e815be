"""Algorithm distillation's settings (rlhf_pipeline.ad.config): the context template, held-out
histories, the LM's context length, the seeded hyperparameter search."""

import pytest

from rlhf_pipeline.ad.config import ADSection, ContextFormat
from rlhf_pipeline.errors import PipelineError


def test_template_and_section_checks():
    with pytest.raises(PipelineError, match=r"ad.format.template: .*expected a template with the \{reward\}"):
        ContextFormat.from_dict({"template": "Prompt: {prompt} Completion: {response}"}, "ad.format")
    with pytest.raises(PipelineError, match=r"ad.format.template: .*only \{prompt\}"):
        ContextFormat.from_dict({"template": "{prompt} {response} {reward} {other}"}, "ad.format")
    with pytest.raises(PipelineError, match="ad.heldout: got 'nope', expected one of the histories"):
        ADSection.from_dict({"heldout": ["nope"]}, "ad").check_runs(["seed1"], [1, 2, 3], "ad")
    with pytest.raises(PipelineError, match="ad.heldout: .*leaves a history for training"):
        ADSection.from_dict({"heldout": ["seed1"], "histories": {"n": 0}}, "ad").check_runs(["seed1"], [1, 2, 3], "ad")
    with pytest.raises(PipelineError, match="ad.lm.tiny.max_position_embeddings"):
        ADSection.from_dict({"format": {"context_length": 1024}}, "ad")
    a, b = ADSection().histories.hparams(0), ADSection().histories.hparams(1)
    assert a == ADSection().histories.hparams(0) and a != b  # seeded random search, per history
    assert 3e-5 <= a["learning_rate"] <= 3e-4 and 0.005 <= a["kl_coef"] <= 0.1
