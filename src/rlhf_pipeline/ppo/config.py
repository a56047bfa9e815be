"""`PPOConfig`: every PPO hyperparameter in one dataclass (TRL-style, one comment per field).

Defaults work for the embedded tiny CPU policy. Names follow Huang et al. 2024, "The N
Implementation Details of RLHF with PPO", and OpenAI's lm-human-preferences.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import Section, bad, setting
from ..models.lora import PPOLoraSettings

OPTIMIZERS = ("ppo", "grpo", "rloo", "online_dpo")
"""Policy optimisers a run can name (``ppo.runs.<run>.optimizer``): the project's PPO, or TRL's GRPO, RLOO and
online DPO trainers (:mod:`rlhf_pipeline.ppo.trl_optim`)."""


@dataclass
class GRPOSettings(Section):
    """GRPO's own settings (TRL's ``GRPOTrainer``; ``ppo.hparams.grpo``). The settings it shares with PPO come
    from the PPO hyperparameters: see :data:`rlhf_pipeline.ppo.trl_optim.SHARED`."""

    section = "ppo.hparams.grpo"

    num_generations: int = setting(4, ge=2, help="Completions sampled per prompt (the group); batch_size / "
                                   "num_generations prompts per step.")
    scale_rewards: str = setting("group", choices=("group", "batch", "none"), help="Divide the group-centred "
                                 "rewards by the group's std (GRPO), the batch's std, or nothing (Dr. GRPO).")
    loss_type: str = setting("dapo", choices=("grpo", "dapo", "dr_grpo", "bnpo"), help="How token losses are "
                             "aggregated (TRL's loss_type; dapo: over the active tokens of the batch).")
    epsilon_high: float | None = setting(None, gt=0, help="Upper clip range of the ratio (DAPO's clip-higher); "
                                         "null: cliprange.")
    mask_truncated_completions: bool = setting(False, help="Leave completions without EOS out of the loss (DAPO).")


@dataclass
class RLOOSettings(Section):
    """RLOO's own settings (TRL's ``RLOOTrainer``; ``ppo.hparams.rloo``)."""

    section = "ppo.hparams.rloo"

    num_generations: int = setting(4, ge=2, help="Completions sampled per prompt; each one's baseline is the mean "
                                   "reward of the others.")
    normalize_advantages: bool = setting(False, help="Whiten the advantages over the batch.")
    mask_truncated_completions: bool = setting(False, help="Leave completions without EOS out of the loss.")


@dataclass
class OnlineDPOSettings(Section):
    """Online DPO's own settings (TRL's ``OnlineDPOTrainer``; ``ppo.hparams.online_dpo``): two completions per
    prompt, the one the run's reward scores higher is chosen."""

    section = "ppo.hparams.online_dpo"

    loss_type: str = setting("sigmoid", choices=("sigmoid", "ipo"), help="DPO's sigmoid loss or IPO's squared one.")


@dataclass
class VLLMSettings(Section):
    """Generation with vLLM for the TRL optimisers (``ppo.hparams.vllm``; GPU only, the ``vllm`` extra). The
    project's PPO and every evaluation generate with transformers."""

    section = "ppo.hparams.vllm"

    enabled: bool = setting(False, help="Generate training completions with vLLM (grpo, rloo, online_dpo runs).")
    mode: str = setting("colocate", choices=("colocate", "server"), help="colocate: vLLM in each training "
                        "process; server: a `trl vllm-serve` process on its own GPUs.")
    gpu_memory_utilization: float = setting(0.3, gt=0, le=1, help="Share of each GPU vLLM may take (colocate).")
    tensor_parallel_size: int = setting(1, ge=1, help="GPUs one vLLM engine spans (colocate).")
    server_base_url: str | None = setting(None, help="The vLLM server's URL (server mode); null: "
                                          "http://localhost:8000.")


