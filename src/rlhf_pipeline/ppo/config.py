"""`PPOConfig`: every PPO hyperparameter in one dataclass (TRL-style, one comment per field).

Defaults work for the embedded tiny CPU policy. Names follow Huang et al. 2024, "The N
Implementation Details of RLHF with PPO", and OpenAI's lm-human-preferences.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from ..config import section_from_dict
from ..errors import PipelineError
from ..models.lora import LoraSettings


def ppo_lora(d: dict[str, Any] | None = None) -> LoraSettings:
    """PPO's LoRA settings: as SFT's, but adapter dropout defaults to 0 (PPO wants dropout off).
    The reference model is then the base model with the adapters disabled."""
    return section_from_dict(LoraSettings, {"dropout": 0.0, **(d or {})}, "ppo.lora")


@dataclass
class PPOConfig:
    """PPO for a causal LM against a scalar reward function."""

    # --- length of the run -----------------------------------------------------------------
    total_episodes: int = 3200
    """Rollouts (prompt, response) over the whole run; steps = ceil(total_episodes / batch_size)."""
    batch_size: int = 32
    """Rollouts per PPO step (over all processes)."""
    mini_batch_size: int = 8
    """Rollouts per optimizer step (per process); batch_size / mini_batch_size updates per epoch."""
    grad_accum: int = 1
    """Micro-batches each mini-batch is split into (gradient accumulation)."""
    ppo_epochs: int = 4
    """Passes over the step's rollouts, in freshly shuffled mini-batches each time."""

    # --- optimiser -------------------------------------------------------------------------
    learning_rate: float = 1.0e-4
    """AdamW learning rate (policy and value model share one optimizer, eps=1e-5)."""
    lr_schedule: str = "linear"
    """`linear` (decay to 0 over the run, stepped once per PPO step) or `constant`."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm (policy + value) to this value; 0 disables clipping."""

    # --- sampling --------------------------------------------------------------------------
    max_prompt_length: int = 64
    """Prompts longer than this many tokens keep their last `max_prompt_length` tokens."""
    max_new_tokens: int = 24
    """Response length limit. Everything after the first EOS is padding."""
    temperature: float = 1.0
    """Sampling temperature; logprobs are computed from `logits / temperature` too."""
    top_k: int = 0
    """Top-k sampling (0 = off). With top_k > 0 the logprobs (full softmax) no longer equal the
    sampling distribution; Huang et al. keep it at 0."""

    # --- advantages and losses -------------------------------------------------------------
    gamma: float = 1.0
    """Discount factor of GAE."""
    lam: float = 0.95
    """GAE lambda."""
    cliprange: float = 0.2
    """Clip range of the policy ratio."""
    cliprange_value: float = 0.2
    """Clip range of the value prediction around the rollout value."""
    vf_coef: float = 0.1
    """Weight of the value loss in the total loss."""
    whiten_rewards: bool = False
    """Whiten the per-token shaped rewards over the batch (masked, mean kept) before GAE."""

    # --- KL penalty ------------------------------------------------------------------------
    kl_coef: float = 0.05
    """Initial (or fixed) beta of the per-token penalty -beta * (logp - ref_logp)."""
    adaptive_kl: bool = False
    """Adapt beta towards `kl_target` (Ziegler et al. 2019); otherwise beta stays `kl_coef`."""
    kl_target: float = 6.0
    """Target KL (nats per sequence, k1) of the adaptive controller."""
    kl_horizon: int = 10000
    """Horizon (in episodes) of the adaptive controller."""
    missing_eos_penalty: float | None = None
    """If set, the score of a response without EOS is replaced by this value."""

    # --- models ----------------------------------------------------------------------------
    value_init: str = "policy"
    """Value backbone initialisation: `policy` (the initial policy) or `reward` (the causal-LM
    backbone of the reward-model directory `value_init_path`)."""
    value_init_path: str | None = None
    """Reward-model directory for `value_init: reward`."""
    lora: LoraSettings = field(default_factory=ppo_lora)
    """LoRA settings (see `ppo_lora`)."""
    bf16: bool = False
    """bf16 mixed precision (only on GPU; ignored on CPU)."""
    gradient_checkpointing: bool = False
    """Gradient checkpointing of policy and value backbones (only on GPU; ignored on CPU)."""

    # --- evaluation, checkpoints, logging --------------------------------------------------
    eval_interval: int = 20
    """Write eval samples every this many steps (and at step 0 and the final step)."""
    eval_batch_size: int = 64
    """Prompts per generation batch during evaluation."""
    checkpoint_interval: int = 20
    """Save a resumable checkpoint every this many steps (and at the final step)."""
    log_with: str = "tensorboard"
    """`tensorboard` (out_dir/tb), `none`, or `wandb`. train_log.csv is always written."""
    seed: int = 0
    """Seed of prompt order, sampling, and minibatch shuffling."""

    @property
    def num_steps(self) -> int:
        """PPO steps in the run."""
        return math.ceil(self.total_episodes / self.batch_size)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PPOConfig:
        """Build from a config section; unknown keys and out-of-range values raise PipelineError."""
        d = dict(d or {})
        if isinstance(d.get("lora"), dict) or d.get("lora") is None:
            d["lora"] = ppo_lora(d.get("lora"))
        cfg = section_from_dict(cls, d, "ppo")
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        """Raise PipelineError naming the first key whose value is out of range."""
        positive = ["total_episodes", "batch_size", "mini_batch_size", "grad_accum", "ppo_epochs",
                    "learning_rate", "max_prompt_length", "max_new_tokens", "temperature",
                    "kl_horizon", "eval_interval", "eval_batch_size", "checkpoint_interval"]
        for key in positive:
            if not getattr(self, key) > 0:
                _bad(key, getattr(self, key), "> 0")
        for key in ["top_k", "cliprange", "cliprange_value", "vf_coef", "kl_coef", "kl_target",
                    "max_grad_norm"]:
            if not getattr(self, key) >= 0:
                _bad(key, getattr(self, key), ">= 0")
        for key in ["gamma", "lam"]:
            if not 0 <= getattr(self, key) <= 1:
                _bad(key, getattr(self, key), "in [0, 1]")
        if self.batch_size % self.mini_batch_size:
            _bad("mini_batch_size", self.mini_batch_size, f"a divisor of batch_size={self.batch_size}")
        if self.mini_batch_size % self.grad_accum:
            _bad("grad_accum", self.grad_accum, f"a divisor of mini_batch_size={self.mini_batch_size}")
        choices = {"lr_schedule": ("linear", "constant"), "value_init": ("policy", "reward"),
                   "log_with": ("tensorboard", "none", "wandb")}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                _bad(key, getattr(self, key), f"one of {list(allowed)}")
        if self.value_init == "reward" and not self.value_init_path:
            _bad("value_init_path", self.value_init_path, "a reward-model directory when value_init is 'reward'")
        if self.lora.enabled and self.lora.r <= 0:
            _bad("lora.r", self.lora.r, "> 0")


def _bad(key: str, value: Any, expected: str) -> None:
    raise PipelineError(f"config ppo.{key}: got {value!r}, expected {expected}")
