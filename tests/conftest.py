"""Fixtures shared by several test modules: the debate prompts file (config/debate/prompts.yaml), loaded
once per module; a tiny random causal LM with the MiniLM tokenizer, saved once per module."""

from __future__ import annotations

import pytest
from debate_helpers import PROMPTS

from rlhf_pipeline.debate.prompts import load_prompts
from rlhf_pipeline.models import load_causal_lm, load_tokenizer


@pytest.fixture(scope="module")
def prompts():
    return load_prompts(PROMPTS)



@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    d = tmp_path_factory.mktemp("target")
    tok = load_tokenizer("minilm")
    model = load_causal_lm(None, tok, tiny=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                 num_attention_heads=2), seed=0)
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)
