"""GRPO, RLOO and online DPO runs on TRL's own trainers, with everything a PPO run has around them.

A run with ``optimizer: grpo | rloo | online_dpo`` (``ppo.runs.<run>``) trains the same SFT policy against the
same reward callable (the run's proxy-RM members and objective: :class:`~rlhf_pipeline.reward.ensemble.EnsembleReward`)
on the same prompts as the project's PPO, with TRL's ``GRPOTrainer``, ``RLOOTrainer`` or ``OnlineDPOTrainer``
(``trl.experimental.online_dpo``) doing the optimisation, generation (transformers, or vLLM: ``ppo.hparams.vllm``)
and multi-GPU work (accelerate, DeepSpeed, FSDP). Nothing of those algorithms is written here; what TRL lacks is
added through its extension points: the reward function, callbacks and the Trainer's checkpoints.

**The same settings where they mean the same thing** (:data:`SHARED`, :func:`trl_args`). A *step* is PPO's: one
batch of ``batch_size`` rollouts (completions) over all processes. GRPO and RLOO sample ``batch_size /
num_generations`` prompts ``num_generations`` times each per step and make ``ppo_epochs`` passes over them in
mini-batches of ``mini_batch_size`` (split into ``grad_accum`` micro-batches), clipped at ``cliprange``: the same
optimizer steps per step as PPO. Online DPO samples two completions for each of ``batch_size / 2`` prompts per
step and makes one pass. Every optimiser runs ``ceil(total_episodes / batch_size)`` steps: equal episode budgets.
``kl_coef`` is TRL's ``beta`` (GRPO's KL loss, RLOO's KL reward, online DPO's DPO temperature). A response
without EOS scores ``missing_eos_penalty`` when it is set, as in PPO. Each optimiser's own settings are its section
of the PPO hyperparameters (:class:`~rlhf_pipeline.ppo.config.GRPOSettings` and the others); PPO-only settings
(value model, GAE, adaptive KL) are refused when set away from their defaults (:func:`check_settings`).

**The same outputs.** ``eval/step{N:06d}.jsonl`` at step 0, every ``eval_interval`` steps and the last, made by the
code that makes PPO's (:class:`~rlhf_pipeline.ppo.sampling.PolicySampling`: same seeds, same KL estimator against
a frozen copy of the SFT policy), so gold eval, replicates, fits, equal-KL tables and the figure read every
optimiser alike; ``train_log.csv`` (one row per step: :data:`LOG_COLUMNS`, then TRL's own metrics averaged over the
step's optimizer steps as ``trl/<name>``); ``trajectories/`` (prompts, responses, token ids and raw and penalised
scores of every rollout, as the reward function saw them; TRL does not hand per-token logprobs to its extension
points, so those lists are empty); ``model/``; the manifest (the CLI).

**Checkpoints.** TRL's Trainer checkpoints (``checkpoint-N``: weights, optimizer, schedule, RNG, data position) every
``checkpoint_interval`` steps, with the eval files, the train-log rows, the trajectory chunks so far and a
stateful reward's state under ``files/``, completion-marked (:mod:`rlhf_pipeline.trainer_checkpoints`).
SIGTERM/SIGUSR1 stops at the end of the current step (never inside one: a resumed run starts a fresh generation
batch), checkpoints and exits 128 + signal; the rerun resumes there.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import PipelineError
from ..io import atomic_dir, atomic_file
from .checkpoint import check_same_config, copy_output, restore_hook_files
from .config import PPOConfig, check_settings
from .hooks import Rollout, score_batch
from .run import check_batch_split, disable_dropout, load_policy_tokenizer, trajectory_hooks, write_log
from .sampling import PolicySampling

log = logging.getLogger(__name__)

TRL_OPTIMIZERS = ("grpo", "rloo", "online_dpo")

SHARED = {"learning_rate": "learning_rate", "max_grad_norm": "max_grad_norm", "temperature": "temperature",
          "top_k": "top_k", "kl_coef": "beta", "max_new_tokens": None, "seed": "seed"}
"""PPO hyperparameter -> TRL keyword, for every TRL optimiser (None: the keyword differs by trainer,
:func:`trl_args`). Besides these: the batch sizes and ``total_episodes`` (steps, above), ``lr_schedule``,
``bf16``, ``gradient_checkpointing``, ``lora``, ``log_with``; for GRPO and RLOO also ``cliprange`` (epsilon) and
``ppo_epochs`` (num_iterations); for GRPO ``entropy_coef``."""

LOG_COLUMNS = ["step", "episodes", "score", "penalized_score", "kl_coef", "policy_loss", "lr", "grad_norm",
               "response_length", "eos_share", "time"]
"""``train_log.csv`` of a TRL run, before TRL's own metrics (``trl/<name>``)."""

