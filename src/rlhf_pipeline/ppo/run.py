"""A PPO run's state and plumbing, around the algorithm in :mod:`rlhf_pipeline.ppo.trainer`: set-up (accelerator,
tokenizer, policy, reference, value model, optimizer, LR schedule, KL controller, hooks), the train log and
trackers, preemption and the final model. Checkpoints and resumption: :mod:`rlhf_pipeline.ppo.checkpoint`.
"""

from __future__ import annotations

import copy
import csv
import importlib.util
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import PipelineError
from ..io import atomic_dir, atomic_file, write_json
from ..models.lm_head import use_blocked_lm_head
from ..runtime import keep_freed_memory
from ..trainer_checkpoints import Preempted
from .config import PPOConfig
from .kl import make_kl_controller
from .timing import PhaseTimer
from .trajectories import RUN_FILE as TRAJECTORY_RUN_FILE
from .trajectories import TrajectoryLog
from .value import ValueModel, load_value_backbone

log = logging.getLogger(__name__)

LOG_COLUMNS = ["step", "episodes", "score", "rlhf_reward", "kl", "kl_k3", "kl_coef", "entropy",
               "policy_loss", "value_loss", "approxkl", "clipfrac", "vf_clipfrac", "lr",
               "grad_norm", "response_length", "time"]


