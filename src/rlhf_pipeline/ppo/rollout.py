"""Rollouts: sample responses with ``generate``, cut them at EOS, score them, and run the forward
passes PPO needs (logprobs, values) on prompt + response.

Shapes: B = rollouts, P = prompt tokens (left-padded), T = ``max_new_tokens`` response tokens
(right-padded with the pad token after the first EOS).
"""

from __future__ import annotations

import torch


def tokenize_prompts(tokenizer, prompts: list[str], max_prompt_length: int):
    """Left-padded prompt ids and mask [B, P]; long prompts keep their last tokens."""
    enc = tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                    max_length=max_prompt_length, return_token_type_ids=False)
    return enc["input_ids"], enc["attention_mask"]


class SampledLogprobs:
    """A ``generate`` logits processor that records each sampled token's ``log softmax(logits / temperature)``.

    ``generate`` runs custom processors before its warpers (temperature, top-k), so this one sees the
    model's logits as they come; at step t it reads the token step t - 1 sampled (the last column of
    ``input_ids``) off the previous step's log-softmax, and :meth:`finish` reads the last one off the
    returned sequences. It keeps one [B, V] row block, not one per step (``output_logits`` would keep
    all T of them). Returns the scores unchanged."""

    def __init__(self, temperature: float):
        self.temperature = temperature
        self.previous: torch.Tensor | None = None  # [B, V] log-softmax of the last step's logits
        self.values: list[torch.Tensor] = []      # [B] per generated token

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self._take(input_ids[:, -1])
        self.previous = torch.log_softmax(scale_logits(scores, self.temperature), -1)
        return scores

    def _take(self, tokens: torch.Tensor) -> None:
        if self.previous is not None:
            self.values.append(self.previous.gather(1, tokens[:, None]).squeeze(1))
            self.previous = None

    def finish(self, responses: torch.Tensor) -> torch.Tensor | None:
        """Logprobs [B, n] of ``responses`` [B, n] (the generated tokens); None if the processor did not
        see every step (a ``generate`` that skips logits processors)."""
        if responses.shape[1]:
            self._take(responses[:, -1])
        if len(self.values) != responses.shape[1]:
            return None
        return torch.stack(self.values, 1) if self.values else responses.new_zeros(responses.shape, dtype=torch.float32)


@torch.no_grad()
def generate_responses(model, query_ids: torch.Tensor, query_mask: torch.Tensor, *,
                       max_new_tokens: int, temperature: float, top_k: int, pad_token_id: int,
                       eos_token_id: int, return_logprobs: bool = False):
    """Sample responses [B, T] (KV cache on), padded with ``pad_token_id`` to ``max_new_tokens``.

    With ``return_logprobs``: ``(responses, logprobs)``, where logprobs [B, T] are the sampled tokens'
    ``log softmax(logits / temperature)`` taken during sampling by :class:`SampledLogprobs` from the model's
    own logits (before top-k), the quantity :func:`response_logits` + :func:`logprobs_of` recompute with a
    second forward pass, equal to it up to floating-point rounding (cached versus full attention).
    Positions after generation stopped get 0. ``logprobs`` is None if ``generate`` did not run the
    processor at every step; callers then run the forward pass.
    """
    from transformers import LogitsProcessorList

    recorder = SampledLogprobs(temperature) if return_logprobs else None
    out = model.generate(
        input_ids=query_ids, attention_mask=query_mask, do_sample=True, temperature=temperature,
        top_k=top_k, top_p=1.0, max_new_tokens=max_new_tokens, min_new_tokens=0, use_cache=True,
        pad_token_id=pad_token_id, eos_token_id=eos_token_id,
        logits_processor=LogitsProcessorList([recorder] if recorder else []),
    )
    responses = out[:, query_ids.shape[1]:]
    pad = max_new_tokens - responses.shape[1]  # generate stops early once every row has ended
    padded = torch.nn.functional.pad(responses, (0, pad), value=pad_token_id)
    if recorder is None:
        return padded
    logprobs = recorder.finish(responses)
    return padded, None if logprobs is None else torch.nn.functional.pad(logprobs, (0, pad), value=0.0)


def scale_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature`` in float32 (no copy at temperature 1: x / 1.0 == x exactly)."""
    logits = logits.float()
    return logits if temperature == 1.0 else logits / temperature


def truncate_after_eos(responses: torch.Tensor, eos_token_id: int, pad_token_id: int):
    """Everything after the first EOS becomes padding.

    Returns (responses [B, T], mask [B, T] with 1 up to and including the first EOS,
    has_eos [B] bool). Rows without EOS keep all T tokens.
    """
    is_eos = responses == eos_token_id
    has_eos = is_eos.any(1)
    T = responses.shape[1]
    first_eos = torch.where(has_eos, is_eos.int().argmax(1), torch.full_like(has_eos, T - 1, dtype=torch.long))
    mask = (torch.arange(T, device=responses.device)[None, :] <= first_eos[:, None]).long()
    return responses.masked_fill(mask == 0, pad_token_id), mask, has_eos


def apply_missing_eos_penalty(scores: torch.Tensor, has_eos: torch.Tensor,
                              penalty: float | None) -> torch.Tensor:
    """Replace the score of responses without EOS by ``penalty`` (no-op when ``penalty`` is None)."""
    if penalty is None:
        return scores
    return torch.where(has_eos, scores, torch.full_like(scores, penalty))


def _join(query_ids, query_mask, responses, response_mask):
    input_ids = torch.cat([query_ids, responses], 1)
    attention_mask = torch.cat([query_mask, response_mask], 1)
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)  # same positions as generate()
    return input_ids, attention_mask, position_ids


def response_logits(model, query_ids, query_mask, responses, response_mask,
                    temperature: float) -> torch.Tensor:
    """Temperature-scaled logits [N, V] that predicted each real response token (``response_mask`` 1, N of
    them, in row-major order: ``responses[response_mask.bool()]``), as in sampling. Padding after the first
    EOS gets no logits: the LM head (the largest matmul of a small model) only runs where they are used.
    :func:`to_rows` puts per-token results back into [B, T]."""
    input_ids, attention_mask, position_ids = _join(query_ids, query_mask, responses, response_mask)
    keep = torch.zeros_like(input_ids, dtype=torch.bool)  # position i's logits predict token i + 1
    keep[:, query_ids.shape[1] - 1:-1] = response_mask.bool()
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   use_cache=False, logits_to_keep=keep).logits
    if logits.ndim == 3:  # a model that computed every position's logits
        logits = logits[keep]
    return scale_logits(logits, temperature)


def to_rows(values: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Per-token values [N] (the order of :func:`response_logits`) as [B, T], 0 on padding (differentiable)."""
    rows, cols = response_mask.bool().nonzero(as_tuple=True)
    return values.new_zeros(response_mask.shape).index_put((rows, cols), values)


def logprobs_of(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] per position: [..., V], [...] -> [...]."""
    return torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def response_values(value_model, query_ids, query_mask, responses, response_mask) -> torch.Tensor:
    """Values [B, T] of the states before each response token."""
    input_ids, attention_mask, position_ids = _join(query_ids, query_mask, responses, response_mask)
    values = value_model(input_ids, attention_mask, position_ids)
    return values[:, query_ids.shape[1] - 1:-1].float()
