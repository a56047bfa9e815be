"""Train one proxy reward model (one ensemble member): TRL's ``RewardTrainer``, or with
``rm.freeze_backbone`` a head-only loop over backbone features computed once.

By default members of an ensemble differ only in their seed: it sets the head's initialisation and
the data order (``transformers.set_seed`` before the model is built; ``RewardConfig.seed``/``data_seed``, or
the frozen loop's shuffling generator). ``rm.data`` (bootstrap / disjoint pairs) and
``rm.member_label_noise`` give members different data (:mod:`rlhf_pipeline.reward.member_data`).

Texts are tokenised by :func:`~rlhf_pipeline.reward.heads.encode_for_reward` (``join_text``,
right truncation, EOS appended) and handed to the trainer as ``chosen_ids``/``rejected_ids``, so
training and inference (:class:`~rlhf_pipeline.reward.ensemble.EnsembleReward`) read text
identically. Loss: Bradley-Terry, -log sigmoid(r_chosen - r_rejected) (TRL's).
Preemption (checkpoints, SIGTERM/SIGUSR1, resume): :mod:`rlhf_pipeline.trainer_checkpoints`.

**Frozen backbone** (``freeze_backbone: true``, :func:`train_frozen_head`): the backbone runs once,
in eval mode (no dropout), over every training text (chosen and rejected) and its readout inputs
(:meth:`~rlhf_pipeline.reward.heads.RewardModel.readout_inputs`: exactly the hidden states the head
reads) are kept in memory, per text trimmed to its length, as ``feature_dtype`` (float32 default).
Memory: about ``2 * n_pairs * L * T * H * bytes`` where T is the mean tokens per text and L the
layers read for the heads that read tokens (``mean``: L = 1; ``attention`` / ``layer_attention``: L =
the last ``attention_layers``), and ``2 * n_pairs * L * H * bytes`` for the heads that read one
position (``last_token``, ``decoder_output``: L = 1; ``first_token_attention``). E.g. flan-t5-large
(H = 1024) with ``attention`` over 4 layers, 64 tokens and 160k pairs: 2 * 160e3 * 4 * 64 * 1024 *
4 B = 335 GB (float32); with ``last_token``: 1.3 GB. ``metrics.json`` records ``feature_cache_mb``;
a cache larger than the memory available (``MemAvailable``) fails before the backbone runs.
The head then trains for ``epochs`` with its own loop: Bradley-Terry loss, AdamW (the configured
learning rate, no weight decay), linear decay to 0 without warmup, gradient-norm clipping at 1.0
(as TRL's defaults), ``batch_size`` pairs per step, shuffled by a generator seeded with the seed,
``ceil(epochs * ceil(n_pairs / batch_size))`` steps (as the HF Trainer counts). The same loop runs
with the frozen backbone in the loop (``cache_features=False``); the two agree to float rounding.
The frozen loop does NOT checkpoint: it is short, and a preempted run (SIGTERM ends it before any
output is written) restarts from scratch; ``resumed_from`` is always null.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import PipelineError
from ..io import read_jsonl
from ..models import load_tokenizer, resolve_name
from ..trainer_checkpoints import save_trained, train_resumable
from ..trl_args import training_args
from .config import RMConfig, check_head
from .heads import (
    RewardModel,
    collate_readout_inputs,
    encode_for_reward,
    padded_batches,
    score_token_ids,
    split_readout_inputs,
)
from .member_data import member_pairs

PREFERENCE_FIELDS = ("prompt", "chosen", "rejected", "gold_chosen", "gold_rejected", "label_flipped")


def read_preferences(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a preference file; PipelineError naming the file for a missing field or no rows."""
    rows = read_jsonl(path, required=PREFERENCE_FIELDS)
    if not rows:
        raise PipelineError(f"{path}: no preference pairs (empty file)")
    return rows


def pairwise_accuracy(r_chosen: np.ndarray, r_rejected: np.ndarray,
                      flipped: np.ndarray | None = None) -> float:
    """Fraction of pairs the RM orders like the labels (ties count as wrong).

    With ``flipped`` (True where the noisy label disagrees with the gold RM), accuracy is against
    the GOLD preference: a pair is right when r_chosen > r_rejected XOR flipped.
    """
    correct = np.asarray(r_chosen) > np.asarray(r_rejected)
    if flipped is not None:
        prefers_rejected = np.asarray(r_rejected) > np.asarray(r_chosen)
        flipped = np.asarray(flipped, dtype=bool)
        correct = np.where(flipped, prefers_rejected, correct)
    return float(np.mean(correct))