OWN_KEYS = frozenset({"loss", "learning_rate", "grad_norm", "epoch", "step"})
"""TRL's log keys not repeated as ``trl/<name>``: kept as ``policy_loss``, ``lr``, ``grad_norm``, or dropped."""

RUN_STATE = "run_state.json"
"""In each ``checkpoint-N/files/``: the train-log rows, the step and the config."""
REWARD_STATE = "reward_state.pt"
"""Beside it: a stateful reward's ``state_dict()`` (:mod:`rlhf_pipeline.ppo.hooks`), restored on resume."""


# ---- settings ----------------------------------------------------------------------------------------------

def updates_per_step(optimizer: str, cfg: PPOConfig, num_processes: int = 1) -> int:
    """Optimizer steps (TRL's ``global_step``) per PPO-sized step of ``batch_size`` rollouts."""
    per_process = cfg.batch_size // num_processes
    passes = cfg.ppo_epochs if optimizer in ("grpo", "rloo") else 1
    return per_process // cfg.mini_batch_size * passes


def trl_args(optimizer: str, cfg: PPOConfig, out_dir: Path, ckpt_dir: Path, num_processes: int = 1) -> dict[str, Any]:
    """The TRL config keywords of a run (see the module docstring); checkpoints from
    :func:`~rlhf_pipeline.trainer_checkpoints.trainer_args`."""
    from ..trainer_checkpoints import trainer_args

    u = updates_per_step(optimizer, cfg, num_processes)
    micro = cfg.mini_batch_size // cfg.grad_accum
    args: dict[str, Any] = {
        **trainer_args(ckpt_dir, out_dir, cfg.seed),
        "save_steps": cfg.checkpoint_interval * u,
        **{kw: getattr(cfg, name) for name, kw in SHARED.items() if kw},
        "max_steps": cfg.num_steps * u,
        "gradient_accumulation_steps": cfg.grad_accum,
        "lr_scheduler_type": cfg.lr_schedule,
        "warmup_steps": 0,
        "logging_steps": 1,
        "report_to": [] if cfg.log_with == "none" else [cfg.log_with],
        "bf16": cfg.bf16 and torch.cuda.is_available(),
        "disable_dropout": True,
        "save_only_model": False,
    }
    if cfg.gradient_checkpointing and torch.cuda.is_available():  # ignored on CPU, as PPO ignores it
        args["gradient_checkpointing"] = True
    if cfg.vllm.enabled:
        args.update(use_vllm=True, vllm_mode=cfg.vllm.mode, vllm_gpu_memory_utilization=cfg.vllm.gpu_memory_utilization,
                    vllm_tensor_parallel_size=cfg.vllm.tensor_parallel_size)
        if cfg.vllm.server_base_url:
            args["vllm_server_base_url"] = cfg.vllm.server_base_url
    if optimizer in ("grpo", "rloo"):
        own = getattr(cfg, optimizer)
        args.update(per_device_train_batch_size=micro, steps_per_generation=cfg.batch_size // num_processes // micro,
                    num_generations=own.num_generations, max_completion_length=cfg.max_new_tokens,
                    num_iterations=cfg.ppo_epochs, epsilon=cfg.cliprange,
                    mask_truncated_completions=own.mask_truncated_completions, log_completions=False)
        if optimizer == "grpo":
            args.update(scale_rewards=own.scale_rewards, loss_type=own.loss_type, epsilon_high=own.epsilon_high,
                        entropy_coef=cfg.entropy_coef)
        else:
            args.update(normalize_advantages=own.normalize_advantages, epsilon_high=None)
    else:
        args.update(per_device_train_batch_size=micro // 2, max_new_tokens=cfg.max_new_tokens,
                    loss_type=cfg.online_dpo.loss_type)
    return args


