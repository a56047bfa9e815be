"""Ensemble objectives over proxy reward models (Coste et al. 2023) and the reward callable PPO uses.

For member scores r_1..r_K of one sample (a (K, B) tensor for a batch):

- ``mean``: (1/K) sum_k r_k
- ``WCO`` (worst-case optimisation): min_k r_k
- ``UWO`` (uncertainty-weighted optimisation): mean - lambda * Var_k(r_k)

Variance is the POPULATION variance (divides by K), so a single member has variance 0 and UWO with
K=1 equals the member. (Coste et al.'s PPO code used the unbiased variance, their best-of-n code
the population one; with K members, unbiased = population * K/(K-1), i.e. a rescaled lambda.)

Members can be standardised first, z_k = (r_k - mu_k) / sigma_k, with mu_k/sigma_k each member's
reward mean/std over the SFT policy's samples (stored in its saved config by ``reward.train``), so
that WCO and UWO compare members on one scale.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from ..config import default_of
from ..errors import PipelineError
from ..runs import Ensemble, RunSettings
from .config import OBJECTIVES
from .heads import RewardModel, encode_for_reward, score_token_ids


def canonical_objective(objective: str) -> str:
    """``mean`` / ``WCO`` / ``UWO`` from any capitalisation; PipelineError otherwise."""
    for name in OBJECTIVES:
        if str(objective).lower() == name.lower():
            return name
    raise PipelineError(f"ensemble objective {objective!r}: must be one of {list(OBJECTIVES)}")


def mean_objective(scores: torch.Tensor) -> torch.Tensor:
    """Mean over members: (K, B) -> (B,)."""
    return scores.mean(dim=0)


def member_variance(scores: torch.Tensor) -> torch.Tensor:
    """Population variance over members (divides by K; 0 for K=1): (K, B) -> (B,)."""
    return scores.var(dim=0, unbiased=False)


def wco(scores: torch.Tensor) -> torch.Tensor:
    """Worst-case optimisation, the minimum over members: (K, B) -> (B,)."""
    return scores.min(dim=0).values


def uwo(scores: torch.Tensor, uwo_weight: float) -> torch.Tensor:
    """Uncertainty-weighted optimisation, mean - uwo_weight * population variance: (K, B) -> (B,)."""
    return mean_objective(scores) - uwo_weight * member_variance(scores)


def combine(scores: torch.Tensor, objective: str,
            uwo_weight: float = default_of(Ensemble, "uwo_weight")) -> torch.Tensor:
    """Apply an ensemble objective (``mean``, ``WCO``, ``UWO``; any case) to (K, B) member scores."""
    objective = canonical_objective(objective)
    if uwo_weight < 0:
        raise PipelineError(f"ensemble uwo_weight={uwo_weight}: must be >= 0")
    if scores.dim() != 2 or scores.shape[0] < 1:
        raise PipelineError(f"ensemble scores: expected shape (K, B) with K >= 1, got {tuple(scores.shape)}")
    if objective == "mean":
        return mean_objective(scores)
    if objective == "WCO":
        return wco(scores)
    return uwo(scores, uwo_weight)


def standardize(scores: torch.Tensor, means, stds) -> torch.Tensor:
    """Per-member z-scores (r_k - mean_k) / std_k of (K, B) scores; ``means``/``stds`` have K entries."""
    means = torch.as_tensor(means, dtype=scores.dtype, device=scores.device).reshape(-1, 1)
    stds = torch.as_tensor(stds, dtype=scores.dtype, device=scores.device).reshape(-1, 1)
    if means.shape[0] != scores.shape[0] or stds.shape[0] != scores.shape[0]:
        raise PipelineError(f"standardize: {scores.shape[0]} members but {means.shape[0]} means "
                            f"and {stds.shape[0]} stds")
    if (stds <= 0).any():
        raise PipelineError(f"standardize: member reward stds must be > 0, got {stds.flatten().tolist()}")
    return (scores - means) / stds


class EnsembleReward:
    """The reward callable for PPO / best-of-n: K proxy RMs combined by an ensemble objective.

    ``model_dirs``: saved :class:`RewardModel` dirs (``results/rm/seed{k}/model``). With
    ``standardize``, member k's scores are z-scored with its stored ``reward_mean``/``reward_std``.
    """

    def __init__(self, model_dirs: Sequence[str | os.PathLike], objective: str = default_of(Ensemble, "objective"),
                 uwo_weight: float = default_of(Ensemble, "uwo_weight"),
                 standardize: bool = default_of(RunSettings, "standardize"),
                 batch_size: int = default_of(RunSettings, "reward_batch_size"),
                 device: str | torch.device | None = None):
        from ..models import load_tokenizer

        if not model_dirs:
            raise PipelineError("ensemble: needs at least one reward model directory")
        self.objective = canonical_objective(objective)
        if uwo_weight < 0:
            raise PipelineError(f"ensemble uwo_weight={uwo_weight}: must be >= 0")
        self.uwo_weight = float(uwo_weight)
        self.standardize = standardize
        self.batch_size = batch_size
        self.device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model_dirs = [str(d) for d in model_dirs]
        self.members, self.tokenizers = [], []
        for d in self.model_dirs:
            if not Path(d).is_dir():
                raise PipelineError(f"ensemble: reward model directory {d} does not exist")
            try:
                model = RewardModel.from_pretrained(d)
                tok = load_tokenizer(d)
            except (OSError, ValueError) as e:
                raise PipelineError(f"ensemble: reward model {d} cannot be loaded ({e})") from None
            self.members.append(model.to(self.device).eval().requires_grad_(False))
            self.tokenizers.append(tok)
        self.means = torch.tensor([m.config.reward_mean for m in self.members])
        self.stds = torch.tensor([m.config.reward_std for m in self.members])

    @property
    def k(self) -> int:
        return len(self.members)

    def member_scores(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """Raw (un-standardised) scores of every member: (K, B) float32 on CPU."""
        rows = []
        for model, tok in zip(self.members, self.tokenizers):
            ids = encode_for_reward(tok, prompts, responses, model.config.reward_max_length)
            rows.append(score_token_ids(model, tok, ids, self.batch_size, self.device))
        return torch.stack(rows)

    def score_detail(self, prompts: Sequence[str], responses: Sequence[str]) -> dict[str, torch.Tensor]:
        """``members`` (K, B; standardised if enabled), ``reward`` (B,) and ``variance`` (B,)."""
        scores = self.member_scores(prompts, responses)
        if self.standardize:
            scores = standardize(scores, self.means, self.stds)
        return {
            "members": scores,
            "reward": combine(scores, self.objective, self.uwo_weight),
            "variance": member_variance(scores),
        }

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> torch.Tensor:
        """Combined reward, (B,) float32 on CPU."""
        return self.score_detail(prompts, responses)["reward"]