def _backbone_and_tokenizer(cfg: RMConfig, sft_model_dir: str | os.PathLike | None) -> tuple[str, Any]:
    if cfg.init == "sft":
        if sft_model_dir is None or not Path(sft_model_dir).is_dir():
            raise PipelineError(f"rm.init=sft: SFT model directory {sft_model_dir} does not exist")
        source = str(sft_model_dir)
    else:
        source = resolve_name(cfg.init)
    return source, load_tokenizer(source)


def _pair_ids(tok, rows, max_length):
    prompts = [r["prompt"] for r in rows]
    chosen = encode_for_reward(tok, prompts, [r["chosen"] for r in rows], max_length)
    rejected = encode_for_reward(tok, prompts, [r["rejected"] for r in rows], max_length)
    return chosen, rejected


# ---------------------------------------------------------------------------------------------
# Frozen backbone: the head trained on cached readout inputs (or with the backbone in the loop).
# ---------------------------------------------------------------------------------------------

MAX_GRAD_NORM = 1.0
"""Gradient-norm clipping of the frozen loop (TRL's / the HF Trainer's default ``max_grad_norm``)."""


def bradley_terry_loss(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """Mean over pairs of -log sigmoid(r_chosen - r_rejected). (B,), (B,) -> scalar."""
    return -torch.nn.functional.logsigmoid(r_chosen - r_rejected).mean()


def linear_decay(step: int, total_steps: int) -> float:
    """Learning-rate factor of 0-based ``step``: linear from 1 to 0 over ``total_steps``, no warmup
    (``transformers.get_linear_schedule_with_warmup`` with 0 warmup steps)."""
    return max(0.0, (total_steps - step) / max(1, total_steps))


def head_train_steps(n_pairs: int, batch_size: int, epochs: float) -> tuple[int, int]:
    """``(steps per epoch, total steps)``: ceil(n_pairs / batch_size) and ceil(epochs * that), at
    least 1 (how the HF Trainer counts optimizer steps without gradient accumulation)."""
    per_epoch = math.ceil(n_pairs / batch_size)
    return per_epoch, max(1, math.ceil(epochs * per_epoch))


def head_parameters(model: RewardModel) -> list[torch.nn.Parameter]:
    """The parameters the frozen loop trains: the head's, except the reward's final bias. The
    Bradley-Terry loss depends only on reward differences, so that bias's true gradient is 0 and its
    computed one rounding noise, which Adam would turn into a random walk of up to ``lr`` per step
    (it stays 0, its initial value; rewards are standardised with reward_mean/std downstream)."""
    last = model.score[-1] if isinstance(model.score, torch.nn.Sequential) else model.score
    skip = {id(last.bias)} if last.bias is not None else set()
    return [p for name, p in model.named_parameters() if not name.startswith("backbone.") and id(p) not in skip]


def _torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


@torch.no_grad()
def _features(model: RewardModel, batch: dict[str, torch.Tensor], dtype: torch.dtype, device: torch.device,
              bf16: bool) -> list[torch.Tensor]:
    """Readout inputs of one padded token batch, per text trimmed to its length, on the CPU as ``dtype``."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda"):
        inputs = model.readout_inputs(**{k: v.to(device) for k, v in batch.items()})
    return split_readout_inputs({k: v.cpu() for k, v in inputs.items()}, dtype)


def compute_feature_cache(model: RewardModel, tokenizer, ids: Sequence[list[int]], batch_size: int,
                          dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                          bf16: bool = False) -> list[torch.Tensor]:
    """The frozen backbone's readout inputs for every text of ``ids``, in input order: one (L, n_i, H)
    tensor per text (``dtype``, CPU), computed in length-sorted padded batches."""
    device = torch.device(device)
    model.eval()
    out: list[torch.Tensor | None] = [None] * len(ids)
    for idx, batch in padded_batches(tokenizer, ids, batch_size, desc="caching backbone features"):
        for i, x in zip(idx, _features(model, batch, dtype, device, bf16)):
            out[i] = x
    return out  # type: ignore[return-value]


def cache_nbytes(items: Sequence[torch.Tensor]) -> int:
    """Bytes held by cached features."""
    return sum(x.numel() * x.element_size() for x in items)


def estimate_cache_bytes(lengths: Sequence[int], head: str, n_layers: int, hidden_size: int,
                         bytes_per_value: int) -> int:
    """Bytes the feature cache will hold for texts of ``lengths`` tokens: ``n_layers * hidden_size``
    values per token for the heads that read tokens (``mean``, ``attention``, ``layer_attention``), per
    text for the others (one position per layer)."""
    per_text = [n if head in ("mean", "attention", "layer_attention") else 1 for n in lengths]
    return sum(per_text) * n_layers * hidden_size * bytes_per_value


def available_memory_bytes() -> int | None:
    """``MemAvailable`` of /proc/meminfo (None where there is none)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_cache_fits(needed: int, available: int | None) -> None:
    """PipelineError (one line) when the feature cache cannot fit in the memory available."""
    if available is not None and needed > available:
        raise PipelineError(
            f"rm.freeze_backbone: the feature cache needs {needed / 1e9:.1f} GB but {available / 1e9:.1f} GB of "
            "memory is available; use rm.feature_dtype: bfloat16, fewer rm.attention_layers, a head that reads "
            "one position (last_token, first_token_attention, decoder_output), shorter rm.max_length, or "
            "rm.freeze_backbone: false")


def train_frozen_head(model: RewardModel, tokenizer, chosen: Sequence[list[int]], rejected: Sequence[list[int]],
                      cfg: RMConfig, seed: int, cache: bool = True,
                      device: str | torch.device | None = None) -> dict[str, Any]:
    """Train ``model``'s head (the backbone frozen, in eval mode) on the pairs ``chosen[i]`` >
    ``rejected[i]`` (token ids), with the loop described in the module docstring.

    ``cache=True``: the backbone runs once over all 2N texts first (:func:`compute_feature_cache`); False:
    it runs on each step's texts, through the same trimming and padding. Returns ``train_loss`` (mean
    Bradley-Terry loss over all steps), ``train_steps``, ``feature_cache_s`` / ``feature_cache_mb``
    (0 without a cache) and ``head_train_s``.
    """
    from tqdm.auto import tqdm

    if len(chosen) != len(rejected) or not chosen:
        raise PipelineError(f"frozen RM head: {len(chosen)} chosen but {len(rejected)} rejected texts")
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device).eval()
    dtype = _torch_dtype(cfg.feature_dtype)
    n = len(chosen)
    texts = list(chosen) + list(rejected)  # text i: pair i's chosen; text n + i: its rejected
    start = time.time()
    if cache:
        hidden = model.score[0].in_features if isinstance(model.score, torch.nn.Sequential) \
            else model.score.in_features
        check_cache_fits(estimate_cache_bytes([len(t) for t in texts], model.config.head, model.n_pool_layers,
                                              hidden, torch.empty(0, dtype=dtype).element_size()),
                         available_memory_bytes())
    cached = compute_feature_cache(model, tokenizer, texts, max(cfg.batch_size, 64), dtype, device, cfg.bf16) \
        if cache else None
    cache_s = time.time() - start if cache else 0.0

    def features(text_idx: list[int]) -> dict[str, torch.Tensor]:
        if cached is not None:
            items = [cached[i] for i in text_idx]
        else:
            batch = tokenizer.pad({"input_ids": [list(texts[i]) for i in text_idx]}, return_tensors="pt")
            items = _features(model, {k: batch[k] for k in ("input_ids", "attention_mask")}, dtype, device,
                              cfg.bf16)
        return collate_readout_inputs(items, dtype=model.score_dtype, device=device)

    params = head_parameters(model)
    per_epoch, total = head_train_steps(n, cfg.batch_size, cfg.epochs)
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: linear_decay(step, total))
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    train_start = time.time()
    with tqdm(total=total, desc="RM head (frozen backbone)") as bar:
        while len(losses) < total:
            perm = torch.randperm(n, generator=gen).tolist()
            for s in range(0, n, cfg.batch_size):
                if len(losses) == total:
                    break
                pairs = perm[s:s + cfg.batch_size]
                rewards = model.readout(features(pairs + [n + i for i in pairs])).squeeze(-1).float()
                loss = bradley_terry_loss(rewards[: len(pairs)], rewards[len(pairs):])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM)
                opt.step()
                sched.step()
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
    return {
        "train_loss": float(np.mean(losses)),
        "train_steps": total,
        "steps_per_epoch": per_epoch,
        "feature_cache_s": cache_s,
        "feature_cache_mb": cache_nbytes(cached) / 2**20 if cached is not None else 0.0,
        "head_train_s": time.time() - train_start,
    }