@dataclass(eq=False)
class RunState:
    """What one PPO run holds between its steps, evals and checkpoints (models wrapped by ``acc``)."""

    cfg: PPOConfig
    acc: Any
    """The ``accelerate.Accelerator``."""
    tok: Any
    policy: torch.nn.Module
    ref_policy: torch.nn.Module | None
    """The frozen reference; None under LoRA (the policy with its adapters disabled)."""
    value_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    params: list[torch.nn.Parameter]
    """The trainable parameters of the policy and the value model (clipped together)."""
    scheduler: Any
    kl_ctl: Any
    reward_fn: Any
    out_dir: Path
    ckpt_dir: Path
    hooks: list = field(default_factory=list)
    timer: PhaseTimer = field(default_factory=PhaseTimer)
    rows: list[dict[str, Any]] = field(default_factory=list)
    """``train_log.csv`` so far."""

    @classmethod
    def set_up(cls, cfg: PPOConfig, policy_dir: str, reward_fn, train_prompts: list[str], out_dir: Path,
               ckpt_dir: Path, hooks=(), run_info: dict[str, Any] | None = None):
        """Check the inputs, seed, load the models and build the optimizer, the LR schedule, the KL controller and
        the hooks (the trajectory log first): a run about to start (or resume, :func:`~.checkpoint.resume_run`)."""
        from accelerate.utils import set_seed

        keep_freed_memory()
        if not train_prompts:
            raise PipelineError("PPO: no training prompts")
        if cfg.log_with == "wandb" and importlib.util.find_spec("wandb") is None:
            raise PipelineError("config ppo.log_with: 'wandb' needs the wandb package (pip install wandb)")
        on_gpu = torch.cuda.is_available()
        acc = make_accelerator(cfg, out_dir, on_gpu)
        set_seed(cfg.seed)
        tok = load_policy_tokenizer(policy_dir)
        policy, ref_policy, value_model = build_models(cfg, policy_dir, use_gpu_features=on_gpu)
        params = [p for m in (policy, value_model) for p in m.parameters() if p.requires_grad]
        # fused: one kernel per parameter instead of a pass per AdamW operation (the same update; the embedding
        # matrices' updates were ~9% of a CPU step)
        optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, eps=1e-5, fused=True)
        scheduler = make_scheduler(cfg, optimizer)
        policy, value_model, optimizer = acc.prepare(policy, value_model, optimizer)
        if ref_policy is not None:
            ref_policy = ref_policy.to(acc.device)
        kl_ctl = make_kl_controller(cfg.kl_coef, cfg.adaptive_kl, cfg.kl_target, cfg.kl_horizon)
        hooks = [*trajectory_hooks(cfg, out_dir, run_info, acc.is_main_process), *hooks]
        return cls(cfg, acc, tok, policy, ref_policy, value_model, optimizer, params, scheduler, kl_ctl, reward_fn,
                   out_dir, ckpt_dir, hooks)

    def open_logs(self) -> None:
        """Start the trackers (TensorBoard, W&B) and write ``train_log.csv`` as far as it goes (the resumed rows)."""
        cfg = self.cfg
        if cfg.log_with != "none":
            self.acc.init_trackers("tb", config={k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                                 for k, v in cfg.to_dict().items()})
        if self.acc.is_main_process:
            write_log(self.out_dir / "train_log.csv", self.rows)

    def log_step(self, step: int, stats: dict[str, float], seconds: float) -> None:
        """One row of ``train_log.csv`` (and the trackers) for ``step``: its statistics and wall seconds."""
        cfg, acc = self.cfg, self.acc
        row = {"step": step, "episodes": step * cfg.batch_size, **stats, "time": seconds}
        self.rows.append({k: row[k] for k in LOG_COLUMNS + sorted(k for k in row if k.startswith("term_"))})
        with self.timer("logging"):
            if acc.is_main_process:
                write_log(self.out_dir / "train_log.csv", self.rows)
            if cfg.log_with != "none":
                acc.log({f"ppo/{k}": v for k, v in row.items() if k != "step"}, step=step)

    def preempted(self, step: int, signum: int) -> Preempted:
        """The exception that ends a run stopped by signal ``signum`` once ``step`` is checkpointed."""
        self.acc.end_training()
        msg = (f"PPO: got signal {signum}; checkpointed step {step} in {self.ckpt_dir}; "
               f"exiting with {128 + signum} (a rerun resumes from there)")
        log.warning(msg)
        return Preempted(signum, msg)

    def finish(self) -> dict[str, Any]:
        """Save the final policy (LoRA merged) and its tokenizer to ``out_dir/model``; the run's summary."""
        acc = self.acc
        model_dir = self.out_dir / "model"
        if acc.is_main_process:
            final = acc.unwrap_model(self.policy)
            if self.cfg.lora.enabled:
                final = final.merge_and_unload()
            with atomic_dir(model_dir) as tmp:
                final.save_pretrained(tmp)
                self.tok.save_pretrained(tmp)
        acc.wait_for_everyone()
        acc.end_training()  # last: it closes the trackers and, under several processes, the process group
        seconds = self.timer.seconds
        log.info("PPO wall time by phase (s): %s", {k: round(v, 2) for k, v in seconds.items()})
        return {"steps": self.cfg.num_steps, "last": self.rows[-1] if self.rows else {}, "model_dir": str(model_dir),
                "eval_files": sorted(str(p) for p in (self.out_dir / "eval").glob("step*.jsonl")),
                "phase_seconds": dict(seconds)}


def make_accelerator(cfg: PPOConfig, out_dir: Path, on_gpu: bool):
    """The ``Accelerator`` (bf16 on GPU if configured, the trackers' project in ``out_dir``); the batch must split
    evenly over the processes and each process's share into mini-batches."""
    from accelerate import Accelerator

    acc = Accelerator(mixed_precision="bf16" if cfg.bf16 and on_gpu else "no",
                      log_with=None if cfg.log_with == "none" else cfg.log_with, project_dir=str(out_dir))
    check_batch_split(cfg, acc.num_processes)
    return acc


def check_batch_split(cfg: PPOConfig, num_processes: int) -> None:
    """PipelineError unless the batch splits evenly over the processes and each share into mini-batches (every
    optimiser: PPO's and the TRL ones')."""
    if cfg.batch_size % num_processes:
        raise PipelineError(f"config ppo.batch_size: {cfg.batch_size} is not divisible by the "
                            f"{num_processes} processes")
    local_batch = cfg.batch_size // num_processes
    if local_batch % cfg.mini_batch_size:
        raise PipelineError(f"config ppo.mini_batch_size: {cfg.mini_batch_size} does not divide the "
                            f"per-process batch {local_batch}")


