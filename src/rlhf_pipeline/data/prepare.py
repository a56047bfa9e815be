"""The dataset-prep stage: adapter rows -> validated ``{out_dir}/{train,val,test}.jsonl``."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ..io import write_jsonl
from .config import DatasetConfig
from .registry import get_adapter

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
ROW_FIELDS = ("prompt", "response", "chosen", "rejected")
"""``prompt`` is required; the others appear where the source has them (chosen with rejected)."""


def cap_rows(rows: list[dict[str, Any]], max_rows: int | None, seed: int, split: str
             ) -> list[dict[str, Any]]:
    """At most ``max_rows`` rows: a seeded random subset that keeps the original order."""
    if max_rows is None or len(rows) <= max_rows:
        return rows
    keep = sorted(random.Random(f"max_rows/{split}/{seed}").sample(range(len(rows)), max_rows))
    return [rows[i] for i in keep]


def validate_splits(splits: Mapping[str, Sequence[Any]], what: str, check: Callable[[str, Sequence[Any]], None],
                    required: Sequence[str] = SPLITS, hint: str = "") -> None:
    """The splits of a dataset (:data:`SPLITS`, in that order): each split in ``required`` must have
    rows (PipelineError ``{what}: split 'x' is empty (rows per split: ...); {hint}``), an empty other
    split is logged, and
    ``check(split, rows)`` checks every non-empty split (raising PipelineError)."""
    counts = {split: len(splits.get(split) or []) for split in SPLITS}
    for split in SPLITS:
        rows = splits.get(split) or []
        if rows:
            check(split, rows)
        elif split in required:
            raise PipelineError(f"{what}: split {split!r} is empty (rows per split: {counts})"
                                + (f"; {hint}" if hint else ""))
        else:
            log.warning("%s: split %r is empty", what, split)


def check_adapter_splits(splits: dict[str, list[dict[str, Any]]], name: str) -> None:
    """:func:`validate_splits` of adapter rows: all three splits non-empty, each holding rows of one
    set of :data:`ROW_FIELDS` (string values, a non-empty prompt)."""

    def check(split: str, rows: Sequence[dict[str, Any]]) -> None:
        fields = [f for f in ROW_FIELDS if f in rows[0]]
        if ("chosen" in fields) != ("rejected" in fields):
            raise PipelineError(f"dataset {name}: split {split!r}: 'chosen' and 'rejected' "
                                "must come together")
        for i, row in enumerate(rows):
            if set(row) != set(fields):
                raise PipelineError(
                    f"dataset {name}: split {split!r} row {i}: fields {sorted(row)} differ from "
                    f"the split's fields {fields}; allowed fields {list(ROW_FIELDS)}"
                )
            for f in fields:
                if not isinstance(row[f], str):
                    raise PipelineError(f"dataset {name}: split {split!r} row {i}: field {f!r} "
                                        f"must be a string, got {type(row[f]).__name__}")
            if not row["prompt"]:
                raise PipelineError(f"dataset {name}: split {split!r} row {i}: empty prompt")

    validate_splits(splits, f"dataset {name}", check, hint=f"every split of {list(SPLITS)} needs at least one row "
                    "after conversion (check dataset.path / dataset.max_rows)")


def prepare_dataset(cfg: DatasetConfig, out_dir: str | os.PathLike, seed: int
                    ) -> dict[str, int]:
    """Write ``{out_dir}/{train,val,test}.jsonl`` for dataset ``cfg.name``; return rows per split.

    Everything is loaded, converted, capped to ``cfg.max_rows`` and validated before any file is
    written; each file is written atomically.
    """
    adapter = get_adapter(cfg.name)
    splits = adapter(cfg, seed)
    splits = {s: cap_rows(splits.get(s) or [], cfg.max_rows, seed, s) for s in SPLITS}
    check_adapter_splits(splits, cfg.name)
    out = Path(out_dir)
    for split, rows in splits.items():
        write_jsonl(out / f"{split}.jsonl", rows)
    return {split: len(rows) for split, rows in splits.items()}