def trainer_classes(optimizer: str):
    """(config class, trainer class) of a TRL optimiser."""
    if optimizer == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        return GRPOConfig, GRPOTrainer
    if optimizer == "rloo":
        from trl import RLOOConfig, RLOOTrainer

        return RLOOConfig, RLOOTrainer
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    return OnlineDPOConfig, OnlineDPOTrainer


# ---- the reward function TRL calls -------------------------------------------------------------------------

class RunReward:
    """The run's reward as a TRL reward function: ``(prompts, completions, completion_ids, **kw) -> [float]``.

    Scores the completions TRL generated with the run's reward (the raw score; ``missing_eos_penalty`` in place
    of the score of a completion without EOS, as PPO does), and groups them into steps of ``batch_size`` rollouts
    (over all processes): each complete step goes to the rollout hooks (trajectories) and its means to the train
    log. ``calls`` keeps what each call got (prompts, completions, completion ids), for tests."""

    __name__ = "proxy_reward"  # TRL names the reward's metrics after it (trl/rewards/proxy_reward/mean)

    def __init__(self, reward_fn, tok, cfg: PPOConfig, acc, hooks, keep_calls: bool = False):
        self.reward_fn, self.tok, self.cfg, self.acc, self.hooks = reward_fn, tok, cfg, acc, hooks
        self.step = 0
        """Steps complete so far (set on resume)."""
        self.stats: dict[int, dict[str, float]] = {}
        self._pending: list[dict[str, Any]] = []
        self.calls: list[tuple[list[str], list[str], list[list[int]]]] | None = [] if keep_calls else None

    def __call__(self, prompts, completions, completion_ids, **kwargs) -> list[float]:
        prompts, completions = list(prompts), list(completions)
        ids = [[int(t) for t in c] for c in completion_ids]
        if self.calls is not None:
            self.calls.append((prompts, completions, ids))
        scored = score_batch(self.reward_fn, prompts, completions, training=True)
        score = scored.score.double().numpy()
        eos = self.tok.eos_token_id
        has_eos = np.array([bool(c) and c[-1] == eos for c in ids])
        penalty = self.cfg.missing_eos_penalty
        penalized = np.where(has_eos, score, penalty) if penalty is not None else score
        prompt_ids = self.tok(prompts)["input_ids"]
        for i in range(len(prompts)):
            self._pending.append({"prompt": prompts[i], "prompt_ids": prompt_ids[i], "response": completions[i],
                                  "response_ids": ids[i], "score": float(score[i]), "penalized": float(penalized[i]),
                                  "has_eos": bool(has_eos[i]),
                                  "terms": {k: float(v[i]) for k, v in scored.terms.items()},
                                  "extras": {k: v[i] for k, v in scored.extras.items()}})
        per_process = self.cfg.batch_size // self.acc.num_processes
        while len(self._pending) >= per_process:
            mine, self._pending = self._pending[:per_process], self._pending[per_process:]
            self._finish_step(mine)
        return [float(x) for x in penalized]

    def _finish_step(self, rows: list[dict[str, Any]]) -> None:
        from accelerate.utils import gather_object

        if self.acc.num_processes > 1:
            rows = gather_object(rows)
        self.step += 1
        self.stats[self.step] = {
            "score": float(np.mean([r["score"] for r in rows])),
            "penalized_score": float(np.mean([r["penalized"] for r in rows])),
            "response_length": float(np.mean([len(r["response_ids"]) for r in rows])),
            "eos_share": float(np.mean([r["has_eos"] for r in rows])),
            **{f"term_{k}": float(np.mean([r["terms"][k] for r in rows])) for k in rows[0]["terms"]},
        }
        if not self.acc.is_main_process or not self.hooks:
            return
        empty = [[] for _ in rows]
        rollout = Rollout(step=self.step, prompts=[r["prompt"] for r in rows],
                          prompt_ids=[r["prompt_ids"] for r in rows], responses=[r["response"] for r in rows],
                          response_ids=[r["response_ids"] for r in rows], logprobs=empty, ref_logprobs=empty,
                          values=empty, score=[r["score"] for r in rows],
                          penalized_score=[r["penalized"] for r in rows], kl=empty, rewards=empty,
                          terms={k: [r["terms"][k] for r in rows] for k in rows[0]["terms"]},
                          extras={k: [r["extras"][k] for r in rows] for k in rows[0]["extras"]})
        for hook in self.hooks:
            hook.on_rollout(rollout)


