"""Typed views of the ``rm:`` and ``gold_rm:`` config sections (keys exactly as in the YAML)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..config import section_from_dict
from ..errors import PipelineError
from .heads import HEADS


def _from_dict(cls, section: str, d: dict[str, Any] | None):
    """Build dataclass ``cls`` from ``d``; unknown keys -> PipelineError naming allowed keys."""
    return section_from_dict(cls, d, section)


@dataclass
class RMConfig:
    """Proxy reward-model ensemble (``rm:``): one member per seed, trained with TRL's RewardTrainer."""

    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    """One proxy RM per seed (``results/rm/seed{k}/``); members differ only in seed."""
    init: str = "sft"
    """Backbone: ``sft`` (the SFT policy's backbone) or a hub id / local path."""
    head: str = "last_token"
    """Readout head: ``last_token`` | ``mean`` | ``attention``."""
    attention_layers: int = 4
    """``attention`` head: pool over the last N layers' hidden states."""
    epochs: int = 2
    """Passes over the training pairs."""
    learning_rate: float = 3.0e-4
    """AdamW learning rate (linear decay)."""
    batch_size: int = 32
    """Pairs per optimisation step."""
    max_length: int = 64
    """Tokens per prompt+response (longer texts are truncated, identically at inference)."""
    bf16: bool = False
    """Train in bfloat16 mixed precision (GPU)."""

    def __post_init__(self):
        if self.head not in HEADS:
            raise PipelineError(f"config rm.head={self.head!r}: must be one of {list(HEADS)}")
        if not self.seeds:
            raise PipelineError("config rm.seeds: needs at least one seed")
        for key in ("attention_layers", "epochs", "batch_size", "max_length"):
            if int(getattr(self, key)) < 1:
                raise PipelineError(f"config rm.{key}={getattr(self, key)}: must be >= 1")
        if float(self.learning_rate) <= 0:
            raise PipelineError(f"config rm.learning_rate={self.learning_rate}: must be > 0")
        self.learning_rate = float(self.learning_rate)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> RMConfig:
        return _from_dict(cls, "rm", d)


@dataclass
class GoldRMConfig:
    """Gold reward model (``gold_rm:``): an existing RM, or one trained here on a hidden quality."""

    path: str | None = None
    """Existing gold RM (hub id / local path). ``None`` = train one here (embedded default)."""
    is_alpacafarm_rm: bool = False
    """AlpacaFarm RMs want their own (Alpaca instruction) prompt format."""
    encoder: str = "minilm"
    """Frozen backbone of the trained gold RM (``minilm`` = the shipped all-MiniLM-L6-v2)."""
    n_samples: int = 4000
    """Scored synthetic responses to fit on (10% held out for metrics)."""
    epochs: int = 30
    """Passes of the MLP head over the cached encoder features."""
    learning_rate: float = 3.0e-3
    """AdamW learning rate of the head."""
    batch_size: int = 128
    """Examples per head update (also the encoder's batch when caching features)."""
    seed: int = 0
    """Seed of the head's init, the held-out split and the data order."""

    def __post_init__(self):
        for key in ("n_samples", "epochs", "batch_size"):
            if int(getattr(self, key)) < 1:
                raise PipelineError(f"config gold_rm.{key}={getattr(self, key)}: must be >= 1")
        if float(self.learning_rate) <= 0:
            raise PipelineError(f"config gold_rm.learning_rate={self.learning_rate}: must be > 0")
        self.learning_rate = float(self.learning_rate)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> GoldRMConfig:
        return _from_dict(cls, "gold_rm", d)
