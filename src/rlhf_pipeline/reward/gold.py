"""The gold reward model: the "true" reward that labels preferences and judges policies.

Two ways to get one (``gold_rm:`` config):

- ``path`` set: an existing sequence-classification RM (hub id or local dir), or AlpacaFarm's recovered
  ``reward-model-human`` as AlpacaFarm saves it (loaded by :mod:`rlhf_pipeline.reward.alpacafarm`;
  ``is_alpacafarm_rm: true`` switches to their prompt format).
- ``path: world`` (synthetic world only): no model; the world's exact hidden quality
  (:func:`rlhf_pipeline.data.synthetic.quality`), z-scored like the trained gold RM's targets
  (:class:`WorldQualityScorer`). A trained gold RM is itself a learned proxy of that quality: a policy
  optimised hard can fool it too (repeating on-topic words), and this gold cannot be fooled.
- ``path: null`` (embedded default): :func:`train_gold_rm` fits a :class:`RewardModel` on the
  FROZEN MiniLM encoder (mean pooling) with a small MLP head to the hidden ``quality`` of scored
  synthetic responses. Objective: **regression** (MSE) on the z-scored quality (z-scored with the
  training split's mean/std), so gold rewards are on a quality-z scale and differences between two
  responses are meaningful for Bradley-Terry labelling. The encoder runs once over all texts
  (cached pooled features); only the head trains, which takes seconds on CPU.

:class:`GoldScorer` scores (prompt, response) pairs with any of these models; :func:`gold_scorer` makes the
scorer a ``gold_rm.path`` names (the world's quality included).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import default_of
from ..data.alpaca_farm import alpaca_prompt, is_alpaca_prompt
from ..errors import PipelineError
from ..io import atomic_dir, write_json
from ..models import check_model, join_text, load_tokenizer, resolve_name
from ..stats import pearson, spearman
from .alpacafarm import is_alpacafarm_rm as is_alpacafarm_dir
from .alpacafarm import load_alpacafarm_rm
from .config import WORLD_GOLD, GoldRMConfig
from .heads import RewardModel, encode_for_reward, encode_texts, padded_batches, score_token_ids

GOLD_MLP_HIDDEN = 256
"""Hidden width of the trained gold RM's MLP head."""
GOLD_MAX_LENGTH = 128
"""Tokens per prompt+response the trained gold RM reads."""
VAL_FRACTION = 0.1
"""Share of the scored responses held out for the gold RM's metrics."""


def alpacafarm_format(prompt: str, response: str) -> str:
    """AlpacaFarm's reward-model input: the Alpaca prompt, a newline, then the response (no EOS; the
    tokenizer adds BOS). A ``prompt`` that already is an Alpaca prompt (the ``alpaca_farm`` adapter's rows,
    with or without an ``### Input:`` block) is used as it is; any other becomes the instruction of the
    no-input template."""
    prompt = prompt.strip()
    if not is_alpaca_prompt(prompt):
        prompt = alpaca_prompt(prompt)
    return f"{prompt}\n{response.strip()}"


# ---------------------------------------------------------------------------------------------
# Metrics (pure)
# ---------------------------------------------------------------------------------------------


def pairwise_order_accuracy(pred: np.ndarray, target: np.ndarray) -> float:
    """Over all pairs i<j with target_i != target_j: fraction where pred orders them the same way
    (a tie in pred counts as wrong). NaN when there is no such pair."""
    p, t = np.asarray(pred, float), np.asarray(target, float)
    dp, dt = p[:, None] - p[None, :], t[:, None] - t[None, :]
    upper = np.triu(np.ones_like(dt, dtype=bool), k=1) & (dt != 0)
    if not upper.any():
        return float("nan")
    return float(np.mean(np.sign(dp[upper]) == np.sign(dt[upper])))


# ---------------------------------------------------------------------------------------------
# Training the embedded default's gold RM
# ---------------------------------------------------------------------------------------------


def _check_rows(rows: Sequence[dict]) -> None:
    if not rows:
        raise PipelineError("gold RM training: no scored responses (rows is empty)")
    for i, row in enumerate(rows):
        missing = [k for k in ("prompt", "response", "quality") if k not in row]
        if missing:
            raise PipelineError(f"gold RM training: row {i} misses field(s) {missing}; "
                                "rows need ['prompt', 'response', 'quality']")


