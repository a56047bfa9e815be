"""Batched sampling from a causal LM (KV cache, left padding), shared by the stages that sample."""

from __future__ import annotations

from collections.abc import Sequence

from tqdm.auto import tqdm


def sample_responses(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int,
                     temperature: float, top_k: int, batch_size: int, seed: int,
                     desc: str = "sampling") -> list[str]:
    """One sampled response per prompt (repeat prompts for several), decoded without specials.

    Sampling is seeded once (``torch.manual_seed(seed)``) so the same call gives the same text.
    """
    import torch

    tokenizer.padding_side = "left"
    model.eval()
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    out: list[str] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, unit="batch"):
        batch = list(prompts[start:start + batch_size])
        enc = tokenizer(batch, return_tensors="pt", padding=True).to(device)
        with torch.no_grad():
            gen = model.generate(
                **enc,
                do_sample=True,
                temperature=temperature,
                top_k=top_k if top_k > 0 else None,
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new_tokens = gen[:, enc["input_ids"].shape[1]:]
        out.extend(t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
    return out
