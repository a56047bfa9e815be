"""Typed view of the ``dataset:`` config section.

Mirrors ``config/config.yaml``::

    dataset:
      name: synthetic           # one of: synthetic, alpaca_farm, anthropic_hh, imdb
      path: null                # hub name or local path for real sets (null = the adapter's default)
      max_rows: null            # cap rows per split (null = all)
      synthetic: {n_train: 2000, n_val: 200, n_test: 200}

The top-level ``seed`` is not part of this section; the CLI passes it to
:func:`rlhf_pipeline.data.prepare_dataset` separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ..config import check_section_keys
from ..errors import PipelineError


def _check_keys(section: str, d: Any, cls) -> None:
    check_section_keys(cls, d, section)


def _positive_int(key: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        expected = "a positive integer or null" if allow_none else "a positive integer"
        raise PipelineError(f"config {key}: expected {expected}, got {value!r}")


@dataclass
class SyntheticConfig:
    """Sizes of the embedded synthetic dataset (rows per split)."""

    n_train: int = 2000
    """Rows in ``train.jsonl`` (SFT demonstrations; prompts for preference pairs)."""
    n_val: int = 200
    """Rows in ``val.jsonl``."""
    n_test: int = 200
    """Rows in ``test.jsonl`` (held-out prompts for evaluation)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "SyntheticConfig":
        d = {} if d is None else d
        _check_keys("dataset.synthetic", d, cls)
        cfg = cls(**d)
        for f in fields(cls):
            _positive_int(f"dataset.synthetic.{f.name}", getattr(cfg, f.name))
        return cfg


@dataclass
class DatasetConfig:
    """Which dataset to prepare and how much of it."""

    name: str = "synthetic"
    """Registered adapter: ``synthetic``, ``alpaca_farm``, ``anthropic_hh`` or ``imdb``."""
    path: str | None = None
    """Hub name or local path (a ``save_to_disk`` directory, a directory of data files or one data
    file) for real sets; ``None`` = the adapter's default hub name. Ignored by ``synthetic``."""
    max_rows: int | None = None
    """Cap on rows per split (a seeded random subset); ``None`` = all rows."""
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    """Split sizes of the embedded synthetic world (only for ``name: synthetic``)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "DatasetConfig":
        d = {} if d is None else dict(d)
        _check_keys("dataset", d, cls)
        d["synthetic"] = SyntheticConfig.from_dict(d.get("synthetic"))
        cfg = cls(**d)
        if not isinstance(cfg.name, str) or not cfg.name:
            raise PipelineError(f"config dataset.name: expected a dataset name, got {cfg.name!r}")
        if cfg.path is not None and (not isinstance(cfg.path, str) or not cfg.path):
            raise PipelineError(f"config dataset.path: expected a string or null, got {cfg.path!r}")
        _positive_int("dataset.max_rows", cfg.max_rows, allow_none=True)
        return cfg
