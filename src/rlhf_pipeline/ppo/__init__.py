"""PPO for causal LMs: a readable reference implementation (Huang et al. 2024 details).

Modules: ``config`` (PPOConfig), ``losses`` (GAE, whitening, clipped losses), ``kl`` (estimators,
KL controllers), ``rollout`` (generation, EOS truncation, forward passes), ``value`` (value model),
``hooks`` (what a reward may report, rollout hooks), ``trajectories`` (rollout logs), ``trainer``
(``train_ppo``: the loop and the steps of PPO), ``run`` (a run's set-up, train log and final model),
``checkpoint`` (resumable checkpoints, resumption), ``guards`` (non-finite values), ``timing`` (wall
time by phase). Heavy imports stay lazy.
"""

from .config import PPOConfig

__all__ = ["PPOConfig", "train_ppo"]


def train_ppo(*args, **kwargs):
    """See :func:`rlhf_pipeline.ppo.trainer.train_ppo`."""
    from .trainer import train_ppo as _train_ppo

    return _train_ppo(*args, **kwargs)
