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


@torch.no_grad()
def generate_responses(model, query_ids: torch.Tensor, query_mask: torch.Tensor, *,
                       max_new_tokens: int, temperature: float, top_k: int, pad_token_id: int,
                       eos_token_id: int) -> torch.Tensor:
    """Sample responses [B, T] (KV cache on), padded with ``pad_token_id`` to ``max_new_tokens``."""
    out = model.generate(
        input_ids=query_ids, attention_mask=query_mask, do_sample=True, temperature=temperature,
        top_k=top_k, top_p=1.0, max_new_tokens=max_new_tokens, min_new_tokens=0, use_cache=True,
        pad_token_id=pad_token_id, eos_token_id=eos_token_id,
    )
    responses = out[:, query_ids.shape[1]:]
    pad = max_new_tokens - responses.shape[1]  # generate stops early once every row has ended
    return torch.nn.functional.pad(responses, (0, pad), value=pad_token_id)


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
    """Temperature-scaled logits [B, T, V] that predicted each response token (as in sampling)."""
    input_ids, attention_mask, position_ids = _join(query_ids, query_mask, responses, response_mask)
    T = responses.shape[1]
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   use_cache=False, logits_to_keep=T + 1).logits
    return logits[:, :-1].float() / temperature


def logprobs_of(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] per position: [B, T, V], [B, T] -> [B, T]."""
    return torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def response_values(value_model, query_ids, query_mask, responses, response_mask) -> torch.Tensor:
    """Values [B, T] of the states before each response token."""
    input_ids, attention_mask, position_ids = _join(query_ids, query_mask, responses, response_mask)
    values = value_model(input_ids, attention_mask, position_ids)
    return values[:, query_ids.shape[1] - 1:-1].float()
