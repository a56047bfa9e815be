"""Non-finite guards: a NaN/inf score, reward or loss in a training step, or a NaN/inf proxy reward, member
score, ensemble variance or KL at an eval step, aborts the run with a :class:`PipelineError` naming the step.
The last good checkpoint is kept and the offending batch is saved next to it: ``ckpt_dir/nan_batch_step{N}.jsonl``
(a training batch) or ``ckpt_dir/nan_eval_batch_step{N}.jsonl`` (an eval batch; no eval file is written for
that step)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ..errors import PipelineError
from ..io import write_jsonl


def check_finite(ckpt_dir: Path, step: int, name: str, tensor, prompts, texts, scores) -> None:
    """Abort if ``tensor`` (the step's ``name``: score, reward) has a NaN/inf; the batch is saved first."""
    if not torch.isfinite(tensor).all():
        save_bad_batch(ckpt_dir, step, prompts, texts, scores)
        raise PipelineError(f"PPO step {step}: non-finite {name}; batch saved to "
                            f"{bad_batch_path(ckpt_dir, step)}; last good checkpoint kept in {ckpt_dir}")


def check_loss(ckpt_dir: Path, step: int, loss, pg_loss, vf_loss, prompts, texts, scores) -> None:
    """Abort if a micro-batch's loss is NaN/inf (before its backward); the step's batch is saved first."""
    if not torch.isfinite(loss):
        save_bad_batch(ckpt_dir, step, prompts, texts, scores)
        raise PipelineError(f"PPO step {step}: non-finite loss (policy {pg_loss.item()}, "
                            f"value {vf_loss.item()}); batch saved to {bad_batch_path(ckpt_dir, step)}")


def check_eval_finite(ckpt_dir: Path, step: int, prompts, texts, members, reward, variance, kl) -> None:
    """Abort like :func:`check_finite` if an eval batch has a NaN/inf proxy reward, member score, ensemble
    variance or KL. Called before any eval row is kept, so no eval file of ``step`` is written (and no NaN reaches
    the JSONL writer); the eval batch is saved as ``nan_eval_batch_step{N}.jsonl``."""
    kl = kl.float().cpu()
    fields = {"proxy reward": reward, "proxy member scores": members, "ensemble variance": variance, "KL": kl}
    bad = [name for name, t in fields.items() if not torch.isfinite(t).all()]
    if not bad:
        return
    finite = (torch.isfinite(reward) & torch.isfinite(members).all(0) & torch.isfinite(variance)
              & torch.isfinite(kl))
    path = save_bad_batch(ckpt_dir, step, prompts, texts, reward, kind="eval_batch",
                          extra={"proxy_scores": members.T, "ensemble_variance": variance, "kl": kl})
    raise PipelineError(f"PPO eval at step {step}: non-finite {', '.join(bad)} in {int((~finite).sum())} of "
                        f"{len(prompts)} samples of an eval batch; eval batch saved to {path}; no eval file "
                        f"written for step {step}; last good checkpoint kept in {ckpt_dir}")


def bad_batch_path(ckpt_dir: Path, step: int, kind: str = "batch") -> Path:
    """``nan_batch_step{N}.jsonl`` (a training batch) or ``nan_eval_batch_step{N}.jsonl`` next to the
    checkpoints."""
    return ckpt_dir / f"nan_{kind}_step{step}.jsonl"


def save_bad_batch(ckpt_dir: Path, step: int, prompts, texts, scores, kind: str = "batch", extra=None) -> Path:
    """Save the batch that went non-finite: one row per sample with prompt, response, score and the
    ``extra`` per-sample columns (``{name: tensor [B] or [B, K]}``). NaN/inf are written as the strings
    "nan"/"inf"/"-inf", so the file stays valid JSON. Returns its path."""
    columns = {name: t.tolist() for name, t in (extra or {}).items()}
    rows = [{"prompt": p, "response": r, "score": _json_number(s),
             **{name: _json_number(col[b]) for name, col in columns.items()}}
            for b, (p, r, s) in enumerate(zip(prompts, texts, scores.tolist()))]
    path = bad_batch_path(ckpt_dir, step, kind)
    write_jsonl(path, rows)
    return path


def _json_number(x):
    """``x`` (a float or a nested list of floats) with NaN/inf as the strings "nan", "inf", "-inf"."""
    if isinstance(x, list):
        return [_json_number(v) for v in x]
    return x if math.isfinite(x) else str(x)
