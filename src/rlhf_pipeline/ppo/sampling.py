"""Sampling from a policy and evaluating it, shared by every optimiser (the project's PPO and TRL's GRPO, RLOO and
online DPO: :mod:`rlhf_pipeline.ppo.trl_optim`), so eval files and their KL to the reference are made by one piece
of code whatever trained the policy.

:class:`PolicySampling` is a mixin: it needs ``cfg`` (a :class:`~rlhf_pipeline.ppo.config.PPOConfig`), ``acc`` (the
``Accelerator``), ``tok``, ``policy``, ``ref_policy`` (None under LoRA: the policy with its adapters disabled),
``reward_fn``, ``out_dir`` and ``ckpt_dir``. ``eval/step{N:06d}.jsonl``: one response per eval prompt, sampled with
a seed of (``seed``, ``N``) only, its proxy scores and ``kl``, the sum over its tokens of ``logp - ref_logp``
(``logits / temperature``, k1).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch

from ..io import write_jsonl
from .guards import check_eval_finite
from .hooks import score_detail
from .kl import kl_k1
from .rollout import (
    SamplingNoise,
    generate_responses,
    logprobs_of,
    response_logits,
    sampling_noise_supported,
    to_rows,
    tokenize_prompts,
    truncate_after_eos,
)


class PolicySampling:
    """Sampling, the policy's and the reference's logprobs of sampled responses, and evaluation (see the module
    docstring for what it needs of its class)."""

    # ---- evaluation -----------------------------------------------------------------------------
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
                check_eval_finite(self.ckpt_dir, step, batch, texts, members, reward, variance, kl)
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

    # ---- sampling and forward passes (rollout and evaluation) ---------------------------------------
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