@dataclass
class PPOConfig(Section):
    """PPO for a causal LM against a scalar reward function (``ppo.hparams``, and each run's
    ``hparams`` overrides)."""

    section = "ppo.hparams"

    # --- length of the run -----------------------------------------------------------------
    total_episodes: int = setting(3200, ge=1, help="Rollouts (prompt, response) over the whole run; "
                                  "steps = ceil(total_episodes / batch_size).")
    batch_size: int = setting(32, ge=1, help="Rollouts per PPO step (over all processes).")
    mini_batch_size: int = setting(8, ge=1, help="Rollouts per optimizer step (per process); "
                                   "batch_size / mini_batch_size updates per epoch.")
    grad_accum: int = setting(1, ge=1, help="Micro-batches each mini-batch is split into (gradient accumulation).")
    ppo_epochs: int = setting(4, ge=1, help="Passes over the step's rollouts, in freshly shuffled mini-batches.")

    # --- optimiser -------------------------------------------------------------------------
    learning_rate: float = setting(1.0e-4, gt=0, help="AdamW learning rate (policy and value model share one "
                                   "optimizer, eps=1e-5).")
    lr_schedule: str = setting("linear", choices=("linear", "constant"),
                               help="linear: decay to 0 over the run, stepped once per PPO step.")
    max_grad_norm: float = setting(1.0, ge=0, help="Clip the global gradient norm (policy + value); 0 disables.")

    # --- sampling --------------------------------------------------------------------------
    max_prompt_length: int = setting(64, ge=1, help="Prompts longer than this keep their last tokens.")
    max_new_tokens: int = setting(24, ge=1, help="Response length limit; everything after the first EOS is padding.")
    temperature: float = setting(1.0, gt=0, help="Sampling temperature; logprobs use logits / temperature too.")
    top_k: int = setting(0, ge=0, help="Top-k sampling (0 = off). With top_k > 0 the logprobs (full softmax) no "
                         "longer equal the sampling distribution; Huang et al. keep it at 0.")

    logprobs_from_sampling: bool = setting(True, help="Take the sampled tokens' logprobs under the policy (the "
                                           "PPO ratio's denominator, the KL) from the sampling pass's own logits "
                                           "instead of a second forward pass over prompt + response: the same "
                                           "numbers up to floating-point rounding (KV-cached versus full "
                                           "attention; larger under bf16), one policy forward fewer per rollout "
                                           "and eval batch. false: recompute them with that forward pass.")

    # --- advantages and losses -------------------------------------------------------------
    gamma: float = setting(1.0, ge=0, le=1, help="Discount factor of GAE.")
    lam: float = setting(0.95, ge=0, le=1, help="GAE lambda.")
    cliprange: float = setting(0.2, ge=0, help="Clip range of the policy ratio.")
    cliprange_value: float = setting(0.2, ge=0, help="Clip range of the value prediction around the rollout value.")
    vf_coef: float = setting(0.1, ge=0, help="Weight of the value loss in the total loss.")
    whiten_rewards: bool = setting(False, help="Whiten the per-token shaped rewards over the batch (masked, mean "
                                   "kept) before GAE.")

    # --- KL penalty ------------------------------------------------------------------------
    kl_coef: float = setting(0.05, ge=0, help="Initial (or fixed) beta of the per-token penalty "
                             "-beta * (logp - ref_logp).")
    adaptive_kl: bool = setting(False, help="Adapt beta towards kl_target (Ziegler et al. 2019); otherwise beta "
                                "stays kl_coef.")
    kl_target: float = setting(6.0, ge=0, help="Target KL (nats per sequence, k1) of the adaptive controller.")
    kl_horizon: int = setting(10000, ge=1, help="Horizon (in episodes) of the adaptive controller.")
    entropy_coef: float = setting(0.0, ge=0, help="Per-token entropy bonus: entropy_coef * -logprob of each sampled "
                                  "token is added to its reward (curiosity-driven red-teaming; 0 = off).")
    missing_eos_penalty: float | None = setting(None, help="If set, the score of a response without EOS is "
                                                "replaced by this value.")

    # --- models ----------------------------------------------------------------------------
    value_init: str = setting("policy", choices=("policy", "reward"), help="Value backbone initialisation: the "
                              "initial policy, or the causal-LM backbone of the RM directory value_init_path.")
    value_init_path: str | None = setting(None, help="Reward-model directory for value_init: reward.")
    lora: PPOLoraSettings = setting(default_factory=PPOLoraSettings, help="LoRA adapters of the policy (dropout "
                                    "defaults to 0); the reference model is the base with adapters disabled.")
    bf16: bool = setting(False, help="bf16 mixed precision (only on GPU; ignored on CPU).")
    gradient_checkpointing: bool = setting(False, help="Gradient checkpointing of policy and value backbones "
                                           "(only on GPU; ignored on CPU).")

    # --- the TRL optimisers' own settings (runs with optimizer grpo, rloo or online_dpo) ---------
    grpo: GRPOSettings = setting(default_factory=GRPOSettings, help="GRPO's own settings.")
    rloo: RLOOSettings = setting(default_factory=RLOOSettings, help="RLOO's own settings.")
    online_dpo: OnlineDPOSettings = setting(default_factory=OnlineDPOSettings, help="Online DPO's own settings.")
    vllm: VLLMSettings = setting(default_factory=VLLMSettings, help="vLLM generation (TRL optimisers, GPU).")
    accelerate_config: str | None = setting(None, help="An accelerate config file (e.g. DeepSpeed ZeRO-3 or "
                                            "FSDP, config/accelerate/) the run's job is launched with on "
                                            "several GPUs; null: plain data parallel (accelerate --multi_gpu).")

    # --- evaluation, checkpoints, logging --------------------------------------------------
    eval_interval: int = setting(20, ge=1, help="Write eval samples every this many steps (and at step 0 and the "
                                 "final step).")
    eval_batch_size: int = setting(64, ge=1, help="Prompts per generation batch during evaluation.")
    checkpoint_interval: int = setting(20, ge=1, help="Save a resumable checkpoint every this many steps (and at "
                                       "the final step).")
    log_with: str = setting("tensorboard", choices=("tensorboard", "none", "wandb"),
                            help="tensorboard (out_dir/tb), none, or wandb; train_log.csv is always written.")
    trajectories: bool = setting(True, help="Log every rollout (prompt, response, token ids, logprobs, reference "
                                 "logprobs, values, raw score, per-token KL and shaped rewards) to "
                                 "out_dir/trajectories/*.parquet (rlhf_pipeline.ppo.trajectories).")
    trajectory_chunk_steps: int = setting(10, ge=1, help="Steps per trajectory Parquet file (a chunk is also "
                                          "closed at every checkpoint); a killed run keeps every complete chunk.")
    seed: int = setting(0, help="Seed of prompt order, sampling, and minibatch shuffling.")

    @property
    def num_steps(self) -> int:
        """PPO steps in the run."""
        return math.ceil(self.total_episodes / self.batch_size)

    def check(self, where: str) -> None:
        if self.batch_size % self.mini_batch_size:
            bad(f"{where}.mini_batch_size", self.mini_batch_size, f"a divisor of batch_size={self.batch_size}")
        if self.mini_batch_size % self.grad_accum:
            bad(f"{where}.grad_accum", self.grad_accum, f"a divisor of mini_batch_size={self.mini_batch_size}")
        if self.value_init == "reward" and not self.value_init_path:
            bad(f"{where}.value_init_path", self.value_init_path,
                "a reward-model directory when value_init is 'reward'")


