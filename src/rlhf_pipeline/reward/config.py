"""Typed views of the ``rm:`` and ``gold_rm:`` config sections (keys exactly as in the YAML)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Section, bad, setting

HEAD_NAMES = ("last_token", "mean", "attention")
"""Readout heads of :mod:`rlhf_pipeline.reward.heads` (defined here so configs load without torch)."""
OBJECTIVES = ("mean", "WCO", "UWO")
"""Ensemble objectives of :mod:`rlhf_pipeline.reward.ensemble`."""


@dataclass
class RMConfig(Section):
    """Proxy reward-model ensemble (``rm:``): one member per seed, trained with TRL's RewardTrainer."""

    section = "rm"

    seeds: list[int] = setting(default_factory=lambda: [1, 2, 3], ge=0, min_items=1, unique=True,
                               help="One proxy RM per seed (results/rm/seed{k}/); members differ only in seed.")
    init: str = setting("sft", help="Backbone: 'sft' (the SFT policy's backbone), 'minilm' (the shipped "
                        "all-MiniLM-L6-v2) or a hub id / local model directory.")
    head: str = setting("last_token", choices=HEAD_NAMES, help="Readout head.")
    attention_layers: int = setting(4, ge=1, help="'attention' head: pool over the last N layers' hidden states.")
    epochs: float = setting(2, gt=0, help="Passes over the training pairs.")
    learning_rate: float = setting(3.0e-4, gt=0, help="AdamW learning rate (linear decay).")
    batch_size: int = setting(32, ge=1, help="Pairs per optimisation step.")
    max_length: int = setting(64, ge=1, help="Tokens per prompt+response (longer texts are truncated, "
                              "identically at inference).")
    bf16: bool = setting(False, help="Train in bfloat16 mixed precision (GPU only).")


@dataclass
class GoldRMConfig(Section):
    """Gold reward model (``gold_rm:``): an existing RM, or one trained here on a hidden quality."""

    section = "gold_rm"

    path: str | None = setting(None, help="Existing gold RM (hub id or local model directory); null = train "
                               "one here on the synthetic world (embedded default).")
    is_alpacafarm_rm: bool = setting(False, help="AlpacaFarm RMs want their own (Alpaca instruction) prompt format.")
    encoder: str = setting("minilm", help="Frozen backbone of the trained gold RM ('minilm' = the shipped "
                           "all-MiniLM-L6-v2, or a local encoder directory / hub id).")
    n_samples: int = setting(4000, ge=1, help="Scored synthetic responses to fit on (10% held out for metrics).")
    epochs: int = setting(30, ge=1, help="Passes of the MLP head over the cached encoder features.")
    learning_rate: float = setting(3.0e-3, gt=0, help="AdamW learning rate of the head.")
    batch_size: int = setting(128, ge=1, help="Examples per head update (also the encoder's batch when caching).")
    seed: int = setting(0, help="Seed of the head's init, the held-out split and the data order.")

    def check(self, where: str) -> None:
        if self.path is not None and not self.path.strip():
            bad(f"{where}.path", self.path, "a model directory, a hub id, or null")
