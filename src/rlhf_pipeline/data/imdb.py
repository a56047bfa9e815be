"""IMDB reviews for sentiment-continuation RLHF (``stanfordnlp/imdb``).

Source splits ``train``, ``test`` (and ``unlabeled``, unused) with columns ``text`` and ``label``.
HTML line breaks (``<br />``) become spaces. Each review becomes ``prompt`` = its first k words
(k drawn per row from ``PROMPT_WORDS``, seeded) and ``response`` = the rest; reviews with no words
left for a response are skipped. Splits: ``test`` -> ``test``; ``val`` is carved from ``train`` by a
seeded shuffle (``VAL_FRACTION`` of it, at least one row) and the rest stays ``train``. The source
is ordered by label, so each split's rows are shuffled (seeded): ``max_rows`` and the first n eval prompts
of a stage are then a random subset, not all negative reviews. ``text``
must be a non-empty string (``label`` is not read).

Folder of data files (``dataset.path``): ``train.<ext>`` and ``test.<ext>`` (``<ext>`` =
``.jsonl``, ``.json``, ``.csv`` or ``.parquet``; other files are ignored) with a ``text`` column;
an optional ``val.<ext>`` or ``validation.<ext>`` becomes ``val`` unchanged instead of a carve from
``train``. The same holds for a ``val``/``validation`` split of a ``save_to_disk`` directory.
"""

from __future__ import annotations

import random
import re
from typing import TYPE_CHECKING, Any

from .source import IN_MEMORY, PROJECT_SPLITS, Layout, as_origin, column, load_source, read_splits, train_val_test

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

    from .source import Origin

NAME = "imdb"
DEFAULT_PATH = "stanfordnlp/imdb"
COLUMNS = ["text"]
LAYOUT = Layout(splits=PROJECT_SPLITS, optional="val", columns=COLUMNS, required=("text",))
PROMPT_WORDS = (4, 8)
"""Inclusive range of the number of words a prompt keeps."""
VAL_FRACTION = 0.05

_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


def split_review(text: str, k: int) -> tuple[str, str] | None:
    """``(first k words, the rest)`` of a review, or None when nothing is left for the rest."""
    ws = _BR.sub(" ", text).split()
    if len(ws) <= k:
        return None
    return " ".join(ws[:k]), " ".join(ws[k:])


def _rows(ds: Dataset, split: str, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(f"{NAME}/{split}/{seed}")
    rows = []
    for text in column(ds, "text"):
        parts = split_review(text, rng.randint(*PROMPT_WORDS))
        if parts is not None:
            rows.append({"prompt": parts[0], "response": parts[1]})
    rng.shuffle(rows)  # the source is sorted by label: the first n prompts of a split must not all be negative
    return rows


def convert(dsd: DatasetDict, seed: int, source: str | Origin = IN_MEMORY
            ) -> dict[str, list[dict[str, Any]]]:
    """IMDB DatasetDict -> rows per split (mapping in the module docstring)."""
    picked = read_splits(dsd, as_origin(source, NAME), LAYOUT)
    splits = train_val_test(dsd, picked, VAL_FRACTION, seed, NAME)
    return {split: _rows(ds, split, seed) for split, ds in splits.items()}


def load_rows(cfg, seed: int) -> dict[str, list[dict[str, Any]]]:
    """The ``imdb`` adapter: load ``cfg.path`` (or the hub default) and convert it."""
    dsd, origin = load_source(NAME, cfg.path, DEFAULT_PATH, splits=LAYOUT.names)
    return convert(dsd, seed, origin)