PPO_ONLY = ("gamma", "lam", "cliprange_value", "vf_coef", "whiten_rewards", "value_init", "value_init_path",
            "adaptive_kl")
"""PPO hyperparameters no TRL optimiser has: refused away from their defaults."""


def check_settings(optimizer: str, cfg: PPOConfig, where: str) -> None:
    """Refuse settings ``optimizer`` cannot honour (one line naming the key, before any compute)."""
    default = PPOConfig()
    for name in PPO_ONLY:
        if getattr(cfg, name) != getattr(default, name):
            bad(f"{where}.{name}", getattr(cfg, name), f"its default {getattr(default, name)!r}: optimizer "
                f"{optimizer} has no such setting (PPO only)")
    if cfg.entropy_coef and optimizer != "grpo":
        bad(f"{where}.entropy_coef", cfg.entropy_coef, f"0: optimizer {optimizer} has no entropy bonus (grpo does)")
    micro = cfg.mini_batch_size // cfg.grad_accum
    if optimizer in ("grpo", "rloo"):
        g = getattr(cfg, optimizer).num_generations
        if cfg.batch_size % g:
            bad(f"{where}.{optimizer}.num_generations", g, f"a divisor of batch_size={cfg.batch_size} (a step "
                "samples batch_size / num_generations prompts num_generations times)")
    elif micro % 2:
        bad(f"{where}.mini_batch_size", cfg.mini_batch_size, f"a multiple of 2 * grad_accum = {2 * cfg.grad_accum}"
            " (online DPO samples two completions per prompt)")
