"""Model backends behind the :class:`~rlhf_pipeline.debate.types.Debater` and
:class:`~rlhf_pipeline.debate.types.Judge` interfaces, chosen by ``type:`` in config.

:func:`build_debater` / :func:`build_judge` construct one from its :class:`ModelConfig`. The backend
modules are imported here (so a stage's code hash covers them, see :mod:`rlhf_pipeline.codegraph`),
but their heavy libraries (torch, transformers, openai, anthropic, sentence-transformers) only when a
backend that needs them is built.
"""

from __future__ import annotations

from typing import Any

from ...errors import PipelineError
from ..config import DEBATER_TYPES, JUDGE_TYPES, ModelConfig
from ..types import Debater, Judge
from . import api, extractive, hf, simple

_DEBATERS = {
    "deterministic": simple.DeterministicDebater,
    "random": simple.RandomDebater,
    "offline": simple.OfflineDebater,
    "extractive": extractive.ExtractiveDebater,
    "hf": hf.HFDebater,
    "openai_compatible": api.OpenAIDebater,
    "anthropic": api.AnthropicDebater,
}
_JUDGES = {
    "deterministic": simple.DeterministicJudge,
    "random": simple.RandomJudge,
    "offline": simple.OfflineJudge,
    "quote_similarity": extractive.QuoteSimilarityJudge,
    "hf": hf.HFJudge,
    "openai_compatible": api.OpenAIJudge,
    "anthropic": api.AnthropicJudge,
}
assert set(_DEBATERS) == set(DEBATER_TYPES) and set(_JUDGES) == set(JUDGE_TYPES)


def _build(table: dict[str, type], kind: str, name: str, cfg: ModelConfig, prompts: dict[str, Any]):
    if cfg.type not in table:
        raise PipelineError(f"debate {kind} {name!r}: type {cfg.type!r} is not one of {sorted(table)}")
    return table[cfg.type](name, cfg, prompts)


def build_debater(name: str, cfg: ModelConfig, prompts: dict[str, Any]) -> Debater:
    """The debater backend ``cfg.type`` named ``name``; ``prompts``: the loaded prompts file."""
    return _build(_DEBATERS, "debater", name, cfg, prompts)


def build_judge(name: str, cfg: ModelConfig, prompts: dict[str, Any]) -> Judge:
    """The judge backend ``cfg.type`` named ``name``; ``prompts``: the loaded prompts file."""
    return _build(_JUDGES, "judge", name, cfg, prompts)
