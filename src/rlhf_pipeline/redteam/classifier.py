"""The embedded default's toxicity classifier: the frozen shipped MiniLM with a trained linear layer.

:func:`train_toxicity_classifier` loads all-MiniLM-L6-v2 (``rlhf_pipeline.models.minilm_path()``) as a
``BertForSequenceClassification`` with two labels (``id2label = {0: "non_toxic", 1: "toxic"}``),
freezes the encoder and the pooler, computes the pooler output (the ``[CLS]`` state through the
pretrained dense + tanh: the 384 features the classification layer reads) once for every text, and
trains only the classification layer on those cached features: AdamW (no weight decay, cosine
schedule over ``epochs``), cross-entropy, seeded init / split / data order. 10% of the rows
(:data:`VAL_FRACTION`, a seeded split: :func:`holdout_split`) are held out for the metrics.

The layer trains on standardised features ``z = (f - mean) / std`` (per feature, training rows'
statistics): the raw tanh features are badly conditioned for AdamW, which reached only 0.94
held-out accuracy in 30 epochs on them and 0.99 on ``z``. The standardisation is then folded into the
layer (:func:`fold_standardization`: ``W' = W / std``, ``b' = b - W' mean``), so the saved layer
reads the raw pooler output and the saved model is a plain ``BertForSequenceClassification``.

It saves an ordinary Hugging Face model: ``AutoModelForSequenceClassification.from_pretrained(
out_dir / "model")`` with ``AutoTokenizer.from_pretrained(out_dir / "model")`` gives
``P(toxic) = softmax(logits)[:, 1]`` (:func:`toxicity_probs`): what the trained layer gave on the
cached features, to float precision (the encoder is untouched and eval mode turns dropout off).

``metrics.json``: held-out ``accuracy`` (P(toxic) >= 0.5) and ``auc``, ``val_loss``, the same on the
training rows, ``final_train_loss``, sizes, settings, ``encode_time_s`` (loading + encoding) and
``train_time_s`` (the whole call).

Files: ``out_dir/model/`` (``save_pretrained`` + the MiniLM tokenizer) and ``out_dir/metrics.json``,
written together through :func:`rlhf_pipeline.io.atomic_dir`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import PipelineError
from ..io import atomic_dir, write_json
from .config import ClassifierTrainConfig

ID2LABEL: dict[int, str] = {0: "non_toxic", 1: "toxic"}
LABEL2ID: dict[str, int] = {v: k for k, v in ID2LABEL.items()}
VAL_FRACTION = 0.1
"""Share of the labelled texts held out for the metrics (none below 10 rows)."""
MAX_LENGTH = 64
"""Tokens per text the classifier reads when computing the cached features (replies are short)."""


# ---------------------------------------------------------------------------------------------
# Metrics (pure)
# ---------------------------------------------------------------------------------------------

def average_ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks starting at 1; tied values share their average rank."""
    _, inverse, counts = np.unique(np.asarray(x, float), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse.reshape(-1)]


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Area under the ROC curve: P(score of a random positive > a random negative's), ties count
    half (Mann-Whitney). NaN when either class is absent."""
    y = np.asarray(labels, int)
    n_pos, n_neg = int((y == 1).sum()), int((y == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = average_ranks(scores)
    return float((r[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def accuracy(probs: Sequence[float], labels: Sequence[int], threshold: float = 0.5) -> float:
    """Share of rows where ``prob >= threshold`` agrees with ``label == 1``; NaN for no rows."""
    p, y = np.asarray(probs, float), np.asarray(labels, int)
    return float(np.mean((p >= threshold) == (y == 1))) if len(y) else float("nan")


def fold_standardization(weight, bias, mean, std):
    """``(W', b')`` with ``W' f + b' == W ((f - mean) / std) + b`` for every ``f``: ``W' = W / std``
    (column-wise), ``b' = b - W' mean``. Works on torch tensors and numpy arrays."""
    folded = weight / std[None, :]
    return folded, bias - folded @ mean


def holdout_split(n: int, seed: int) -> tuple[list[int], list[int]]:
    """``(train_idx, val_idx)``: a seeded permutation's first ``round(0.1 n)`` rows are held out
    (none when ``n < 10``)."""
    import torch

    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = round(VAL_FRACTION * n) if n >= 10 else 0
    return perm[n_val:], perm[:n_val]


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------

def check_rows(rows: Sequence[dict[str, Any]]) -> None:
    """Rows need a string ``text`` and a ``label`` of 0 or 1, with both labels present."""
    if not rows:
        raise PipelineError("toxicity classifier training: no labelled texts (rows is empty)")
    for i, row in enumerate(rows):
        missing = [k for k in ("text", "label") if k not in row]
        if missing:
            raise PipelineError(f"toxicity classifier training: row {i} misses field(s) {missing}; "
                                "rows need ['text', 'label']")
        if not isinstance(row["text"], str):
            raise PipelineError(f"toxicity classifier training: row {i}: text is {type(row['text']).__name__}; "
                                "expected a string")
        if isinstance(row["label"], bool) or row["label"] not in (0, 1):
            raise PipelineError(f"toxicity classifier training: row {i}: label is {row['label']!r}; "
                                "expected 0 (non_toxic) or 1 (toxic)")
    present = {row["label"] for row in rows}
    if len(present) < 2:
        raise PipelineError(f"toxicity classifier training: all {len(rows)} rows have label {present.pop()}; "
                            "expected both 0 (non_toxic) and 1 (toxic)")


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------

def load_base_classifier(seed: int):
    """``(model, tokenizer)``: the shipped MiniLM as a 2-label ``BertForSequenceClassification``
    (classification layer freshly initialised with ``seed``), encoder and pooler frozen, eval mode."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from ..models import minilm_path

    path = minilm_path()
    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(
        path, num_labels=2, id2label=dict(ID2LABEL), label2id=dict(LABEL2ID),
        problem_type="single_label_classification", dtype=torch.float32)
    model.bert.requires_grad_(False)
    model.eval()
    return model, AutoTokenizer.from_pretrained(path)


def _batches(tokenizer, texts: Sequence[str], batch_size: int, desc: str | None):
    """Yield ``(indices, padded batch)`` shortest texts first, with a tqdm bar: the texts tokenised
    (truncated to :data:`MAX_LENGTH`) and batched by :func:`rlhf_pipeline.reward.heads.padded_batches`."""
    from ..reward.heads import padded_batches

    ids = tokenizer(list(texts), truncation=True, max_length=MAX_LENGTH)["input_ids"]
    yield from padded_batches(tokenizer, ids, batch_size, desc)


def pooled_features(model, tokenizer, texts: Sequence[str], batch_size: int, desc: str | None = None):
    """The frozen encoder's pooler output (float32 tensor (N, hidden), input order): what the
    classification layer of ``model`` (a ``BertForSequenceClassification``) reads."""
    import torch

    feats = torch.zeros(len(texts), model.config.hidden_size)
    with torch.no_grad():
        for idx, batch in _batches(tokenizer, texts, batch_size, desc):
            feats[idx] = model.bert(**batch).pooler_output.float()
    return feats


def toxicity_probs(model, tokenizer, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """P(toxic) = ``softmax(logits)[:, 1]`` of a 2-label sequence classifier (float64, input order)."""
    import torch

    was_training = model.training
    model.eval()
    out = np.zeros(len(texts))
    with torch.no_grad():
        for idx, batch in _batches(tokenizer, texts, batch_size, None):
            out[idx] = torch.softmax(model(**batch).logits.float(), dim=-1)[:, LABEL2ID["toxic"]].numpy()
    model.train(was_training)
    return out


def _fit_layer(layer, x, y, cfg: ClassifierTrainConfig) -> list[float]:
    """Cross-entropy fit of ``layer(x)`` to ``y`` (AdamW, cosine schedule); mean loss per epoch.
    Runs on one CPU thread: the ops are tiny, and extra threads only add contention."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _fit_layer_loop(layer, x, y, cfg)
    finally:
        torch.set_num_threads(threads)


def _fit_layer_loop(layer, x, y, cfg: ClassifierTrainConfig) -> list[float]:
    import torch

    from ..models.fit import fit_on_features

    return fit_on_features(layer, x, y, torch.nn.functional.cross_entropy, epochs=cfg.epochs,
                           learning_rate=cfg.learning_rate, batch_size=cfg.batch_size, seed=cfg.seed,
                           desc="toxicity classifier")


def train_toxicity_classifier(cfg: ClassifierTrainConfig, rows: Sequence[dict[str, Any]],
                              out_dir: str | os.PathLike) -> dict[str, Any]:
    """Train the classification layer of the frozen MiniLM on ``rows`` (``{"text", "label"}``,
    label 1 = toxic) and write ``out_dir/model/`` + ``out_dir/metrics.json``; returns the metrics:
    held-out ``accuracy`` (P(toxic) >= 0.5) and ``auc``, the same on the training rows, losses,
    sizes and times."""
    import torch

    check_rows(rows)
    start = time.time()
    model, tok = load_base_classifier(cfg.seed)
    texts = [r["text"] for r in rows]
    labels = torch.tensor([int(r["label"]) for r in rows])
    feats = pooled_features(model, tok, texts, cfg.batch_size, desc="encoding (frozen MiniLM)")
    encode_s = time.time() - start

    train_idx, val_idx = holdout_split(len(rows), cfg.seed)
    mean = feats[train_idx].mean(0)
    std = feats[train_idx].std(0, unbiased=False).clamp(min=1e-6)
    losses = _fit_layer(model.classifier, (feats[train_idx] - mean) / std, labels[train_idx], cfg)
    with torch.no_grad():
        layer = model.classifier
        weight, bias = fold_standardization(layer.weight, layer.bias, mean, std)
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
        logits = model.classifier(feats)
        probs = torch.softmax(logits, dim=-1)[:, LABEL2ID["toxic"]].numpy()
        eval_idx = val_idx or train_idx
        val_loss = float(torch.nn.functional.cross_entropy(logits[eval_idx], labels[eval_idx]))
    y = labels.numpy()
    metrics: dict[str, Any] = {
        "encoder": "minilm",
        "id2label": {str(k): v for k, v in ID2LABEL.items()},
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "toxic_share": float(y.mean()),
        "accuracy": accuracy(probs[eval_idx], y[eval_idx]),
        "auc": roc_auc(probs[eval_idx], y[eval_idx]),
        "val_loss": val_loss,
        "train_accuracy": accuracy(probs[train_idx], y[train_idx]),
        "train_auc": roc_auc(probs[train_idx], y[train_idx]),
        "final_train_loss": losses[-1],
        "features": "pooler output, standardised for training; folded into the classifier layer",
        "epochs": cfg.epochs,
        "learning_rate": cfg.learning_rate,
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "encode_time_s": encode_s,
        "train_time_s": time.time() - start,
    }
    if not val_idx:
        metrics["note"] = "fewer than 10 rows: metrics are on the training rows"
    model.requires_grad_(False)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp / "model")
        tok.save_pretrained(tmp / "model")
        write_json(tmp / "metrics.json", metrics)
    return metrics
