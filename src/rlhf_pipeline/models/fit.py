"""Fitting a small head on cached features: the one loop the gold RM and the toxicity classifier share."""

from __future__ import annotations

from collections.abc import Callable


def fit_on_features(module, x, y, loss_fn: Callable, *, epochs: int, learning_rate: float, batch_size: int,
                    seed: int, desc: str) -> list[float]:
    """Fit ``module`` on cached features: ``loss_fn(module(x[idx]), y[idx])`` over seeded shuffled
    mini-batches, AdamW (no weight decay) with a cosine schedule over ``epochs``. Returns the mean loss
    per epoch; leaves ``module`` in eval mode."""
    import torch
    from tqdm.auto import trange

    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(module.parameters(), lr=learning_rate, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    module.requires_grad_(True).train()
    losses = []
    for _ in trange(epochs, desc=desc):
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = loss_fn(module(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        sched.step()
        losses.append(total / len(x))
    module.eval()
    return losses