# ---- evaluation, train log and checkpoint files: one callback ---------------------------------------------

class _Evaluation(PolicySampling):
    """What :class:`PolicySampling` needs, around a TRL trainer's model: eval files exactly as PPO writes them."""

    def __init__(self, cfg, acc, tok, policy, ref_policy, reward_fn, out_dir, ckpt_dir):
        self.cfg, self.acc, self.tok, self.policy, self.ref_policy = cfg, acc, tok, policy, ref_policy
        self.reward_fn, self.out_dir, self.ckpt_dir = reward_fn, out_dir, ckpt_dir


def _run_callback(run: TRLRun):
    from transformers import TrainerCallback

    class RunFiles(TrainerCallback):
        """At the end of each step: its train-log row and, when due, its eval file; on each checkpoint save
        (before the completion marker): the eval files, rows and trajectory chunks under ``files/``."""

        def on_train_begin(self, args, state, control, **kwargs):
            run.step_started = time.time()  # a step's time: its generation and updates, not set-up or evals
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "train_runtime" not in logs:
                run.logs.append(dict(logs))
            if state.global_step % run.updates == 0 and state.global_step > run.logged_through:
                run.end_step(state.global_step // run.updates)
            return control

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                run.save_files(Path(args.output_dir) / f"checkpoint-{state.global_step}", state.global_step)
            run.step_started = time.time()  # the checkpoint's time is not the next step's
            return control

    return RunFiles()


class TRLRun:
    """One GRPO / RLOO / online-DPO run: the TRL trainer and the project's files around it (module docstring)."""

    def __init__(self, optimizer: str, cfg: PPOConfig, policy_dir: str, reward_fn, train_prompts: list[str],
                 eval_prompts: list[str], out_dir: Path, ckpt_dir: Path, run_info: dict[str, Any] | None,
                 keep_calls: bool = False):
        from accelerate import PartialState
        from datasets import Dataset
        from transformers import AutoModelForCausalLM

        from ..models.lm_head import use_blocked_lm_head

        if not train_prompts:
            raise PipelineError(f"{optimizer}: no training prompts")
        check_settings(optimizer, cfg, "ppo.hparams")
        self.optimizer, self.cfg, self.eval_prompts = optimizer, cfg, eval_prompts
        self.out_dir, self.ckpt_dir = out_dir, ckpt_dir
        self.tok = load_policy_tokenizer(policy_dir)
        try:
            policy = AutoModelForCausalLM.from_pretrained(policy_dir, dtype=torch.float32)
        except OSError as e:
            raise PipelineError(f"{optimizer} policy {policy_dir!r}: cannot be loaded ({e})") from None
        if not torch.cuda.is_available():  # PPO's CPU head: the same logits, faster
            use_blocked_lm_head(policy)
        disable_dropout(policy)
        ref_policy = None
        if not cfg.lora.enabled:  # the eval's reference (under LoRA: the policy with its adapters disabled)
            ref_policy = copy.deepcopy(policy).eval().requires_grad_(False)
        config_cls, trainer_cls = trainer_classes(optimizer)
        num_processes = PartialState().num_processes
        check_batch_split(cfg, num_processes)
        self.updates = updates_per_step(optimizer, cfg, num_processes)
        args = config_cls(**trl_args(optimizer, cfg, out_dir, ckpt_dir, num_processes))
        peft = {"peft_config": cfg.lora.peft_config("CAUSAL_LM")} if cfg.lora.enabled else {}
        self.trainer_tok = copy.deepcopy(self.tok)  # TRL's own: it may set the padding of its processing class
        self.logs: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []
        self.logged_through = 0
        self.step_started = time.time()
        hooks_info = {**(run_info or {}), "optimizer": optimizer}
        # the reward needs the accelerator, which the trainer makes: built first, bound after
        self.reward = RunReward(reward_fn, self.tok, cfg, None, [], keep_calls=keep_calls)
        dataset = Dataset.from_dict({"prompt": fit_prompts(self.tok, train_prompts, cfg.max_prompt_length)})
        kwargs = {"reward_processing_classes": [self.trainer_tok]} if optimizer == "online_dpo" else {}
        if cfg.log_with == "tensorboard":  # out_dir/tb, as PPO's (the Trainer's callback reads it from here)
            os.environ["TENSORBOARD_LOGGING_DIR"] = str(out_dir / "tb")
        self.trainer = trainer_cls(model=policy, reward_funcs=[self.reward], args=args, train_dataset=dataset,
                                   processing_class=self.trainer_tok, callbacks=[_run_callback(self)], **peft,
                                   **kwargs)
        acc = self.trainer.accelerator
        self.reward.acc = acc
        self.reward.hooks = trajectory_hooks(cfg, out_dir, hooks_info, acc.is_main_process)
        if ref_policy is not None:
            ref_policy = ref_policy.to(acc.device)
        self.evaluation = _Evaluation(cfg, acc, self.tok, self.trainer.model, ref_policy, reward_fn, out_dir, ckpt_dir)

    # ---- the steps -----------------------------------------------------------------------------------------
    def evaluate(self, step: int) -> None:
        """``eval/step{step:06d}.jsonl`` from the policy as it is now (DeepSpeed ZeRO-3: gathered for it)."""
        from trl.models import unwrap_model_for_generation

        trainer = self.trainer
        model = trainer.model_wrapped if trainer.model_wrapped is not None else trainer.model
        with unwrap_model_for_generation(model, trainer.accelerator) as unwrapped:
            self.evaluation.policy = unwrapped
            self.evaluation.evaluate(self.eval_prompts, step=step)

    def end_step(self, step: int) -> None:
        """Step ``step`` is complete: its train-log row (TRL's logs of its optimizer steps, the reward's means);
        its eval file when due."""
        cfg = self.cfg
        logs, self.logs = self.logs, []
        stats = self.reward.stats.pop(step, {})
        numeric = defaultdict(list)
        for entry in logs:
            for k, v in entry.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    numeric[k].append(float(v))
        row = {"step": step, "episodes": step * cfg.batch_size, "kl_coef": cfg.kl_coef,
               "policy_loss": _mean(numeric.get("loss")), "lr": (numeric.get("learning_rate") or [math.nan])[-1],
               "grad_norm": _mean(numeric.get("grad_norm")), "time": time.time() - self.step_started, **stats}
        row.update({f"trl/{k}": _mean(v) for k, v in sorted(numeric.items()) if k not in OWN_KEYS})
        self.logged_through = step * self.updates
        self.rows.append(row)
        if self.trainer.accelerator.is_main_process:
            write_log(self.out_dir / "train_log.csv", self.rows, LOG_COLUMNS)
        if step % cfg.eval_interval == 0 or step == cfg.num_steps:
            self.evaluate(step)
        self.step_started = time.time()

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def save_files(self, path: Path, global_step: int) -> None:
        """The project's files in TRL's ``checkpoint-N`` (before its completion marker)."""
        step = global_step // self.updates
        for hook in self.reward.hooks:
            hook.on_checkpoint(step)
        files = path / "files"
        copy_output(self.out_dir / "eval", files / "eval")
        for hook in self.reward.hooks:
            for name, src in hook.checkpoint_files().items():
                copy_output(src, files / name, link=getattr(hook, "files_immutable", False))
        if hasattr(self.reward.reward_fn, "state_dict"):  # a stateful reward (e.g. novelty histories), as PPO saves it
            torch.save(self.reward.reward_fn.state_dict(), files / REWARD_STATE)
        state = {"step": step, "rows": self.rows, "config": self.cfg.to_dict(), "optimizer": self.optimizer}
        with atomic_file(files / RUN_STATE) as tmp:  # as they are (NaN included): not write_json's cleaned copy
            Path(tmp).write_text(json.dumps(state))

    def resume_files(self, path: Path | None) -> None:
        """Before training: the eval files, rows and trajectories as checkpoint ``path`` saved them (None: a fresh
        run, whose step-0 eval is written here)."""
        main = self.trainer.accelerator.is_main_process
        if main:
            for old in (self.out_dir / "eval").glob("step*.jsonl"):
                old.unlink()
        if path is None:
            if main:
                for hook in self.reward.hooks:
                    hook.on_resume(0)
            self.evaluate(0)  # every process: it samples its share of the prompts
            return
        files = path / "files"
        state = json.loads((files / RUN_STATE).read_text())
        check_same_config(self.cfg, state["config"], path)
        step = int(state["step"])
        self.rows, self.reward.step, self.logged_through = state["rows"], step, step * self.updates
        if hasattr(self.reward.reward_fn, "load_state_dict") and (files / REWARD_STATE).is_file():
            self.reward.reward_fn.load_state_dict(torch.load(files / REWARD_STATE, weights_only=False))
        if main:
            if (files / "eval").is_dir():
                copy_output(files / "eval", self.out_dir / "eval")
            for hook in self.reward.hooks:
                restore_hook_files(hook, path)
                hook.on_resume(step)
            write_log(self.out_dir / "train_log.csv", self.rows, LOG_COLUMNS)

    def train(self) -> dict[str, Any]:
        """Train (resuming from the newest valid checkpoint), then write ``model/``; the run's summary."""
        from ..trainer_checkpoints import latest_valid_checkpoint, remove_checkpoints, train_resumable

        resume = latest_valid_checkpoint(self.ckpt_dir) if self.ckpt_dir else None
        self.resume_files(resume)
        train_resumable(self.trainer, self.ckpt_dir, self.optimizer, stop_every=self.updates)
        acc = self.trainer.accelerator
        model_dir = self.out_dir / "model"
        if acc.is_main_process:
            final = acc.unwrap_model(self.trainer.model)
            if self.cfg.lora.enabled:
                final = final.merge_and_unload()
            with atomic_dir(model_dir) as tmp:
                final.save_pretrained(tmp)
                self.tok.save_pretrained(tmp)
            remove_checkpoints(self.ckpt_dir)
        acc.wait_for_everyone()
        return {"steps": self.cfg.num_steps, "last": self.rows[-1] if self.rows else {}, "model_dir": str(model_dir),
                "optimizer": self.optimizer,
                "eval_files": sorted(str(p) for p in (self.out_dir / "eval").glob("step*.jsonl"))}


def train_trl(optimizer: str, cfg: PPOConfig, policy_dir: str, reward_fn, train_prompts: list[str],
              eval_prompts: list[str], out_dir, ckpt_dir, run_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the policy in ``policy_dir`` against ``reward_fn`` with TRL's ``optimizer`` (grpo, rloo, online_dpo);
    the files of a PPO run (module docstring). Returns a summary: steps, last train-log row, eval files, model."""
    if optimizer not in TRL_OPTIMIZERS:
        raise PipelineError(f"optimizer {optimizer!r}: not one of TRL's {TRL_OPTIMIZERS}")
    return TRLRun(optimizer, cfg, policy_dir, reward_fn, train_prompts, eval_prompts, Path(out_dir),
                  Path(ckpt_dir) if ckpt_dir else None, run_info).train()


def fit_prompts(tok, prompts: list[str], max_prompt_length: int) -> list[str]:
    """Prompts as TRL will tokenize them (it does not truncate): those longer than ``max_prompt_length`` tokens
    keep the text of their last tokens, as PPO's left truncation keeps them."""
    out, cut = [], 0
    for p, ids in zip(prompts, tok(prompts, add_special_tokens=False)["input_ids"]):
        n_special = len(tok(p)["input_ids"]) - len(ids)
        keep = max_prompt_length - n_special
        if len(ids) > keep:
            p, cut = tok.decode(ids[-keep:], skip_special_tokens=True), cut + 1
        out.append(p)
    if cut:
        log.warning("%d of %d training prompts are longer than max_prompt_length=%d tokens: their last tokens are "
                    "kept", cut, len(prompts), max_prompt_length)
    return out


def _mean(values: list[float] | None) -> float:
    return float(np.mean(values)) if values else math.nan
