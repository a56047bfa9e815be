"""Model backends behind the :class:`~rlhf_pipeline.debate.types.Debater` and
:class:`~rlhf_pipeline.debate.types.Judge` interfaces, chosen by ``type:`` in config.

:func:`build_debater` / :func:`build_judge` construct one from its :class:`ModelConfig`; heavy
libraries (torch, transformers, openai, anthropic, sentence-transformers) are imported only by the
backend that needs them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ...errors import PipelineError
from ..config import DEBATER_TYPES, JUDGE_TYPES, ModelConfig
from ..types import Debater, Judge

# type -> (module, class) of each backend
_DEBATERS = {
    "deterministic": ("simple", "DeterministicDebater"),
    "random": ("simple", "RandomDebater"),
    "offline": ("simple", "OfflineDebater"),
    "extractive": ("extractive", "ExtractiveDebater"),
    "hf": ("hf", "HFDebater"),
    "openai_compatible": ("api", "OpenAIDebater"),
    "anthropic": ("api", "AnthropicDebater"),
}
_JUDGES = {
    "deterministic": ("simple", "DeterministicJudge"),
    "random": ("simple", "RandomJudge"),
    "offline": ("simple", "OfflineJudge"),
    "quote_similarity": ("extractive", "QuoteSimilarityJudge"),
    "hf": ("hf", "HFJudge"),
    "openai_compatible": ("api", "OpenAIJudge"),
    "anthropic": ("api", "AnthropicJudge"),
}
assert set(_DEBATERS) == set(DEBATER_TYPES) and set(_JUDGES) == set(JUDGE_TYPES)


def _build(table: dict[str, tuple[str, str]], kind: str, name: str, cfg: ModelConfig, prompts: dict[str, Any]):
    if cfg.type not in table:
        raise PipelineError(f"debate {kind} {name!r}: type {cfg.type!r} is not one of {sorted(table)}")
    module, cls = table[cfg.type]
    return getattr(import_module(f".{module}", __name__), cls)(name, cfg, prompts)


def build_debater(name: str, cfg: ModelConfig, prompts: dict[str, Any]) -> Debater:
    """The debater backend ``cfg.type`` named ``name``; ``prompts``: the loaded prompts file."""
    return _build(_DEBATERS, "debater", name, cfg, prompts)


def build_judge(name: str, cfg: ModelConfig, prompts: dict[str, Any]) -> Judge:
    """The judge backend ``cfg.type`` named ``name``; ``prompts``: the loaded prompts file."""
    return _build(_JUDGES, "judge", name, cfg, prompts)