@torch.no_grad()
def _pooled_features(model: RewardModel, tok, ids: list[list[int]], batch_size: int) -> torch.Tensor:
    """Frozen-encoder features (N, H) in input order, computed once."""
    model.eval()
    feats = None
    for idx, batch in padded_batches(tok, ids, batch_size, desc="encoding (frozen)"):
        f = model.pooled_features(batch["input_ids"], batch["attention_mask"]).float()
        if feats is None:
            feats = torch.zeros(len(ids), f.shape[-1])
        feats[idx] = f
    return feats


def _fit_head(head: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: GoldRMConfig) -> list[float]:
    """MSE regression of ``head(x)`` on ``y``; returns the mean loss per epoch."""
    from ..models.fit import fit_on_features

    def mse(pred, target):
        return torch.nn.functional.mse_loss(pred.squeeze(-1), target)

    return fit_on_features(head, x, y, mse, epochs=cfg.epochs, learning_rate=cfg.learning_rate,
                           batch_size=cfg.batch_size, seed=cfg.seed, desc="gold RM head")


def train_gold_rm(cfg: GoldRMConfig, rows: Sequence[dict[str, Any]], out_dir: str | os.PathLike) -> dict:
    """Fit the gold RM (frozen ``cfg.encoder`` + mean pooling + MLP head) to ``rows``' quality.

    ``rows``: dicts with ``prompt``, ``response`` and a float ``quality`` (the hidden signal).
    Writes ``out_dir/model/`` (model + encoder tokenizer) and ``out_dir/metrics.json``
    (held-out Spearman/Pearson vs quality, pairwise accuracy, sizes, time). Returns the metrics.
    """
    from transformers import set_seed

    _check_rows(rows)
    start = time.time()
    set_seed(cfg.seed)
    tok = load_tokenizer(cfg.encoder)
    model = RewardModel.from_backbone(resolve_name(cfg.encoder), head="mean",
                                      mlp_hidden=GOLD_MLP_HIDDEN, freeze_backbone=True)
    model.config.reward_max_length = GOLD_MAX_LENGTH
    model.config.pad_token_id = tok.pad_token_id

    ids = encode_for_reward(tok, [r["prompt"] for r in rows], [r["response"] for r in rows], GOLD_MAX_LENGTH)
    quality = torch.tensor([float(r["quality"]) for r in rows])
    feats = _pooled_features(model, tok, ids, cfg.batch_size)

    perm = torch.randperm(len(rows), generator=torch.Generator().manual_seed(cfg.seed))
    n_val = round(VAL_FRACTION * len(rows)) if len(rows) >= 10 else 0
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    q_mean, q_std = quality[train_idx].mean(), quality[train_idx].std(unbiased=False).clamp(min=1e-8)
    target = (quality - q_mean) / q_std
    losses = _fit_head(model.score, feats[train_idx], target[train_idx], cfg)

    with torch.no_grad():
        pred = model.score(feats).squeeze(-1)
    model.config.reward_mean = float(pred.mean())
    model.config.reward_std = float(pred.std(unbiased=False))
    eval_idx = val_idx if n_val > 0 else train_idx
    p, q = pred[eval_idx].numpy(), quality[eval_idx].numpy()
    metrics = {
        "encoder": cfg.encoder,
        "objective": "mse_on_zscored_quality",
        "n_train": len(train_idx),
        "n_val": n_val,
        "spearman": spearman(p, q),
        "pearson": pearson(p, q),
        "pairwise_accuracy": pairwise_order_accuracy(p, q),
        "train_spearman": spearman(pred[train_idx].numpy(), quality[train_idx].numpy()),
        "final_train_mse": losses[-1],
        "quality_mean": float(q_mean),
        "quality_std": float(q_std),
        "seed": cfg.seed,
        "train_time_s": time.time() - start,
    }
    if n_val == 0:
        metrics["note"] = "fewer than 10 rows: metrics are on the training rows"
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp / "model")
        tok.save_pretrained(tmp / "model")
        write_json(tmp / "metrics.json", metrics)
    return metrics


# ---------------------------------------------------------------------------------------------
# Scoring with any gold RM
# ---------------------------------------------------------------------------------------------


