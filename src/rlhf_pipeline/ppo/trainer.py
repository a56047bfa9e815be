"""PPO for causal LMs, one readable loop (after lm-human-preferences and Huang et al. 2024).

Each step, in order:
  1. take ``batch_size`` prompts; sample responses with ``generate`` (left-padded prompts, KV cache) in
     chunks of ``mini_batch_size``; everything after the first EOS becomes padding. On CPU a worker thread
     draws sampling's random numbers ahead (:class:`~rlhf_pipeline.ppo.rollout.SamplingNoise`: the same
     samples);
  2. score the decoded responses with ``reward_fn`` in one call (its terms and extras, state and the
     rollout hooks: :mod:`rlhf_pipeline.ppo.hooks`); a response without EOS gets
     ``missing_eos_penalty`` instead, if set;
  3. logprobs of the sampled tokens under the policy and the frozen reference (``logits /
     temperature``, as in sampling) and values; per-token rewards ``-beta * (logp - ref_logp)``
     with the score added at the last response token. The policy's come from the sampling pass's own
     logits (``logprobs_from_sampling``); on CPU that worker also runs each chunk's reference and value
     forwards while the next chunk is sampled (no RNG there: the same numbers);
  4. GAE advantages (whitened) and returns;
  5. ``ppo_epochs`` passes over shuffled mini-batches: clipped policy loss + vf_coef * clipped value
     loss, gradient accumulation over micro-batches, gradient-norm clipping, one AdamW step each;
  6. the LR schedule and the KL controller step once; statistics are logged.

Where the time goes: :class:`PhaseTimer` (``train_ppo``'s summary, ``bench/ppo_throughput.py``).

Files: ``out_dir/eval/step{N:06d}.jsonl`` (step 0, every ``eval_interval`` steps, final step),
``out_dir/train_log.csv``, ``out_dir/tb/`` (TensorBoard), ``out_dir/trajectories/`` (every rollout,
Parquet: :mod:`rlhf_pipeline.ppo.trajectories`), ``out_dir/model/`` (at the end);
resumable checkpoints in ``ckpt_dir`` (outside the declared outputs).

Non-finite values abort the run with a :class:`PipelineError` naming the step; the last good checkpoint
is kept and the offending batch is saved next to it: a NaN/inf score, reward or loss in a training step
(``ckpt_dir/nan_batch_step{N}.jsonl``) or a NaN/inf proxy reward, member score, ensemble variance or KL
at an eval step (``ckpt_dir/nan_eval_batch_step{N}.jsonl``; no eval file is written for that step).

LoRA: the reference model is the policy with its adapters disabled (no second copy in memory);
the value backbone gets its own adapters, its head is trained in full.
"""

from __future__ import annotations

import copy
import csv
import importlib.util
import logging
import math
import shutil
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import PipelineError
from ..io import atomic_dir, atomic_file, write_json, write_jsonl
from ..models.lm_head import use_blocked_lm_head
from ..runtime import keep_freed_memory
from ..trainer_checkpoints import Preempted, stop_on_signals
from . import checkpoint as ckpt
from .config import PPOConfig
from .hooks import Rollout, score_batch
from .hooks import rows_of as _rows_of
from .kl import kl_k1, kl_k3, make_kl_controller
from .losses import (
    compute_gae,
    logprobs_and_entropy,
    masked_mean,
    masked_whiten,
    per_token_rewards,
    policy_loss,
    value_loss,
)
from .rollout import (
    SamplingNoise,
    apply_missing_eos_penalty,
    generate_responses,
    logprobs_of,
    response_logits,
    response_values,
    sampling_noise_supported,
    to_rows,
    tokenize_prompts,
    truncate_after_eos,
)
from .trajectories import RUN_FILE as TRAJECTORY_RUN_FILE
from .trajectories import TrajectoryLog
from .value import ValueModel, load_value_backbone

log = logging.getLogger(__name__)

LOG_COLUMNS = ["step", "episodes", "score", "rlhf_reward", "kl", "kl_k3", "kl_coef", "entropy",
               "policy_loss", "value_loss", "approxkl", "clipfrac", "vf_clipfrac", "lr",
               "grad_norm", "response_length", "time"]
# Keys that may change between a checkpoint and its resumption (they do not change training).
RESUMABLE_CHANGES = {"eval_interval", "eval_batch_size", "checkpoint_interval", "log_with", "trajectory_chunk_steps",
                     "logprobs_from_sampling"}
