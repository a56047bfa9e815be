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

from dataclasses import dataclass

from ..config import Section, bad, setting

DATASET_NAMES = ("synthetic", "alpaca_farm", "anthropic_hh", "imdb")
"""Registered adapters (:mod:`rlhf_pipeline.data.registry`; a test keeps the two equal)."""


@dataclass
class SyntheticConfig(Section):
    """Sizes of the embedded synthetic dataset (rows per split)."""

    section = "dataset.synthetic"

    n_train: int = setting(2000, ge=1, help="Rows in train.jsonl (SFT demonstrations; prompts for preference pairs).")
    n_val: int = setting(200, ge=1, help="Rows in val.jsonl.")
    n_test: int = setting(200, ge=1, help="Rows in test.jsonl (held-out prompts for evaluation).")


@dataclass
class DatasetConfig(Section):
    """Which dataset to prepare and how much of it."""

    section = "dataset"

    name: str = setting("synthetic", choices=DATASET_NAMES, help="Registered dataset adapter.")
    path: str | None = setting(None, help="Hub name or local path for real sets; null = the adapter's default hub "
                               "name; ignored by synthetic. A local path is a save_to_disk directory, one data file "
                               "(the train split) or a folder of data files, one per split, named <split>.<ext> "
                               "(.jsonl, .json, .csv or .parquet): train/val/test for every real set, sft for "
                               "alpaca_farm (each adapter's module docstring lists the names it reads).")
    max_rows: int | None = setting(None, ge=1, help="Cap on rows per split (a seeded random subset); null = all rows.")
    synthetic: SyntheticConfig = setting(default_factory=SyntheticConfig,
                                         help="Split sizes of the embedded synthetic world (only for name: synthetic).")

    def check(self, where: str) -> None:
        if self.path is not None and not self.path.strip():
            bad(f"{where}.path", self.path, "a hub name, a local path, or null")