def reward_trainer_config(cfg: RMConfig, seed: int, n_train: int, ckpt_dir: str | os.PathLike | None,
                          scratch_dir: str | os.PathLike) -> Any:
    """TRL's ``RewardConfig`` of one member (``seed``) trained on ``n_train`` pairs:
    :func:`~rlhf_pipeline.trl_args.training_args` of ``cfg`` and about four log lines per epoch."""
    from trl import RewardConfig

    return RewardConfig(
        **training_args(cfg, ckpt_dir, scratch_dir, seed=seed),
        activation_checkpointing=False,  # tiny models; our RewardModel does not support it
        eval_strategy="no",
        logging_steps=max(1, n_train // cfg.batch_size // 4),
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def _train_with_trl(model: RewardModel, tok, chosen, rejected, cfg: RMConfig, seed: int, n_train: int,
                    ckpt_dir) -> tuple[Any, Any]:
    """TRL RewardTrainer over the pairs; returns ``(trainer, resumed_from)``."""
    from datasets import Dataset
    from trl import RewardTrainer

    train_ds = Dataset.from_dict({"chosen_ids": chosen, "rejected_ids": rejected})
    with tempfile.TemporaryDirectory(prefix="rm_trainer_") as scratch:
        args = reward_trainer_config(cfg, seed, n_train, ckpt_dir, scratch)
        trainer = RewardTrainer(model=model, args=args, train_dataset=train_ds, processing_class=tok)
        _, resumed_from = train_resumable(trainer, ckpt_dir, f"RM seed {seed}")
    return trainer, resumed_from


def train_reward_model(cfg: RMConfig, seed: int, prefs_train: str | os.PathLike,
                       prefs_val: str | os.PathLike, sft_model_dir: str | os.PathLike | None,
                       out_dir: str | os.PathLike, ckpt_dir: str | os.PathLike | None = None,
                       cache_features: bool = True) -> dict[str, Any]:
    """Train one proxy RM; write ``out_dir/model/`` (model + tokenizer) and ``out_dir/metrics.json``.

    ``cfg.freeze_backbone``: only the head trains (:func:`train_frozen_head`; ``cache_features=False``
    keeps the frozen backbone in the loop instead of caching its features: the same result, slower;
    for tests and benchmarks); otherwise TRL's RewardTrainer trains the whole model.

    With ``ckpt_dir`` (this seed's own, outside the declared outputs) a TRL run checkpoints about ten
    times, resumes from the newest complete checkpoint there, and on SIGTERM/SIGUSR1 checkpoints and
    raises :class:`~rlhf_pipeline.trainer_checkpoints.Preempted` without writing ``out_dir`` (see
    :mod:`rlhf_pipeline.trainer_checkpoints`); the checkpoints are deleted once ``out_dir`` is written.
    The frozen loop does not checkpoint (a preempted run restarts; see the module docstring).

    Metrics: ``accuracy_gold`` (held-out pairwise accuracy against the gold preference, i.e. noisy
    labels un-flipped), ``accuracy_noisy`` (against the training labels), ``reward_mean`` /
    ``reward_std`` (population std) over every response in the training file (the SFT policy's
    samples; also stored in the saved config for standardising ensemble members), sizes and time,
    ``readout_stack`` (the stack the head read: encoder / decoder / backbone) and ``freeze_backbone``;
    frozen runs add ``train_steps``, ``steps_per_epoch``, ``feature_cache_s``, ``feature_cache_mb``,
    ``head_train_s``, ``cache_features`` and ``feature_dtype`` (``train_time_s`` includes the cache).
    """
    from transformers import AutoConfig, set_seed

    train_rows, val_rows = read_preferences(prefs_train), read_preferences(prefs_val)
    n_pairs = len(train_rows)
    part, parts = (cfg.seeds.index(seed), len(cfg.seeds)) if cfg.data == "disjoint" and seed in cfg.seeds else (0, 1)
    if cfg.data == "disjoint" and seed not in cfg.seeds:
        raise PipelineError(f"rm.data disjoint: seed {seed} is not one of the partition's seeds {cfg.seeds}")
    train_rows = member_pairs(train_rows, cfg.data, seed, part, parts, cfg.member_label_noise)
    source, tok = _backbone_and_tokenizer(cfg, sft_model_dir)
    try:  # a head that cannot apply fails before any weights load
        backbone_config = AutoConfig.from_pretrained(source).to_dict()
    except (OSError, ValueError) as e:
        raise PipelineError(f"rm.init: backbone config of {source!r} cannot be loaded ({e})") from None
    check_head(cfg.head, backbone_config, cfg.readout_stack)

    set_seed(seed)  # before the head is built: its init depends on the seed
    model = RewardModel.from_backbone(source, head=cfg.head, attention_layers=cfg.attention_layers,
                                      readout_stack=cfg.readout_stack, freeze_backbone=cfg.freeze_backbone)
    model.config.reward_max_length = cfg.max_length
    model.config.pad_token_id = tok.pad_token_id

    chosen, rejected = _pair_ids(tok, train_rows, cfg.max_length)

    start = time.time()
    frozen: dict[str, Any] = {}
    if cfg.freeze_backbone:
        frozen = train_frozen_head(model, tok, chosen, rejected, cfg, seed, cache=cache_features)
        train_loss, resumed_from, trainer = frozen.pop("train_loss"), None, None
    else:
        trainer, resumed_from = _train_with_trl(model, tok, chosen, rejected, cfg, seed, len(train_rows), ckpt_dir)
        model = trainer.model
        train_loss = float(trainer.state.log_history[-1].get("train_loss", float("nan"))) \
            if trainer.state.log_history else float("nan")
    train_time = time.time() - start

    # Held-out accuracy and reward statistics, scored exactly as at inference.
    vc, vr = _pair_ids(tok, val_rows, cfg.max_length)
    r_val = score_token_ids(model, tok, vc + vr, batch_size=max(cfg.batch_size, 64), desc="val rewards").numpy()
    r_c, r_r = r_val[: len(vc)], r_val[len(vc):]
    flipped = np.array([bool(r["label_flipped"]) for r in val_rows])
    r_all = score_token_ids(model, tok, chosen + rejected, batch_size=max(cfg.batch_size, 64),
                            desc="policy-sample rewards").numpy()
    reward_mean, reward_std = float(r_all.mean()), float(r_all.std())
    model.config.reward_mean = reward_mean
    model.config.reward_std = reward_std

    metrics = {
        "seed": seed,
        "head": cfg.head,
        "init": cfg.init,
        "n_train": len(train_rows),
        "n_pairs_file": n_pairs,
        "data": cfg.data,
        "member_label_noise": cfg.member_label_noise,
        "member_flipped_fraction": float(np.mean([bool(r["label_flipped"]) for r in train_rows])),
        "n_val": len(val_rows),
        "accuracy_gold": pairwise_accuracy(r_c, r_r, flipped),
        "accuracy_noisy": pairwise_accuracy(r_c, r_r),
        "val_label_noise": float(flipped.mean()),
        "reward_mean": reward_mean,
        "reward_std": reward_std,
        "train_loss": train_loss,
        "train_time_s": train_time,
        "resumed_from": None if resumed_from is None else resumed_from.name,
        "epochs": cfg.epochs,
        "learning_rate": cfg.learning_rate,
        "readout_stack": model.stack,
        "freeze_backbone": cfg.freeze_backbone,
    }
    if cfg.freeze_backbone:
        metrics.update(frozen, cache_features=cache_features, feature_dtype=cfg.feature_dtype)
    save_trained(trainer, model, tok, out_dir, metrics, "metrics.json", ckpt_dir, model_subdir="model")
    return metrics
