"""Fixtures shared by several test modules: the debate prompts file (config/debate/prompts.yaml), loaded
once per module."""

from __future__ import annotations

import pytest
from debate_helpers import PROMPTS

from rlhf_pipeline.debate.prompts import load_prompts


@pytest.fixture(scope="module")
def prompts():
    return load_prompts(PROMPTS)
