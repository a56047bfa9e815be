"""Anthropic Helpful-Harmless preferences (``Anthropic/hh-rlhf``).

Source splits ``train`` and ``test`` with columns ``chosen`` and ``rejected``, each a full
transcript ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``. Each pair becomes

- ``prompt``: the shared prefix up to and including the last ``"\\n\\nAssistant:"`` of the longest
  common prefix of both transcripts;
- ``chosen`` / ``rejected``: the remainders with leading whitespace removed (so
  ``join_text(prompt, chosen)`` restores the transcript);
- ``response`` = ``chosen`` (the demonstration for SFT).

Pairs without an ``"\\n\\nAssistant:"`` turn in their shared prefix are skipped (counted in the
log). Splits: ``test`` -> ``test``; ``val`` is carved from ``train`` by a seeded shuffle
(``VAL_FRACTION`` of it, at least one row) and the rest stays ``train``. ``chosen`` and
``rejected`` must be non-empty strings.

Folder of data files (``dataset.path``; ``<ext>`` = ``.jsonl``, ``.json``, ``.csv`` or ``.parquet``,
other files ignored): ``train.<ext>`` and ``test.<ext>`` with ``chosen``/``rejected``, plus
optionally ``val.<ext>`` or ``validation.<ext>``, which is then ``val`` as it is (nothing carved);
a ``val``/``validation`` split of a ``save_to_disk`` directory is used the same way.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from .source import IN_MEMORY, PROJECT_SPLITS, Layout, as_origin, column, load_source, read_splits, train_val_test

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

    from .source import Origin

NAME = "anthropic_hh"
DEFAULT_PATH = "Anthropic/hh-rlhf"
COLUMNS = ["chosen", "rejected"]
LAYOUT = Layout(splits=PROJECT_SPLITS, optional="val", columns=COLUMNS, required=("chosen", "rejected"))
ASSISTANT = "\n\nAssistant:"
VAL_FRACTION = 0.05

log = logging.getLogger(__name__)


def split_pair(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """``(prompt, chosen_response, rejected_response)`` of two transcripts, or None if the shared
    prefix has no assistant turn."""
    shared = os.path.commonprefix([chosen, rejected])  # noqa: RUF071  (char-wise intended; cut at last ASSISTANT)
    cut = shared.rfind(ASSISTANT)
    if cut < 0:
        return None
    end = cut + len(ASSISTANT)
    return chosen[:end], chosen[end:].lstrip(), rejected[end:].lstrip()


def _rows(ds: Dataset, split: str) -> list[dict[str, Any]]:
    rows, skipped = [], 0
    for c, r in zip(column(ds, "chosen"), column(ds, "rejected")):
        parts = split_pair(c, r)
        if parts is None:
            skipped += 1
            continue
        prompt, chosen, rejected = parts
        rows.append({"prompt": prompt, "response": chosen, "chosen": chosen, "rejected": rejected})
    if skipped:
        log.warning("%s %s: skipped %d pair(s) without a shared '\\n\\nAssistant:' turn",
                    NAME, split, skipped)
    return rows


def convert(dsd: DatasetDict, seed: int, source: str | Origin = IN_MEMORY
            ) -> dict[str, list[dict[str, Any]]]:
    """HH-RLHF DatasetDict -> rows per split (mapping in the module docstring)."""
    picked = read_splits(dsd, as_origin(source, NAME), LAYOUT)
    splits = train_val_test(dsd, picked, VAL_FRACTION, seed, NAME)
    return {split: _rows(ds, split) for split, ds in splits.items()}


def load_rows(cfg, seed: int) -> dict[str, list[dict[str, Any]]]:
    """The ``anthropic_hh`` adapter: load ``cfg.path`` (or the hub default) and convert it."""
    dsd, origin = load_source(NAME, cfg.path, DEFAULT_PATH, splits=LAYOUT.names)
    return convert(dsd, seed, origin)