# Where a run's wall time goes (train_ppo's summary "phase_seconds"; bench/ppo_throughput.py prints the shares).
PHASES = ("generation", "policy_logprobs", "ref_and_value", "scoring", "update", "logging", "eval", "checkpoint")


class PhaseTimer:
    """Wall seconds per phase (:data:`PHASES`): ``with timer("update"): ...``. On GPU each phase ends with a
    synchronisation, so asynchronous kernels count where they ran."""

    def __init__(self):
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._sync = torch.cuda.synchronize if torch.cuda.is_available() else None

    @contextmanager
    def __call__(self, phase: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self._sync is not None:
                self._sync()
            self.seconds[phase] += time.perf_counter() - t0


def train_ppo(cfg: PPOConfig, policy_dir: str, reward_fn, train_prompts: list[str],
              eval_prompts: list[str], out_dir, ckpt_dir, hooks=(),
              run_info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the policy in ``policy_dir`` with PPO against ``reward_fn``; see the module docstring.

    ``reward_fn(prompts, responses) -> Tensor[B]``, optionally with ``score_batch`` (terms and
    extras), ``state_dict``/``load_state_dict`` (checkpointed) and ``score_detail`` (ensemble members,
    used for eval files); ``hooks``: rollout hooks. Both are described in :mod:`rlhf_pipeline.ppo.hooks`.
    With ``cfg.trajectories`` every rollout is logged to ``out_dir/trajectories/``
    (:mod:`rlhf_pipeline.ppo.trajectories`), with ``run_info`` (e.g. the RM members) in its run file.
    Returns a summary: steps, final train-log row, eval files, model directory.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    out_dir, ckpt_dir = Path(out_dir), Path(ckpt_dir)
    keep_freed_memory()
    if not train_prompts:
        raise PipelineError("PPO: no training prompts")
    if cfg.log_with == "wandb" and importlib.util.find_spec("wandb") is None:
        raise PipelineError("config ppo.log_with: 'wandb' needs the wandb package (pip install wandb)")
    on_gpu = torch.cuda.is_available()
    accelerator = Accelerator(mixed_precision="bf16" if cfg.bf16 and on_gpu else "no",
                              log_with=None if cfg.log_with == "none" else cfg.log_with,
                              project_dir=str(out_dir))
    if cfg.batch_size % accelerator.num_processes:
        raise PipelineError(f"config ppo.batch_size: {cfg.batch_size} is not divisible by the "
                            f"{accelerator.num_processes} processes")
    local_batch = cfg.batch_size // accelerator.num_processes
    if local_batch % cfg.mini_batch_size:
        raise PipelineError(f"config ppo.mini_batch_size: {cfg.mini_batch_size} does not divide the "
                            f"per-process batch {local_batch}")
    set_seed(cfg.seed)

    # ---- models ----------------------------------------------------------------------------
    tokenizer = load_policy_tokenizer(policy_dir)
    policy, ref_policy, value_model = build_models(cfg, policy_dir, use_gpu_features=on_gpu)
    params = [p for m in (policy, value_model) for p in m.parameters() if p.requires_grad]
    # fused: one kernel per parameter instead of a pass per AdamW operation (the same update; the embedding
    # matrices' updates were ~9% of a CPU step)
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, eps=1e-5, fused=True)
    scheduler = make_scheduler(cfg, optimizer)
    policy, value_model, optimizer = accelerator.prepare(policy, value_model, optimizer)
    if ref_policy is not None:
        ref_policy = ref_policy.to(accelerator.device)
    kl_ctl = make_kl_controller(cfg.kl_coef, cfg.adaptive_kl, cfg.kl_target, cfg.kl_horizon)
    hooks = [*trajectory_hooks(cfg, out_dir, run_info, accelerator.is_main_process), *hooks]
    run = _Run(cfg, accelerator, tokenizer, policy, ref_policy, value_model, optimizer, params,
               reward_fn, out_dir, ckpt_dir, hooks)

    # ---- resume or start -------------------------------------------------------------------
    if accelerator.is_main_process:
        for old in (out_dir / "eval").glob("step*.jsonl"):
            old.unlink()
    rows: list[dict[str, Any]] = []
    start = ckpt.load_latest_checkpoint(ckpt_dir)
    if start is not None:
        _check_same_config(cfg, start["trainer_state"]["config"], start["dir"])
        _load_trainable(accelerator.unwrap_model(policy), start["policy"])
        _load_trainable(accelerator.unwrap_model(value_model), start["value"])
        optimizer.load_state_dict(start["optimizer"])
        scheduler.load_state_dict(start["scheduler"])
        kl_ctl.load_state_dict(start["trainer_state"]["kl_controller"])
        if hasattr(reward_fn, "load_state_dict") and "reward_state" in start["trainer_state"]:
            reward_fn.load_state_dict(start["trainer_state"]["reward_state"])
        rows = start["trainer_state"]["log_rows"]
        if accelerator.is_main_process and (start["dir"] / "files" / "eval").is_dir():
            shutil.copytree(start["dir"] / "files" / "eval", out_dir / "eval", dirs_exist_ok=True)
        ckpt.set_rng_state(start["rng"][accelerator.process_index])
        first_step = start["step"] + 1
        log.info("resuming PPO from %s", start["dir"])
    else:
        first_step = 1
    if accelerator.is_main_process:
        for hook in run.hooks:
            if start is not None:  # the hook's outputs as they were at the checkpoint
                restore_hook_files(hook, start["dir"])
            hook.on_resume(first_step - 1)
    timer = run.timer
    if start is None:
        with timer("eval"):
            run.evaluate(eval_prompts, step=0)
    if cfg.log_with != "none":
        accelerator.init_trackers("tb", config={k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                                for k, v in cfg.to_dict().items()})
    if accelerator.is_main_process:
        _write_log(out_dir / "train_log.csv", rows)

    # ---- the loop ------------------------------------------------------------------------------
    n_steps = cfg.num_steps
    with stop_on_signals() as stop:
        for step in tqdm(range(first_step, n_steps + 1), initial=first_step - 1, total=n_steps,
                         desc="PPO", disable=not accelerator.is_local_main_process):
            t0 = time.time()
            indices = prompt_indices(step, cfg.batch_size, len(train_prompts), cfg.seed)
            local = indices[accelerator.process_index::accelerator.num_processes]
            stats = run.step(step, [train_prompts[i] for i in local], kl_ctl.value)
            stats["lr"] = scheduler.get_last_lr()[0]
            scheduler.step()
            kl_ctl.update(stats["kl"], cfg.batch_size)
            row = {"step": step, "episodes": step * cfg.batch_size, **stats, "time": time.time() - t0}
            rows.append({k: row[k] for k in LOG_COLUMNS + sorted(k for k in row if k.startswith("term_"))})
            with timer("logging"):
                if accelerator.is_main_process:
                    _write_log(out_dir / "train_log.csv", rows)
                if cfg.log_with != "none":
                    accelerator.log({f"ppo/{k}": v for k, v in row.items() if k != "step"}, step=step)
            if step % cfg.eval_interval == 0 or step == n_steps:
                with timer("eval"):
                    run.evaluate(eval_prompts, step=step)
            if step % cfg.checkpoint_interval == 0 or step == n_steps or stop.signum:
                with timer("checkpoint"):
                    run.save_checkpoint(step, scheduler, kl_ctl, rows)
            if stop.signum:
                accelerator.end_training()
                msg = (f"PPO: got signal {stop.signum}; checkpointed step {step} in {ckpt_dir}; "
                       f"exiting with {128 + stop.signum} (a rerun resumes from there)")
                log.warning(msg)
                raise Preempted(stop.signum, msg)

    # ---- final policy ----------------------------------------------------------------------
    accelerator.end_training()
    model_dir = out_dir / "model"
    if accelerator.is_main_process:
        final = accelerator.unwrap_model(policy)
        if cfg.lora.enabled:
            final = final.merge_and_unload()
        with atomic_dir(model_dir) as tmp:
            final.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    accelerator.wait_for_everyone()
    log.info("PPO wall time by phase (s): %s", {k: round(v, 2) for k, v in timer.seconds.items()})
    return {"steps": n_steps, "last": rows[-1] if rows else {}, "model_dir": str(model_dir),
            "eval_files": sorted(str(p) for p in (out_dir / "eval").glob("step*.jsonl")),
            "phase_seconds": dict(timer.seconds)}


class _Run:
    """The models and helpers one PPO run shares between its steps, evals and checkpoints."""

    def __init__(self, cfg, accelerator, tokenizer, policy, ref_policy, value_model, optimizer,
                 params, reward_fn, out_dir, ckpt_dir, hooks=()):
        self.cfg, self.acc, self.tok = cfg, accelerator, tokenizer
        self.policy, self.ref_policy, self.value_model = policy, ref_policy, value_model
        self.optimizer, self.params = optimizer, params
        self.reward_fn, self.out_dir, self.ckpt_dir = reward_fn, out_dir, ckpt_dir
        self.hooks = list(hooks)
        self.timer = PhaseTimer()

    # ---- rollout helpers --------------------------------------------------------------------
    def _sample(self, query_ids, query_mask, noise=None):
        """Sampled responses, truncated after the first EOS: (responses, mask, has_eos, logprobs), where
        logprobs [B, T] are the sampled tokens' logprobs from the sampling pass (0 after the first EOS), or
        None without ``cfg.logprobs_from_sampling`` (or where ``generate`` gives no logits): then
        :meth:`_policy_logprobs` computes them. ``noise``: from :meth:`_sampling_noise`."""
        cfg, tok = self.cfg, self.tok
        policy = self.acc.unwrap_model(self.policy)
        policy.eval()
        with self.acc.autocast():
            out = generate_responses(policy, query_ids, query_mask, max_new_tokens=cfg.max_new_tokens,
                                     temperature=cfg.temperature, top_k=cfg.top_k, pad_token_id=tok.pad_token_id,
                                     eos_token_id=tok.eos_token_id, return_logprobs=cfg.logprobs_from_sampling,
                                     noise=noise)
        responses, logprobs = out if cfg.logprobs_from_sampling else (out, None)
        responses, mask, has_eos = truncate_after_eos(responses, tok.eos_token_id, tok.pad_token_id)
        if logprobs is not None:
            logprobs = logprobs * mask  # 0 on padding: the forward pass's padding logprobs were never used
        return responses, mask, has_eos, logprobs

    @torch.no_grad()
    def _ref_logprobs(self, query_ids, query_mask, responses, mask):
        if self.ref_policy is not None:
            model, ctx = self.ref_policy, nullcontext()
        else:  # LoRA: the reference is the base model with the adapters switched off
            model = self.acc.unwrap_model(self.policy)
            ctx = model.disable_adapter()
        with ctx, self.acc.autocast():
            logits = response_logits(model, query_ids, query_mask, responses, mask, self.cfg.temperature)
        return to_rows(logprobs_of(logits, responses[mask.bool()]), mask)

    @torch.no_grad()
    def _policy_logprobs(self, query_ids, query_mask, responses, mask):
        with self.acc.autocast():
            logits = response_logits(self.acc.unwrap_model(self.policy), query_ids, query_mask,
                                     responses, mask, self.cfg.temperature)
        return to_rows(logprobs_of(logits, responses[mask.bool()]), mask)

    def _ref_and_values(self, query_ids, query_mask, responses, mask):
        """(reference logprobs, values) of one rollout chunk."""
        with torch.no_grad(), self.acc.autocast():
            values = response_values(self.acc.unwrap_model(self.value_model), query_ids, query_mask, responses, mask)
        return self._ref_logprobs(query_ids, query_mask, responses, mask), values

    @contextmanager
    def _sampling_noise(self, max_draws: int):
        """On CPU with two or more intra-op threads (where :func:`sampling_noise_supported`), yield a
        :class:`SamplingNoise` whose worker draws sampling's random numbers ahead on a core taken from the
        intra-op threads while it runs; else yield None (``generate`` samples). The same samples and RNG
        state either way. Around one rollout or eval batch (``max_draws``: its most sampling steps); nothing
        inside may draw from the default generator."""
        threads = torch.get_num_threads()
        if threads < 2 or not sampling_noise_supported(self.acc.unwrap_model(self.policy), self.acc.device):
            yield None
            return
        torch.set_num_threads(threads - 1)
        try:
            with SamplingNoise(max_draws) as noise:
                yield noise
        finally:
            torch.set_num_threads(threads)

    # ---- one PPO step -----------------------------------------------------------------------
    def step(self, step: int, prompts: list[str], kl_coef: float) -> dict[str, float]:
        cfg, acc, dev = self.cfg, self.acc, self.acc.device
        B, mb = len(prompts), cfg.mini_batch_size
        micro = mb // cfg.grad_accum

        # 1. rollout (in chunks of a mini-batch; the prompts share one left padding)
        query_ids, query_mask = (t.to(dev) for t in tokenize_prompts(self.tok, prompts, cfg.max_prompt_length))
        timer = self.timer
        chunks, forwards = [], []
        n_chunks = -(-B // mb)
        with self._sampling_noise(max_draws=n_chunks * cfg.max_new_tokens) as noise:
            # the reference and value forwards (no RNG) run on the noise worker's core while it is ahead, except
            # under LoRA, whose reference is the policy with its adapters switched off
            aside = noise is not None and self.ref_policy is not None
            for i in range(0, B, mb):
                q, qm = query_ids[i:i + mb], query_mask[i:i + mb]
                with timer("generation"):
                    responses, mask, has_eos, logprobs = self._sample(q, qm, noise)
                if logprobs is None:
                    with timer("policy_logprobs"):
                        logprobs = self._policy_logprobs(q, qm, responses, mask)
                chunks.append((responses, mask, has_eos, logprobs))
                args = (q, qm, responses, mask)
                if aside:
                    forwards.append(noise.run_aside(self._ref_and_values, *args))
                else:
                    with timer("ref_and_value"):
                        forwards.append(self._ref_and_values(*args))
            if aside:
                with timer("ref_and_value"):  # what is still to run aside: this thread takes its share
                    noise.help_aside()
                    forwards = [f.result() for f in forwards]
        responses, mask, has_eos, logprobs = (torch.cat(c) for c in zip(*chunks))
        ref_logprobs, values = (torch.cat(c) for c in zip(*forwards))
        mask_f = mask.float()

        # 2. scores (one reward_fn call), missing-EOS penalty
        with timer("scoring"):
            texts = self.tok.batch_decode(responses, skip_special_tokens=True)
            scored = score_batch(self.reward_fn, prompts, texts, training=True)
        raw_scores = scored.score
        self._check_finite(step, "score", raw_scores, prompts, texts, raw_scores)
        scores = apply_missing_eos_penalty(raw_scores, has_eos.cpu(), cfg.missing_eos_penalty).to(dev)

        # 3. per-token rewards: KL penalty (and entropy bonus) on every token, score on the last one
        kl = kl_k1(logprobs, ref_logprobs) * mask_f                     # [B, T]
        rewards, kl_penalty = per_token_rewards(scores, logprobs, ref_logprobs, mask_f, kl_coef,
                                                cfg.entropy_coef)
        self._check_finite(step, "reward", rewards, prompts, texts, raw_scores)
        if self.hooks:
            with timer("logging"):
                self._emit_rollout(step, prompts, query_ids, query_mask, texts, responses, mask, logprobs,
                                   ref_logprobs, values, raw_scores, scores, kl, rewards, scored)
        if cfg.whiten_rewards:
            rewards = masked_whiten(rewards, mask_f, shift_mean=False)

        with timer("update"):
            # 4. advantages and returns
            advantages, returns = compute_gae(rewards, values, mask_f, cfg.gamma, cfg.lam)
            advantages = masked_whiten(advantages, mask_f)

            # 5. PPO epochs over shuffled mini-batches
            self.policy.train()
            self.value_model.train()
            optimizer = self.optimizer
            acc_stats: dict[str, list[float]] = {k: [] for k in
                                                 ("policy_loss", "value_loss", "approxkl", "clipfrac",
                                                  "vf_clipfrac", "entropy", "grad_norm")}
            for _epoch in range(cfg.ppo_epochs):
                order = torch.randperm(B).to(dev)
                for start in range(0, B, mb):
                    for mstart in range(start, start + mb, micro):
                        idx = order[mstart:mstart + micro]
                        q, qm, r, m = query_ids[idx], query_mask[idx], responses[idx], mask_f[idx]
                        with acc.autocast():
                            logits = response_logits(self.policy, q, qm, r, mask[idx], cfg.temperature)
                            new_values = response_values(self.value_model, q, qm, r, mask[idx])
                        new_logprobs, entropy = (to_rows(x, m) for x in
                                                 logprobs_and_entropy(logits, r[mask[idx].bool()]))
                        del logits  # [tokens, vocabulary], not needed by the backward: freed before it runs
                        pg_loss, pg_stats = policy_loss(new_logprobs, logprobs[idx], advantages[idx], m,
                                                        cfg.cliprange)
                        vf_loss, vf_clipfrac = value_loss(new_values, values[idx], returns[idx], m,
                                                          cfg.cliprange_value)
                        loss = pg_loss + cfg.vf_coef * vf_loss
                        if not torch.isfinite(loss):
                            self._save_bad_batch(step, prompts, texts, raw_scores)
                            raise PipelineError(f"PPO step {step}: non-finite loss (policy {pg_loss.item()}, "
                                                f"value {vf_loss.item()}); batch saved to {self._bad_path(step)}")
                        acc.backward(loss / cfg.grad_accum)
                        acc_stats["entropy"].append(masked_mean(entropy, m).item())
                        acc_stats["policy_loss"].append(pg_loss.item())
                        acc_stats["value_loss"].append(vf_loss.item())
                        acc_stats["approxkl"].append(pg_stats["approxkl"].item())
                        acc_stats["clipfrac"].append(pg_stats["clipfrac"].item())
                        acc_stats["vf_clipfrac"].append(vf_clipfrac.item())
                    grad_norm = acc.clip_grad_norm_(self.params,
                                                    cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf)
                    acc_stats["grad_norm"].append(float(grad_norm))
                    optimizer.step()
                    optimizer.zero_grad()

        # 6. statistics (means over this process's rollouts, then over processes)
        stats = {k: float(np.mean(v)) for k, v in acc_stats.items()}
        stats.update({f"term_{k}": float(np.mean(v)) for k, v in scored.terms.items()})
        stats.update(
            score=scores.mean().item(),
            rlhf_reward=(scores + kl_penalty.sum(1)).mean().item(),
            kl=kl.sum(1).mean().item(),
            kl_k3=(kl_k3(logprobs, ref_logprobs) * mask_f).sum(1).mean().item(),
            kl_coef=kl_coef,
            response_length=mask_f.sum(1).mean().item(),
        )
        if acc.num_processes > 1:
            keys = sorted(stats)
            reduced = acc.reduce(torch.tensor([stats[k] for k in keys], device=dev), "mean")
            stats = dict(zip(keys, reduced.tolist()))
        return stats

    # ---- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, prompts: list[str], step: int) -> None:
        """Sample one response per eval prompt (seeded by step) and write eval/step{N:06d}.jsonl."""
        from accelerate.utils import gather_object

        cfg, acc = self.cfg, self.acc
        mine = list(range(len(prompts)))[acc.process_index::acc.num_processes]
        rows = []
        devices = [acc.device] if acc.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # eval never moves the training RNG
            torch.manual_seed(cfg.seed * 1_000_003 + step)
            for i in range(0, len(mine), cfg.eval_batch_size):
                idx = mine[i:i + cfg.eval_batch_size]
                batch = [prompts[j] for j in idx]
                q, qm = (t.to(acc.device) for t in tokenize_prompts(self.tok, batch, cfg.max_prompt_length))
                with self._sampling_noise(max_draws=cfg.max_new_tokens) as noise:
                    responses, mask, _, logprobs = self._sample(q, qm, noise)
                if logprobs is None:
                    logprobs = self._policy_logprobs(q, qm, responses, mask)
                kl = (kl_k1(logprobs,
                            self._ref_logprobs(q, qm, responses, mask)) * mask).sum(1)
                texts = self.tok.batch_decode(responses, skip_special_tokens=True)
                members, reward, variance, extra = score_detail(self.reward_fn, batch, texts)
                self._check_eval_finite(step, batch, texts, members, reward, variance, kl)
                for b, j in enumerate(idx):
                    rows.append({"index": j, "step": step, "prompt": batch[b], "response": texts[b],
                                 "proxy_scores": members[:, b].tolist(), "proxy_reward": float(reward[b]),
                                 "ensemble_variance": float(variance[b]), "kl": float(kl[b]),
                                 "response_length": int(mask[b].sum()),
                                 **{k: v[b] for k, v in extra.items()}})
        if acc.num_processes > 1:
            rows = gather_object(rows)
        if acc.is_main_process:
            rows = [{k: v for k, v in r.items() if k != "index"} for r in sorted(rows, key=lambda r: r["index"])]
            write_jsonl(self.out_dir / "eval" / f"step{step:06d}.jsonl", rows)

    # ---- checkpoints and bad batches ----------------------------------------------------------
    def save_checkpoint(self, step, scheduler, kl_ctl, rows) -> None:
        from accelerate.utils import gather_object

        rng = gather_object([ckpt.rng_state()]) if self.acc.num_processes > 1 else [ckpt.rng_state()]
        if self.acc.is_main_process:
            objects = {
                "policy": _trainable_state(self.acc.unwrap_model(self.policy)),
                "value": _trainable_state(self.acc.unwrap_model(self.value_model)),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "trainer_state": {"kl_controller": kl_ctl.state_dict(), "log_rows": rows,
                                  "config": self.cfg.to_dict(),
                                  **({"reward_state": self.reward_fn.state_dict()}
                                     if hasattr(self.reward_fn, "state_dict") else {})},
                "rng": rng,
            }
            for hook in self.hooks:  # durable before the checkpoint that a resume would start from
                hook.on_checkpoint(step)
            files, links = {"eval": self.out_dir / "eval"}, {}
            for hook in self.hooks:
                (links if getattr(hook, "files_immutable", False) else files).update(
                    hook.checkpoint_files() if hasattr(hook, "checkpoint_files") else {})
            ckpt.save_checkpoint(self.ckpt_dir, step, objects, files=files, links=links)
        self.acc.wait_for_everyone()

    def _emit_rollout(self, step, prompts, query_ids, query_mask, texts, responses, mask, logprobs, ref_logprobs,
                      values, raw_scores, scores, kl, rewards, scored) -> None:
        """Hand this step's rollouts (gathered over processes) to the rollout hooks."""
        from accelerate.utils import gather_object

        rollout = Rollout(
            step=step, prompts=list(prompts), prompt_ids=[q[m.bool()].tolist() for q, m in zip(query_ids.cpu(),
                                                                                             query_mask.cpu())],
            responses=list(texts), response_ids=[r[m.bool()].tolist() for r, m in zip(responses.cpu(), mask.cpu())],
            logprobs=_rows_of(logprobs, mask), ref_logprobs=_rows_of(ref_logprobs, mask), values=_rows_of(values, mask),
            score=raw_scores.tolist(), penalized_score=scores.cpu().tolist(), kl=_rows_of(kl, mask),
            rewards=_rows_of(rewards, mask), terms={k: v.tolist() for k, v in scored.terms.items()},
            extras=dict(scored.extras))
        if self.acc.num_processes > 1:
            parts = gather_object([rollout])
            rollout = Rollout(step=step, **{f: [x for p in parts for x in getattr(p, f)]
                                            for f in ("prompts", "prompt_ids", "responses", "response_ids",
                                                      "logprobs", "ref_logprobs", "values", "score",
                                                      "penalized_score", "kl", "rewards")},
                              terms={k: [x for p in parts for x in p.terms[k]] for k in rollout.terms},
                              extras={k: [x for p in parts for x in p.extras[k]] for k in rollout.extras})
        if self.acc.is_main_process:
            for hook in self.hooks:
                hook.on_rollout(rollout)

    def _bad_path(self, step: int, kind: str = "batch") -> Path:
        """``nan_batch_step{N}.jsonl`` (a training batch) or ``nan_eval_batch_step{N}.jsonl`` next to the
        checkpoints."""
        return self.ckpt_dir / f"nan_{kind}_step{step}.jsonl"

    def _save_bad_batch(self, step, prompts, texts, scores, kind: str = "batch", extra=None) -> Path:
        """Save the batch that went non-finite: one row per sample with prompt, response, score and the
        ``extra`` per-sample columns (``{name: tensor [B] or [B, K]}``). NaN/inf are written as the strings
        "nan"/"inf"/"-inf", so the file stays valid JSON. Returns its path."""
        columns = {name: t.tolist() for name, t in (extra or {}).items()}
        rows = [{"prompt": p, "response": r, "score": _json_number(s),
                 **{name: _json_number(col[b]) for name, col in columns.items()}}
                for b, (p, r, s) in enumerate(zip(prompts, texts, scores.tolist()))]
        path = self._bad_path(step, kind)
        write_jsonl(path, rows)
        return path

    def _check_finite(self, step, name, tensor, prompts, texts, scores) -> None:
        if not torch.isfinite(tensor).all():
            self._save_bad_batch(step, prompts, texts, scores)
            raise PipelineError(f"PPO step {step}: non-finite {name}; batch saved to "
                                f"{self._bad_path(step)}; last good checkpoint kept in {self.ckpt_dir}")

    def _check_eval_finite(self, step, prompts, texts, members, reward, variance, kl) -> None:
        """Abort like :meth:`_check_finite` if an eval batch has a NaN/inf proxy reward, member score,
        ensemble variance or KL. Called before any eval row is kept, so no eval file of ``step`` is written
        (and no NaN reaches the JSONL writer); the eval batch is saved as ``nan_eval_batch_step{N}.jsonl``."""
        kl = kl.float().cpu()
        fields = {"proxy reward": reward, "proxy member scores": members, "ensemble variance": variance, "KL": kl}
        bad = [name for name, t in fields.items() if not torch.isfinite(t).all()]
        if not bad:
            return
        finite = (torch.isfinite(reward) & torch.isfinite(members).all(0) & torch.isfinite(variance)
                  & torch.isfinite(kl))
        path = self._save_bad_batch(step, prompts, texts, reward, kind="eval_batch",
                                    extra={"proxy_scores": members.T, "ensemble_variance": variance, "kl": kl})
        raise PipelineError(f"PPO eval at step {step}: non-finite {', '.join(bad)} in {int((~finite).sum())} of "
                            f"{len(prompts)} samples of an eval batch; eval batch saved to {path}; no eval file "
                            f"written for step {step}; last good checkpoint kept in {self.ckpt_dir}")


# ---- pieces with no state -----------------------------------------------------------------------

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


def restore_hook_files(hook, ckpt_path: Path) -> None:
    """Put back a hook's ``checkpoint_files`` as the checkpoint ``ckpt_path`` saved them (files logged after
    the checkpoint are dropped). Hooks without such files, or a checkpoint without them, are left alone."""
    for name, path in (hook.checkpoint_files() if hasattr(hook, "checkpoint_files") else {}).items():
        saved = ckpt_path / "files" / name
        if not saved.exists():
            continue
        path = Path(path)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        ckpt.copy_output(saved, path, link=getattr(hook, "files_immutable", False))


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


def prompt_indices(step: int, batch_size: int, n: int, seed: int) -> list[int]:
    """Prompt indices of (1-based) ``step``: epochs over seeded permutations of the ``n`` prompts.

    Depends only on its arguments, so a resumed run sees the same prompts.
    """
    perms: dict[int, np.ndarray] = {}
    out = []
    for i in range((step - 1) * batch_size, step * batch_size):
        epoch, j = divmod(i, n)
        if epoch not in perms:
            perms[epoch] = np.random.default_rng([seed, epoch]).permutation(n)
        out.append(int(perms[epoch][j]))
    return out


def score_detail(reward_fn, prompts: list[str], responses: list[str]):
    """Evaluation scores: (members [K, B], reward [B], variance [B], extra) from ``score_detail``
    (an ensemble), else from ``score_batch(training=False)`` (one member; ``extra``: its terms and
    extras per sample, ``term_<name>`` / ``<name>``), else from one call."""
    if hasattr(reward_fn, "score_detail"):
        d = reward_fn.score_detail(prompts, responses)
        members = torch.as_tensor(d["members"]).float().cpu()
        return (members, torch.as_tensor(d["reward"]).float().cpu(), torch.as_tensor(d["variance"]).float().cpu(),
                {})
    scored = score_batch(reward_fn, prompts, responses, training=False)
    reward = scored.score
    extra = {f"term_{k}": [float(x) for x in v] for k, v in scored.terms.items()}
    extra.update(scored.extras)
    return reward[None, :], reward, torch.zeros_like(reward), extra


def _json_number(x):
    """``x`` (a float or a nested list of floats) with NaN/inf as the strings "nan", "inf", "-inf"."""
    if isinstance(x, list):
        return [_json_number(v) for v in x]
    return x if math.isfinite(x) else str(x)


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _load_trainable(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    expected = {n for n, p in model.named_parameters() if p.requires_grad}
    if set(state) != expected:
        raise PipelineError(f"checkpoint does not match the model: {len(set(state) ^ expected)} "
                            "parameter names differ")
    model.load_state_dict(state, strict=False)


def _check_same_config(cfg: PPOConfig, saved: dict[str, Any], where: Path) -> None:
    now = cfg.to_dict()
    changed = sorted(k for k in set(now) | set(saved)
                     if k not in RESUMABLE_CHANGES and now.get(k) != saved.get(k))
    if changed:
        raise PipelineError(f"{where}: checkpoint was made with a different ppo config (keys {changed}); "
                            f"restore those values or delete {where.parent} to start afresh")


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    """``train_log.csv``: :data:`LOG_COLUMNS`, then the reward's ``term_<name>`` means, if any."""
    terms = sorted({k for r in rows for k in r if k not in LOG_COLUMNS})
    with atomic_file(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS + terms)
        writer.writeheader()
        writer.writerows(rows)
