"""Helpers shared by the real-dataset adapters: loading a source, checking its columns, carving a
held-out split deterministically."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import PipelineError

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

IN_MEMORY = "<in-memory DatasetDict>"
_DATA_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def load_source(name: str, path: str | None, default: str, config_name: str | None = None
                ) -> "DatasetDict":
    """Load dataset ``name`` from ``path`` (or the adapter's ``default`` hub name) as a DatasetDict.

    ``path`` may be a hub name, a directory written by ``DatasetDict.save_to_disk``, a directory of
    data files (split names inferred from file names, e.g. ``train.jsonl``) or one data file (which
    becomes the ``train`` split). ``config_name`` is used only with the default hub name.
    """
    import datasets

    source = path or default
    local = Path(source)
    try:
        if local.is_dir() and (local / "dataset_dict.json").is_file():
            dsd = datasets.load_from_disk(str(local))
        elif local.is_file():
            builder = _DATA_FILE_BUILDERS.get(local.suffix.lower())
            if builder is None:
                raise PipelineError(
                    f"dataset {name}: {source}: unsupported file type {local.suffix!r}; "
                    f"use one of {sorted(_DATA_FILE_BUILDERS)} or a save_to_disk directory"
                )
            dsd = datasets.load_dataset(builder, data_files={"train": str(local)})
        else:
            cfg_name = config_name if source == default else None
            dsd = datasets.load_dataset(source, cfg_name)
    except PipelineError:
        raise
    except Exception as e:  # hub/network/format errors come in many types
        raise PipelineError(f"dataset {name}: cannot load {source!r} ({type(e).__name__}: {e})"
                            ) from None
    if not isinstance(dsd, datasets.DatasetDict):
        raise PipelineError(f"dataset {name}: {source!r} holds a single split, not a DatasetDict "
                            "with named splits")
    return dsd


def require_columns(dsd: "DatasetDict", name: str, source: str,
                    expected: dict[str, list[str]]) -> None:
    """Raise PipelineError unless every split in ``expected`` exists with its expected columns."""
    for split, columns in expected.items():
        if split not in dsd:
            raise PipelineError(
                f"dataset {name} ({source}): no split {split!r}; expected splits "
                f"{list(expected)}, found {list(dsd)}"
            )
        found = list(dsd[split].column_names)
        for col in columns:
            if col not in found:
                raise PipelineError(
                    f"dataset {name} ({source}): split {split!r} has no column {col!r}; "
                    f"expected columns {columns}, found {found}"
                )


def carve(ds: "Dataset", n_out: int, seed: int, tag: str) -> tuple["Dataset", "Dataset"]:
    """Split ``ds`` into (rest, held_out) with ``n_out`` held-out rows chosen by a seeded shuffle.

    Both parts keep the source order. ``tag`` names the carve so different carves differ.
    """
    idx = list(range(len(ds)))
    random.Random(f"{tag}/{seed}").shuffle(idx)
    n_out = max(0, min(n_out, len(idx)))
    return ds.select(sorted(idx[n_out:])), ds.select(sorted(idx[:n_out]))


def val_from_train(dsd: "DatasetDict", fraction: float, seed: int, tag: str
                   ) -> dict[str, "Dataset"]:
    """``train``/``val``/``test`` of a set with only train and test: ``val`` is a seeded ``fraction``
    of ``train`` (at least one row, see :func:`carve`), the rest stays ``train``."""
    n_val = max(1, round(fraction * len(dsd["train"])))
    train, val = carve(dsd["train"], n_val, seed, f"{tag}/val")
    return {"train": train, "val": val, "test": dsd["test"]}


def column(ds: "Dataset", name: str) -> list:
    """A column as a plain Python list."""
    return list(ds[name])