class GoldScorer:
    """Score (prompt, response) pairs with a sequence-classification reward model.

    ``path``: a :class:`RewardModel` dir (e.g. ``results/gold_rm/model``), a local dir holding AlpacaFarm's
    ``RewardModel`` (config.json ``model_type: reward_model``;
    :func:`~rlhf_pipeline.reward.alpacafarm.load_alpacafarm_rm`: reward = ``rewards``, read at the last position
    of LEFT-padded batches as AlpacaFarm does), or any hub id / local dir loadable by
    ``AutoModelForSequenceClassification`` (reward = ``logits[:, 0]``). Text:
    :func:`~rlhf_pipeline.models.join_text`, or :func:`alpacafarm_format` when ``is_alpacafarm_rm``. Our
    RewardModels get the EOS appended (as in training); other models get their tokenizer's own special tokens only.
    """

    def __init__(self, path: str | os.PathLike, is_alpacafarm_rm: bool = False, *, batch_size: int,
                 device: str | torch.device | None = None):
        from transformers import AutoModelForSequenceClassification

        path = check_model("gold RM path", str(path)).path
        self.path = path
        self.batch_size = batch_size
        self.format_fn = alpacafarm_format if is_alpacafarm_rm else join_text
        self.device = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            if is_alpacafarm_dir(path):
                self.tokenizer = load_tokenizer(path, padding_side="left")  # AlpacaFarm reads position -1
                self.model = load_alpacafarm_rm(path)
            else:
                self.tokenizer = load_tokenizer(path)
                self.model = AutoModelForSequenceClassification.from_pretrained(path)
        except (OSError, ValueError, PipelineError) as e:
            what = "cannot be loaded" if Path(path).exists() else "is no local path and cannot be loaded from the hub"
            raise PipelineError(f"gold RM path {path!r} {what} ({e})") from None
        self.model.to(self.device).eval().requires_grad_(False)
        if getattr(self.model.config, "pad_token_id", None) is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.ours = isinstance(self.model, RewardModel)
        self.max_length = None
        if self.ours:
            self.max_length = self.model.config.reward_max_length
        elif self.tokenizer.model_max_length < 100_000:
            self.max_length = self.tokenizer.model_max_length

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Gold rewards, float32 array of shape (N,)."""
        if len(prompts) != len(responses):
            raise PipelineError(f"gold RM: {len(prompts)} prompts but {len(responses)} responses")
        texts = [self.format_fn(p, r) for p, r in zip(prompts, responses)]
        ids = encode_texts(self.tokenizer, texts, self.max_length, add_eos=self.ours)
        return score_token_ids(self.model, self.tokenizer, ids, self.batch_size, self.device,
                               desc="gold RM").numpy().astype(np.float32)


class WorldQualityScorer:
    """The synthetic world's exact hidden quality as the gold reward: ``(quality - mean) / std`` with the
    mean and standard deviation of the quality of all ``n`` scored responses of the world's generator
    (:func:`~rlhf_pipeline.data.synthetic.sample_scored_responses`, the gold RM's training data at its
    defaults). The trained gold RM z-scores with its 90% training split of the same rows, so the two
    scales agree to within 0.004 standard deviations at the defaults. Deterministic, no model, no batches."""

    def __init__(self, n: int = default_of(GoldRMConfig, "n_samples"),
                 seed: int = default_of(GoldRMConfig, "seed")):
        from ..data.synthetic import sample_scored_responses

        q = np.array([r["quality"] for r in sample_scored_responses(n, seed)], dtype=np.float64)
        self.mean, self.std = float(q.mean()), float(q.std())

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Gold rewards, float32 array of shape (N,); PipelineError naming a prompt of another world."""
        from ..data.synthetic import quality

        if len(prompts) != len(responses):
            raise PipelineError(f"gold (world quality): {len(prompts)} prompts but {len(responses)} responses")
        try:
            q = np.array([quality(p, r) for p, r in zip(prompts, responses)], dtype=np.float64)
        except PipelineError as e:
            raise PipelineError(f"gold_rm.path 'world' scores the synthetic world's prompts only: {e}") from None
        return ((q - self.mean) / self.std).astype(np.float32)


def gold_scorer(path: str | os.PathLike, is_alpacafarm_rm: bool = False, *, batch_size: int,
                device: str | torch.device | None = None) -> GoldScorer | WorldQualityScorer:
    """The gold scorer ``path`` names: :class:`WorldQualityScorer` for ``'world'``, else a :class:`GoldScorer`."""
    if str(path) == WORLD_GOLD:
        return WorldQualityScorer()
    return GoldScorer(path, is_alpacafarm_rm, batch_size=batch_size, device=device)
