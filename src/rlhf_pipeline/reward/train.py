"""Train one proxy reward model (one ensemble member) with TRL's ``RewardTrainer``.

Members of an ensemble differ ONLY in their seed: it sets the head's initialisation and the data
order (``transformers.set_seed`` before the model is built; ``RewardConfig.seed``/``data_seed``).

Texts are tokenised by :func:`~rlhf_pipeline.reward.heads.encode_for_reward` (``join_text``,
right truncation, EOS appended) and handed to the trainer as ``chosen_ids``/``rejected_ids``, so
training and inference (:class:`~rlhf_pipeline.reward.ensemble.EnsembleReward`) read text
identically. Loss: Bradley-Terry, -log sigmoid(r_chosen - r_rejected) (TRL's).
Preemption (checkpoints, SIGTERM/SIGUSR1, resume): :mod:`rlhf_pipeline.trainer_checkpoints`.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import PipelineError
from ..io import atomic_dir, read_jsonl, write_json
from ..models import load_tokenizer, resolve_name
from ..trainer_checkpoints import checkpoint_args, remove_checkpoints, train_resumable
from .config import RMConfig
from .heads import RewardModel, encode_for_reward, score_token_ids

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


def train_reward_model(cfg: RMConfig, seed: int, prefs_train: str | os.PathLike,
                       prefs_val: str | os.PathLike, sft_model_dir: str | os.PathLike | None,
                       out_dir: str | os.PathLike, ckpt_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train one proxy RM; write ``out_dir/model/`` (model + tokenizer) and ``out_dir/metrics.json``.

    With ``ckpt_dir`` (this seed's own, outside the declared outputs) the run checkpoints about ten
    times, resumes from the newest complete checkpoint there, and on SIGTERM/SIGUSR1 checkpoints and
    raises :class:`~rlhf_pipeline.trainer_checkpoints.Preempted` without writing ``out_dir`` (see
    :mod:`rlhf_pipeline.trainer_checkpoints`); the checkpoints are deleted once ``out_dir`` is written.

    Metrics: ``accuracy_gold`` (held-out pairwise accuracy against the gold preference, i.e. noisy
    labels un-flipped), ``accuracy_noisy`` (against the training labels), ``reward_mean`` /
    ``reward_std`` (population std) over every response in the training file (the SFT policy's
    samples; also stored in the saved config for standardising ensemble members), sizes and time.
    """
    from datasets import Dataset
    from transformers import set_seed
    from trl import RewardConfig, RewardTrainer

    train_rows, val_rows = read_preferences(prefs_train), read_preferences(prefs_val)
    source, tok = _backbone_and_tokenizer(cfg, sft_model_dir)

    set_seed(seed)  # before the head is built: its init depends on the seed
    model = RewardModel.from_backbone(source, head=cfg.head, attention_layers=cfg.attention_layers)
    model.config.reward_max_length = cfg.max_length
    model.config.pad_token_id = tok.pad_token_id

    chosen, rejected = _pair_ids(tok, train_rows, cfg.max_length)
    train_ds = Dataset.from_dict({"chosen_ids": chosen, "rejected_ids": rejected})

    start = time.time()
    with tempfile.TemporaryDirectory(prefix="rm_trainer_") as scratch:
        args = RewardConfig(
            **checkpoint_args(ckpt_dir, scratch),
            num_train_epochs=cfg.epochs,
            per_device_train_batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            seed=seed,
            data_seed=seed,
            bf16=cfg.bf16,
            max_length=cfg.max_length,
            activation_checkpointing=False,  # tiny models; our RewardModel does not support it
            eval_strategy="no",
            report_to="none",
            logging_steps=max(1, len(train_rows) // cfg.batch_size // 4),
            dataloader_num_workers=0,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
        trainer = RewardTrainer(model=model, args=args, train_dataset=train_ds, processing_class=tok)
        _, resumed_from = train_resumable(trainer, ckpt_dir, f"RM seed {seed}")
    train_time = time.time() - start
    model = trainer.model

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
        "n_val": len(val_rows),
        "accuracy_gold": pairwise_accuracy(r_c, r_r, flipped),
        "accuracy_noisy": pairwise_accuracy(r_c, r_r),
        "val_label_noise": float(flipped.mean()),
        "reward_mean": reward_mean,
        "reward_std": reward_std,
        "train_loss": float(trainer.state.log_history[-1].get("train_loss", float("nan")))
        if trainer.state.log_history else float("nan"),
        "train_time_s": train_time,
        "resumed_from": None if resumed_from is None else resumed_from.name,
        "epochs": cfg.epochs,
        "learning_rate": cfg.learning_rate,
    }
    if trainer.is_world_process_zero():  # under `accelerate launch`, one process writes
        with atomic_dir(out_dir) as tmp:
            model.save_pretrained(tmp / "model")
            tok.save_pretrained(tmp / "model")
            write_json(tmp / "metrics.json", metrics)
        remove_checkpoints(ckpt_dir)
    trainer.accelerator.wait_for_everyone()
    return metrics
