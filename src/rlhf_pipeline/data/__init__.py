"""Dataset preparation: a registry of adapters (``synthetic`` is the embedded default) that turn a
source into ``{train,val,test}.jsonl`` rows ``{"prompt"}`` + ``"response"`` / ``"chosen"`` /
``"rejected"`` where the source has them."""

from .config import DatasetConfig, SyntheticConfig
from .prepare import ROW_FIELDS, SPLITS, cap_rows, prepare_dataset, validate_splits
from .registry import ADAPTERS, get_adapter

__all__ = [
    "ADAPTERS",
    "ROW_FIELDS",
    "SPLITS",
    "DatasetConfig",
    "SyntheticConfig",
    "cap_rows",
    "get_adapter",
    "prepare_dataset",
    "validate_splits",
]
