"""The PPO trainer's extension points, shared by every RL stage (proxy-RM PPO, red-teaming, trajectory
logs): what a reward may report besides its score, and who sees every rollout.

**Rewards.** ``reward_fn(prompts, responses) -> scores [B]`` is the task score (before the KL term).
A reward may also provide

- ``score_batch(prompts, responses, training: bool) -> ScoredBatch``: the score plus per-sample
  numeric ``terms`` (e.g. toxicity, self-BLEU; ``train_log.csv`` gets the batch mean of each as
  ``term_<name>``, eval files get them per sample) and per-sample ``extras`` texts (e.g. the target
  model's reply). With ``training=False`` (evaluation) a stateful reward must leave its state alone;
- ``state_dict()`` / ``load_state_dict(state)``: state that shapes later scores (e.g. the novelty
  histories of red-teaming), saved in every PPO checkpoint and restored on resume, so a resumed
  run equals an uninterrupted one;
- ``score_detail(prompts, responses)``: ensemble members, for the proxy-RM ensembles' eval files.

**Rollout hooks.** Objects with ``on_rollout(rollout: Rollout)``, called once per PPO step on the
main process with the whole batch (gathered over processes), after the rewards are shaped and before
the update; ``on_resume(step)`` before the first step (0 for a fresh run): drop anything logged
after ``step``, which a resumed run is about to redo; ``on_checkpoint(step)``: make everything logged
so far durable. Hooks see tensors as plain lists (``Rollout``), built only when a hook is attached.
A hook that writes into the run's outputs may also give ``checkpoint_files() -> {name: path}``: each
checkpoint keeps copies (hard links when the hook sets ``files_immutable = True``: files never
changed once written) and a resumed run puts them back before ``on_resume``, so a log survives a
rerun that removed the outputs of the interrupted job (Snakemake does).
The trainer itself attaches :class:`rlhf_pipeline.ppo.trajectories.TrajectoryLog` (``cfg.trajectories``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import PipelineError


@dataclass
class ScoredBatch:
    """A reward's answer for one batch."""

    score: Any
    """[B] task scores (array-like), the reward PPO optimises before the KL term."""
    terms: dict[str, Any] = field(default_factory=dict)
    """name -> [B] numbers, logged (train_log means, per sample in eval files and rollouts)."""
    extras: dict[str, list[str]] = field(default_factory=dict)
    """name -> [B] texts, passed to eval files and rollout hooks (e.g. ``target_response``)."""


@dataclass
class Rollout:
    """One PPO step's rollouts (this is what trajectory logs and sample logs record)."""

    step: int
    prompts: list[str]
    prompt_ids: list[list[int]]
    """Prompt token ids, without padding."""
    responses: list[str]
    response_ids: list[list[int]]
    """Response token ids up to and including the first EOS (the masked tokens)."""
    logprobs: list[list[float]]
    """Per response token: log-probability under the policy that sampled it."""
    ref_logprobs: list[list[float]]
    """Per response token: under the reference policy."""
    values: list[list[float]]
    """Per response token: the value model's estimate."""
    score: list[float]
    """The raw task score (the reward's answer, before the missing-EOS penalty and the KL term)."""
    penalized_score: list[float]
    """The score PPO added at the last token (after the missing-EOS penalty)."""
    kl: list[list[float]]
    """Per response token: logp - ref_logp (k1)."""
    rewards: list[list[float]]
    """Per response token: the shaped reward (KL penalty, entropy bonus, score at the last token)."""
    terms: dict[str, list[float]] = field(default_factory=dict)
    extras: dict[str, list[str]] = field(default_factory=dict)


class RolloutHook(Protocol):
    def on_rollout(self, rollout: Rollout) -> None: ...

    def on_resume(self, step: int) -> None: ...

    def on_checkpoint(self, step: int) -> None: ...


def score_batch(reward_fn, prompts: list[str], responses: list[str], training: bool) -> ScoredBatch:
    """The reward's :class:`ScoredBatch` (``score`` as a float32 CPU tensor [B]); a plain callable
    gives the score alone. PipelineError when a score or a term does not have one value per response."""
    if hasattr(reward_fn, "score_batch"):
        out = reward_fn.score_batch(prompts, responses, training=training)
    else:
        out = ScoredBatch(reward_fn(prompts, responses))
    n = len(prompts)
    score = torch.as_tensor(np.asarray(out.score, dtype=np.float32)).reshape(-1)
    if score.shape[0] != n:
        raise PipelineError(f"reward_fn returned {score.shape[0]} scores for {n} responses")
    terms = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in out.terms.items()}
    extras = {k: list(v) for k, v in out.extras.items()}
    for name, values in [*terms.items(), *extras.items()]:
        if len(values) != n:
            raise PipelineError(f"reward_fn returned {len(values)} values of {name!r} for {n} responses")
    return ScoredBatch(score, terms, extras)


def rows_of(t: torch.Tensor, mask: torch.Tensor) -> list[list[float]]:
    """The masked entries of each row of a [B, T] tensor, as lists (response tokens only)."""
    return [row[m.bool()].tolist() for row, m in zip(t.detach().float().cpu(), mask.cpu())]


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