def trajectory_hooks(cfg: PPOConfig, out_dir: Path, run_info: dict[str, Any] | None, main: bool) -> list:
    """``[TrajectoryLog]`` when ``cfg.trajectories`` (else the directory gets a run file saying so)."""
    traj_dir = out_dir / "trajectories"
    info = {"run": out_dir.name, "hparams": cfg.to_dict(), **(run_info or {})}
    if cfg.trajectories:
        return [TrajectoryLog(traj_dir, info, cfg.trajectory_chunk_steps, cfg.batch_size)]
    if main:  # the rule's directory output exists either way; readers say why it holds no chunks
        shutil.rmtree(traj_dir, ignore_errors=True)
        write_json(traj_dir / TRAJECTORY_RUN_FILE, {**info, "logged": False})
    return []


def load_policy_tokenizer(policy_dir: str):
    """The policy's tokenizer, left-padded and left-truncated, with a pad token."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(policy_dir)
    except OSError as e:
        raise PipelineError(f"PPO policy {policy_dir!r}: tokenizer cannot be loaded ({e})") from None
    if tok.eos_token_id is None:
        raise PipelineError(f"PPO policy {policy_dir!r}: the tokenizer has no EOS token")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    tok.truncation_side = "left"
    return tok


def build_models(cfg: PPOConfig, policy_dir: str, use_gpu_features: bool):
    """(policy, reference or None under LoRA, value model), dropout off, reference frozen."""
    from transformers import AutoModelForCausalLM

    try:
        policy = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32)
    except OSError as e:
        raise PipelineError(f"PPO policy {policy_dir!r}: cannot be loaded ({e})") from None
    if not use_gpu_features:  # the same logits, faster on CPU (the reference copies it)
        use_blocked_lm_head(policy)
    backbone = load_value_backbone(cfg.value_init, policy_dir, cfg.value_init_path,
                                   policy.config.vocab_size)
    ref_policy = None
    if cfg.lora.enabled:
        from peft import get_peft_model

        policy = get_peft_model(policy, cfg.lora.peft_config("CAUSAL_LM"))
        backbone = get_peft_model(backbone, cfg.lora.peft_config("FEATURE_EXTRACTION"))
    else:
        ref_policy = copy.deepcopy(policy).eval().requires_grad_(False)
        disable_dropout(ref_policy)
    value_model = ValueModel(backbone)
    for m in (policy, value_model):
        disable_dropout(m)
    if use_gpu_features and cfg.gradient_checkpointing:
        for m in (policy, backbone):
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif cfg.gradient_checkpointing:
        log.warning("ppo.gradient_checkpointing is ignored on CPU")
    return policy, ref_policy, value_model


def disable_dropout(model: torch.nn.Module) -> None:
    """Dropout off everywhere: ``nn.Dropout`` modules and functional attention dropout rates.

    (The same as ``trl.trainer.utils.disable_dropout_in_model`` plus the attention-dropout rates
    Llama-style attention reads at call time; written here to avoid importing TRL, ~3 s.)
    """
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0


def make_scheduler(cfg: PPOConfig, optimizer):
    """Linear decay to 0 over the run, or constant; stepped once per PPO step."""
    from transformers import get_constant_schedule, get_linear_schedule_with_warmup

    if cfg.lr_schedule == "linear":
        return get_linear_schedule_with_warmup(optimizer, 0, cfg.num_steps)
    return get_constant_schedule(optimizer)


def write_log(path: Path, rows: list[dict[str, Any]], columns: list[str] = LOG_COLUMNS) -> None:
    """``train_log.csv``: ``columns`` (PPO's :data:`LOG_COLUMNS`), then the other keys (the reward's ``term_<name>``
    means, a TRL optimiser's own metrics), sorted."""
    terms = sorted({k for r in rows for k in r if k not in columns})
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns + terms)
        writer.writeheader()
        writer.writerows(rows)
