"""Reward models: readout heads, proxy-RM training (TRL RewardTrainer), the gold RM, ensemble
objectives (mean / WCO / UWO) and a summary of the ensemble.

Importing this package registers :class:`RewardModel` with ``AutoConfig`` and
``AutoModelForSequenceClassification``. Training and scoring entry points are imported lazily
from their modules (``reward.train``, ``reward.gold``, ``reward.ensemble``, ``reward.summary``).
"""

from .config import GoldRMConfig, RMConfig
from .heads import HEADS, RewardModel, RewardModelConfig, register_auto_classes

register_auto_classes()

__all__ = ["HEADS", "GoldRMConfig", "RMConfig", "RewardModel", "RewardModelConfig"]
