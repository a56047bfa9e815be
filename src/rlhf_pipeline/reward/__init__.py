"""Reward models: readout heads, proxy-RM training (TRL RewardTrainer), the gold RM, ensemble
objectives (mean / WCO / UWO) and a summary of the ensemble.

Importing :mod:`rlhf_pipeline.reward.heads` (which every module that builds or loads a reward model
does) registers :class:`RewardModel` with ``AutoConfig`` and ``AutoModelForSequenceClassification``.
The package itself imports torch only when a model class is asked for, so the config classes load
fast at plan time.
"""

from .config import HEAD_NAMES, GoldRMConfig, RMConfig

__all__ = ["HEADS", "HEAD_NAMES", "GoldRMConfig", "RMConfig", "RewardModel", "RewardModelConfig"]


def __getattr__(name: str):
    if name in ("HEADS", "RewardModel", "RewardModelConfig", "register_auto_classes"):
        from . import heads

        return getattr(heads, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
