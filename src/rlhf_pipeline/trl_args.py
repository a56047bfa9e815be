"""One mapping from a training config section to the keywords of TRL's trainer configs.

The project's TRL trainers (SFT of the policy and of the debaters: :mod:`rlhf_pipeline.sft`; the proxy
reward models: :mod:`rlhf_pipeline.reward.train`; the debaters' DPO: :mod:`rlhf_pipeline.debate.training`;
the algorithm-distillation LM: :mod:`rlhf_pipeline.ad.lm`) are configured from config sections that
share setting names. :func:`training_args` maps those once, together with the keywords every trainer of
the project shares (:func:`~rlhf_pipeline.trainer_checkpoints.trainer_args`: checkpoints, the seed of
init and data order, no trackers); each trainer adds only its own keywords.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from .trainer_checkpoints import trainer_args

SETTINGS = {
    "epochs": "num_train_epochs",
    "learning_rate": "learning_rate",
    "batch_size": "per_device_train_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "max_length": "max_length",
}
"""Setting of a config section -> the TRL keyword it sets (a section without the setting keeps TRL's default)."""


def training_args(cfg: Any, ckpt_dir: str | Path | None, scratch_dir: str | Path,
                  seed: int | None = None) -> dict[str, Any]:
    """TRL config keywords of a config section (a dataclass): its :data:`SETTINGS`; ``bf16`` mixed
    precision when the section asks for it (its ``bf16``) and a GPU is there (CPUs train in float32);
    a linear learning-rate decay; and :func:`~rlhf_pipeline.trainer_checkpoints.trainer_args` (checkpoints
    in ``ckpt_dir``, else nothing saved beyond ``scratch_dir``; ``seed``, default the section's ``seed``)."""
    import torch

    names = {f.name for f in dataclasses.fields(cfg)}
    return {
        **trainer_args(ckpt_dir, scratch_dir, cfg.seed if seed is None else seed),
        **{keyword: getattr(cfg, name) for name, keyword in SETTINGS.items() if name in names},
        "bf16": bool(getattr(cfg, "bf16", False)) and torch.cuda.is_available(),
        "lr_scheduler_type": "linear",
    }
