"""PPO for causal LMs, one readable loop (after lm-human-preferences and Huang et al. 2024).

Each step (:meth:`_Run.step`), in order:
  1. ``rollout``: take ``batch_size`` prompts; sample responses with ``generate`` (left-padded prompts, KV
     cache) in chunks of ``mini_batch_size``; everything after the first EOS becomes padding. Logprobs of the
     sampled tokens under the policy and the frozen reference (``logits / temperature``, as in sampling) and
     the values. The policy's come from the sampling pass's own logits (``logprobs_from_sampling``). On CPU a
     worker thread draws sampling's random numbers ahead (:class:`~rlhf_pipeline.ppo.rollout.SamplingNoise`:
     the same samples) and runs each chunk's reference and value forwards while the next chunk is sampled (no
     RNG there: the same numbers);
  2. ``score``: score the decoded responses with ``reward_fn`` in one call (its terms and extras, state and
     the rollout hooks: :mod:`rlhf_pipeline.ppo.hooks`); a response without EOS gets ``missing_eos_penalty``
     instead, if set;
  3. ``kl_penalised_rewards``: per-token rewards ``-beta * (logp - ref_logp)`` with the score added at the
     last response token (the rollout hooks see them here);
  4. ``advantages_and_returns``: GAE advantages (whitened) and returns;
  5. ``ppo_epochs``: ``ppo_epochs`` passes over shuffled mini-batches: clipped policy loss + vf_coef * clipped
     value loss, gradient accumulation over micro-batches, gradient-norm clipping, one AdamW step each;
  6. ``statistics``; the LR schedule and the KL controller step once; the statistics are logged.

This module holds the loop (:func:`train_ppo`) and those steps (:class:`_Run`, in that order), then evaluation.
Around them: set-up, train log, preemption and final model in :mod:`~rlhf_pipeline.ppo.run`; checkpoints and
resumption in :mod:`~rlhf_pipeline.ppo.checkpoint`; the non-finite guards in :mod:`~rlhf_pipeline.ppo.guards`
(a NaN/inf score, reward, loss or eval value aborts the run, the batch saved next to the last good checkpoint);
where the time goes in :mod:`~rlhf_pipeline.ppo.timing`.

Files: ``out_dir/eval/step{N:06d}.jsonl`` (step 0, every ``eval_interval`` steps, final step),
``out_dir/train_log.csv``, ``out_dir/tb/`` (TensorBoard), ``out_dir/trajectories/`` (every rollout,
Parquet: :mod:`rlhf_pipeline.ppo.trajectories`), ``out_dir/model/`` (at the end);
resumable checkpoints in ``ckpt_dir`` (outside the declared outputs).

LoRA: the reference model is the policy with its adapters disabled (no second copy in memory);
the value backbone gets its own adapters, its head is trained in full.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..trainer_checkpoints import stop_on_signals
from .checkpoint import resume_run, save_run
from .config import PPOConfig
from .guards import check_finite, check_loss
from .hooks import Rollout, ScoredBatch, score_batch
from .hooks import rows_of as _rows_of
from .kl import kl_k1, kl_k3
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
    apply_missing_eos_penalty,
    response_logits,
    response_values,
    to_rows,
    tokenize_prompts,
)
from .run import RunState
from .sampling import PolicySampling


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
    run = _Run.set_up(cfg, policy_dir, reward_fn, train_prompts, Path(out_dir), Path(ckpt_dir), hooks, run_info)
    resumed = resume_run(run)  # the step of the checkpoint it resumed from; None: a fresh run
    first_step = 1 if resumed is None else resumed + 1
    if resumed is None:
        with run.timer("eval"):
            run.evaluate(eval_prompts, step=0)
    run.open_logs()
    with stop_on_signals() as stop:
        for step in tqdm(range(first_step, cfg.num_steps + 1), initial=first_step - 1, total=cfg.num_steps,
                         desc="PPO", disable=not run.acc.is_local_main_process):
            t0 = time.time()
            prompts = [train_prompts[i] for i in prompt_indices(step, cfg.batch_size, len(train_prompts), cfg.seed)]
            stats = run.step(step, prompts[run.acc.process_index::run.acc.num_processes])  # this process's share
            run.log_step(step, stats, time.time() - t0)
            if step % cfg.eval_interval == 0 or step == cfg.num_steps:
                with run.timer("eval"):
                    run.evaluate(eval_prompts, step=step)
            if step % cfg.checkpoint_interval == 0 or step == cfg.num_steps or stop.signum:
                with run.timer("checkpoint"):
                    save_run(run, step)
            if stop.signum:
                raise run.preempted(step, stop.signum)
    return run.finish()


class _Run(RunState, PolicySampling):
    """The PPO algorithm on a set-up run (models, optimizer, schedules: :class:`~rlhf_pipeline.ppo.run.RunState`):
    one step, its six parts in order; sampling and evaluation: :class:`~rlhf_pipeline.ppo.sampling.PolicySampling`."""

    def step(self, step: int, prompts: list[str]) -> dict[str, float]:
        """One PPO step on this process's ``prompts``; returns its statistics (means over the processes)."""
        kl_coef = self.kl_ctl.value
        batch = self.rollout(prompts)                                              # 1. generate, logprobs, values
        self.score(step, batch)                                                    # 2. reward model scores
        rewards, kl, kl_penalty = self.kl_penalised_rewards(step, batch, kl_coef)  # 3. KL-penalised rewards
        with self.timer("update"):
            advantages, returns = self.advantages_and_returns(batch, rewards)      # 4. GAE
            update_stats = self.ppo_epochs(step, batch, advantages, returns)       # 5. clipped PPO updates
        stats = self.statistics(batch, kl, kl_penalty, kl_coef, update_stats)      # 6. statistics;
        stats["lr"] = self.scheduler.get_last_lr()[0]                              #    the LR schedule and
        self.scheduler.step()
        self.kl_ctl.update(stats["kl"], self.cfg.batch_size)                       #    the KL controller step
        return stats

    # ---- 1. rollout ---------------------------------------------------------------------------
    def rollout(self, prompts: list[str]) -> _Batch:
        """Sample one response per prompt, in chunks of a mini-batch (the prompts share one left padding), with
        the sampled tokens' logprobs under the policy and the reference, and the values."""
        cfg, timer = self.cfg, self.timer
        query_ids, query_mask = (t.to(self.acc.device)
                                 for t in tokenize_prompts(self.tok, prompts, cfg.max_prompt_length))
        B, mb = len(prompts), cfg.mini_batch_size
        chunks, forwards = [], []
        with self._sampling_noise(max_draws=-(-B // mb) * cfg.max_new_tokens) as noise:
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
        return _Batch(prompts, query_ids, query_mask, responses, mask, has_eos, logprobs, ref_logprobs, values,
                      mask.float())

    # ---- 2. score -----------------------------------------------------------------------------
    def score(self, step: int, b: _Batch) -> None:
        """Score the decoded responses with ``reward_fn`` (one call); a response without EOS gets
        ``missing_eos_penalty`` instead, if set. Fills ``b.texts``, ``b.scored`` and ``b.scores``."""
        with self.timer("scoring"):
            b.texts = self.tok.batch_decode(b.responses, skip_special_tokens=True)
            b.scored = score_batch(self.reward_fn, b.prompts, b.texts, training=True)
        check_finite(self.ckpt_dir, step, "score", b.scored.score, b.prompts, b.texts, b.scored.score)
        b.scores = apply_missing_eos_penalty(b.scored.score, b.has_eos.cpu(), self.cfg.missing_eos_penalty
                                             ).to(self.acc.device)

    # ---- 3. KL-penalised rewards ------------------------------------------------------------------
    def kl_penalised_rewards(self, step: int, b: _Batch, kl_coef: float):
        """Per-token rewards: the KL penalty ``-kl_coef * (logp - ref_logp)`` (and the entropy bonus) on every
        token, the score added on the last one; handed to the rollout hooks, then whitened if
        ``cfg.whiten_rewards``. Returns (rewards [B, T], k1 KL [B, T], KL penalty [B, T])."""
        kl = kl_k1(b.logprobs, b.ref_logprobs) * b.mask_f
        rewards, kl_penalty = per_token_rewards(b.scores, b.logprobs, b.ref_logprobs, b.mask_f, kl_coef,
                                                self.cfg.entropy_coef)
        check_finite(self.ckpt_dir, step, "reward", rewards, b.prompts, b.texts, b.scored.score)
        if self.hooks:
            with self.timer("logging"):
                self._emit_rollout(step, b, kl, rewards)
        if self.cfg.whiten_rewards:
            rewards = masked_whiten(rewards, b.mask_f, shift_mean=False)
        return rewards, kl, kl_penalty

    def _emit_rollout(self, step: int, b: _Batch, kl, rewards) -> None:
        """Hand this step's rollouts (gathered over processes) to the rollout hooks."""
        from accelerate.utils import gather_object

        mask = b.mask
        rollout = Rollout(
            step=step, prompts=list(b.prompts),
            prompt_ids=[q[m.bool()].tolist() for q, m in zip(b.query_ids.cpu(), b.query_mask.cpu())],
            responses=list(b.texts), response_ids=[r[m.bool()].tolist() for r, m in zip(b.responses.cpu(), mask.cpu())],
            logprobs=_rows_of(b.logprobs, mask), ref_logprobs=_rows_of(b.ref_logprobs, mask),
            values=_rows_of(b.values, mask), score=b.scored.score.tolist(), penalized_score=b.scores.cpu().tolist(),
            kl=_rows_of(kl, mask), rewards=_rows_of(rewards, mask),
            terms={k: v.tolist() for k, v in b.scored.terms.items()}, extras=dict(b.scored.extras))
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

    # ---- 4. advantages and returns ------------------------------------------------------------
    def advantages_and_returns(self, b: _Batch, rewards):
        """GAE advantages (whitened) and returns."""
        advantages, returns = compute_gae(rewards, b.values, b.mask_f, self.cfg.gamma, self.cfg.lam)
        return masked_whiten(advantages, b.mask_f), returns

    # ---- 5. PPO epochs ------------------------------------------------------------------------
    def ppo_epochs(self, step: int, b: _Batch, advantages, returns) -> dict[str, list[float]]:
        """``ppo_epochs`` passes over shuffled mini-batches, one AdamW step each (gradients accumulated over
        ``grad_accum`` micro-batches, their norm clipped). Returns each statistic per micro-batch (grad_norm: per
        mini-batch)."""
        cfg, acc = self.cfg, self.acc
        B, mb = len(b.prompts), cfg.mini_batch_size
        micro = mb // cfg.grad_accum
        self.policy.train()
        self.value_model.train()
        stats: dict[str, list[float]] = {k: [] for k in ("policy_loss", "value_loss", "approxkl", "clipfrac",
                                                         "vf_clipfrac", "entropy", "grad_norm")}
        for _epoch in range(cfg.ppo_epochs):
            order = torch.randperm(B).to(acc.device)
            for start in range(0, B, mb):
                for mstart in range(start, start + mb, micro):
                    self._backward_micro_batch(step, b, order[mstart:mstart + micro], advantages, returns, stats)
                grad_norm = acc.clip_grad_norm_(self.params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf)
                stats["grad_norm"].append(float(grad_norm))
                self.optimizer.step()
                self.optimizer.zero_grad()
        return stats

    def _backward_micro_batch(self, step: int, b: _Batch, idx, advantages, returns, stats) -> None:
        """The clipped policy loss + vf_coef * the clipped value loss of the rollouts ``idx`` under the current
        policy and value model; its backward (divided by ``grad_accum``); its statistics appended to ``stats``."""
        cfg, acc = self.cfg, self.acc
        q, qm, r, m = b.query_ids[idx], b.query_mask[idx], b.responses[idx], b.mask_f[idx]
        with acc.autocast():
            logits = response_logits(self.policy, q, qm, r, b.mask[idx], cfg.temperature)
            new_values = response_values(self.value_model, q, qm, r, b.mask[idx])
        new_logprobs, entropy = (to_rows(x, m) for x in logprobs_and_entropy(logits, r[b.mask[idx].bool()]))
        del logits  # [tokens, vocabulary], not needed by the backward: freed before it runs
        pg_loss, pg_stats = policy_loss(new_logprobs, b.logprobs[idx], advantages[idx], m, cfg.cliprange)
        vf_loss, vf_clipfrac = value_loss(new_values, b.values[idx], returns[idx], m, cfg.cliprange_value)
        loss = pg_loss + cfg.vf_coef * vf_loss
        check_loss(self.ckpt_dir, step, loss, pg_loss, vf_loss, b.prompts, b.texts, b.scored.score)
        acc.backward(loss / cfg.grad_accum)
        stats["entropy"].append(masked_mean(entropy, m).item())
        stats["policy_loss"].append(pg_loss.item())
        stats["value_loss"].append(vf_loss.item())
        stats["approxkl"].append(pg_stats["approxkl"].item())
        stats["clipfrac"].append(pg_stats["clipfrac"].item())
        stats["vf_clipfrac"].append(vf_clipfrac.item())

    # ---- 6. statistics ------------------------------------------------------------------------
    def statistics(self, b: _Batch, kl, kl_penalty, kl_coef: float, update: dict[str, list[float]]
                   ) -> dict[str, float]:
        """Means over this process's rollouts and updates, then over the processes."""
        mask_f = b.mask_f
        stats = {k: float(np.mean(v)) for k, v in update.items()}
        stats.update({f"term_{k}": float(np.mean(v)) for k, v in b.scored.terms.items()})
        stats.update(
            score=b.scores.mean().item(),
            rlhf_reward=(b.scores + kl_penalty.sum(1)).mean().item(),
            kl=kl.sum(1).mean().item(),
            kl_k3=(kl_k3(b.logprobs, b.ref_logprobs) * mask_f).sum(1).mean().item(),
            kl_coef=kl_coef,
            response_length=mask_f.sum(1).mean().item(),
        )
        if self.acc.num_processes > 1:
            keys = sorted(stats)
            reduced = self.acc.reduce(torch.tensor([stats[k] for k in keys], device=self.acc.device), "mean")
            stats = dict(zip(keys, reduced.tolist()))
        return stats

    # ---- forward passes of the rollout (sampling and evaluation: PolicySampling) ---------------------
    def _ref_and_values(self, query_ids, query_mask, responses, mask):
        """(reference logprobs, values) of one rollout chunk."""
        with torch.no_grad(), self.acc.autocast():
            values = response_values(self.acc.unwrap_model(self.value_model), query_ids, query_mask, responses, mask)
        return self._ref_logprobs(query_ids, query_mask, responses, mask), values


@dataclass(eq=False)
class _Batch:
    """One step's rollouts on this process: tensors [B, ...] on the device (``mask_f``: ``mask`` as floats); the
    last three fields are filled in by the scoring (step 2)."""

    prompts: list[str]
    query_ids: torch.Tensor
    query_mask: torch.Tensor
    responses: torch.Tensor
    mask: torch.Tensor
    has_eos: torch.Tensor
    logprobs: torch.Tensor
    ref_logprobs: torch.Tensor
    values: torch.Tensor
    mask_f: torch.Tensor
    texts: list[str] | None = None
    """The decoded responses."""
    scored: ScoredBatch | None = None
    """The reward's answer: the raw score (float32 CPU [B]), terms and extras."""
    scores: torch.Tensor | None = None
    """The score after the missing-EOS penalty, on the device: what the last token's reward gets."""


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
