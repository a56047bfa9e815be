"""The math of PPO for language models: masked statistics, shaped rewards, GAE, clipped losses.

Shapes: B = rollouts, T = response tokens. ``mask`` is 1 on real response tokens (up to and
including the first EOS) and 0 on padding after it. All functions are pure.
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is 1."""
    if dim is None:
        return (x * mask).sum() / mask.sum()
    return (x * mask).sum(dim) / mask.sum(dim)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of ``x`` over the masked entries (Bessel-corrected when ``unbiased``)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        var = var * n / (n - 1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True,
                  eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries; with ``shift_mean=False`` the mean is kept.

    Entries outside the mask are returned as 0.
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask


def per_token_rewards(scores: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                      mask: torch.Tensor, kl_coef: float, entropy_coef: float = 0.0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Shaped rewards: ``-kl_coef * (logp - ref_logp)`` per token, plus ``entropy_coef * -logp`` per
    token (the entropy bonus of curiosity-driven red-teaming; 0 = off), plus the score at the last token.

    Args:
        scores: [B] one scalar per sequence (after any missing-EOS penalty).
        logprobs, ref_logprobs: [B, T] logprobs of the sampled tokens under policy and reference.
        mask: [B, T] response mask (at least one token per row).
    Returns:
        (rewards [B, T], kl_penalty [B, T]); both are 0 outside the mask.
    """
    kl_penalty = -kl_coef * (logprobs - ref_logprobs) * mask
    last = mask.sum(1).long() - 1  # index of the last real token (the EOS, if any)
    rewards = kl_penalty.clone()
    if entropy_coef:
        rewards = rewards - entropy_coef * logprobs * mask
    rewards[torch.arange(len(scores)), last] += scores
    return rewards, kl_penalty


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
                lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over response tokens.

    delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lam * A_{t+1}; returns = A + V.
    Values and rewards outside the mask count as 0, so the episode ends at the last real token.
    Returns (advantages [B, T], returns [B, T]), both 0 outside the mask.
    """
    rewards, values = rewards * mask, values * mask
    T = rewards.shape[1]
    last_gae = torch.zeros_like(rewards[:, 0])
    advantages_reversed = []
    for t in reversed(range(T)):
        next_values = values[:, t + 1] if t < T - 1 else torch.zeros_like(values[:, 0])
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        last_gae = delta + gamma * lam * last_gae
        advantages_reversed.append(last_gae)
    advantages = torch.stack(advantages_reversed[::-1], dim=1) * mask
    returns = (advantages + values) * mask
    return advantages, returns


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, cliprange: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate objective (as a loss to minimise).

    Returns (loss, stats) with stats ``clipfrac`` (fraction of tokens where the clipped term is
    active), ``approxkl`` (0.5 * mean (logp - old_logp)^2) and ``ratio`` (mean ratio).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    pg_losses = -advantages * ratio
    pg_losses_clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(pg_losses, pg_losses_clipped), mask)
    stats = {
        "clipfrac": masked_mean((pg_losses_clipped > pg_losses).float(), mask),
        "approxkl": 0.5 * masked_mean(log_ratio ** 2, mask),
        "ratio": masked_mean(ratio, mask),
    }
    return loss, {k: v.detach() for k, v in stats.items()}


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, cliprange_value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss 0.5 * mean max((V - R)^2, (V_clipped - R)^2).

    V_clipped = old_V + clamp(V - old_V, -cliprange_value, cliprange_value).
    Returns (loss, vf_clipfrac).
    """
    values_clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    losses = (values - returns) ** 2
    losses_clipped = (values_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(losses, losses_clipped), mask)
    clipfrac = masked_mean((losses_clipped > losses).float(), mask)
    return loss, clipfrac.detach()


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution given by ``logits`` [..., V] -> [...]."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def logprobs_and_entropy(logits: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log softmax(logits)[token], entropy of softmax(logits))``: [..., V], [...] -> [...], [...].

    The numbers of ``log_softmax(logits).gather(tokens)`` (differentiable) and :func:`entropy_from_logits`
    (a statistic: no gradient), from one log-softmax and one exp, with the gradient written in one pass from
    the saved probabilities, ``d logp[token] / d logits = onehot(token) - softmax`` (autograd's composition
    zero-fills a [..., V] gather gradient, then runs the log-softmax backward over it: on CPU with a 30k
    vocabulary those passes were a sixth of a PPO update).
    """
    logprob, entropy = _LogprobEntropy.apply(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))
    return logprob.view(tokens.shape), entropy.view(tokens.shape)


def row_blocks(x: torch.Tensor, block_bytes: int | None = None):
    """Slices of rows of the 2-D ``x``, about ``block_bytes`` each: row-wise work on a [N, V] logits tensor
    done block by block keeps its temporaries small (each row's numbers are the same). By default 1 MiB on CPU
    (a block stays in cache) and 256 MiB elsewhere (an accelerator wants few, large kernels)."""
    if block_bytes is None:
        block_bytes = 2**20 if x.device.type == "cpu" else 2**28
    step = max(1, block_bytes // max(1, x.shape[-1] * x.element_size()))
    return [slice(i, i + step) for i in range(0, x.shape[0], step)]


class _LogprobEntropy(torch.autograd.Function):
    """See :func:`logprobs_and_entropy`: logits [N, V], tokens [N] -> (logprob [N], entropy [N]). Row blocks
    (:func:`row_blocks`): only the probabilities (saved for the backward) are a second [N, V] tensor."""

    @staticmethod
    def forward(ctx, logits, tokens):
        probs = torch.empty_like(logits)
        logprob, entropy = logits.new_empty(len(tokens)), logits.new_empty(len(tokens))
        for rows in row_blocks(logits):
            logp = torch.log_softmax(logits[rows], dim=-1)
            torch.exp(logp, out=probs[rows])
            # -sum p log p per row: the product is one block's (in cache); a batched bmm of one-row matrices, the
            # other way without a [N, V] product, ran 15x slower on CPU (python bench/entropy_rows.py)
            entropy[rows] = -(probs[rows] * logp).sum(-1)
            logprob[rows] = logp.gather(-1, tokens[rows].unsqueeze(-1)).squeeze(-1)
        ctx.save_for_backward(probs, tokens)
        ctx.mark_non_differentiable(entropy)
        return logprob, entropy

    @staticmethod
    def backward(ctx, grad_logprob, _grad_entropy):
        probs, tokens = ctx.saved_tensors
        g = grad_logprob.unsqueeze(-1)
        return probs.mul(-g).scatter_add_(-1, tokens.unsqueeze(-1), g), None
