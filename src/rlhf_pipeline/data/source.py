"""Helpers shared by the real-dataset adapters: loading a source, choosing and checking its splits,
columns and text fields, carving a held-out split deterministically.

A local ``dataset.path`` may be

- a directory written by ``DatasetDict.save_to_disk`` (it holds ``dataset_dict.json``);
- a folder of data files, one per split, each named ``<split>.<ext>`` with ``<ext>`` one of
  ``.jsonl``, ``.json``, ``.csv``, ``.parquet`` and ``<split>`` one of the split names the adapter
  reads (its :class:`Layout`, listed in each adapter's module docstring); other files are ignored.
  A folder with no such file (e.g. a downloaded hub snapshot) is handed to ``datasets.load_dataset``,
  which infers split names from its file and folder names;
- one data file, which becomes the ``train`` split.

Bad input raises :class:`PipelineError` with one line naming the file (``path:line`` for a
``.jsonl`` row) or the source, the split, the row (counted from 0, as in ``dataset[i]``) and the
field.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PipelineError

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

IN_MEMORY = "<in-memory DatasetDict>"
_DATA_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
_TEXT_SUFFIXES = (".json", ".jsonl", ".csv")
NON_EMPTY = "a non-empty string"
PROJECT_SPLITS = {"train": ("train",), "val": ("val", "validation"), "test": ("test",)}
"""The project's split names and their accepted source names (a set with native ``train``/``test``)."""


@dataclass(frozen=True)
class Layout:
    """The source splits an adapter reads and the text fields their rows need.

    ``splits`` maps each project split (``train``, ``val``, ``test``) to the source split names
    accepted for it, the source's native name first; exactly one of them must be present, except
    for the ``optional`` project split, which the adapter derives when none is.
    """

    splits: Mapping[str, tuple[str, ...]]
    optional: str
    columns: list[str]
    required: tuple[str, ...]
    """Text fields that must be non-empty strings."""
    nullable: tuple[str, ...] = ()
    """Text fields that may also be null or empty."""

    @property
    def names(self) -> tuple[str, ...]:
        """Every accepted source split name (the file names a folder of data files may hold)."""
        return tuple(n for names in self.splits.values() for n in names)


@dataclass(frozen=True)
class Origin:
    """Where a loaded DatasetDict came from, for error messages."""

    name: str
    """The dataset (adapter) name."""
    label: str = IN_MEMORY
    """``dataset.path`` as given, or the adapter's default hub name."""
    files: Mapping[str, str] = field(default_factory=dict)
    """Source split -> the data file it was loaded from (a folder of data files or one file)."""

    def where(self, split: str, row: int | None = None) -> str:
        """The data file of ``split`` (``file:line`` for a row of a ``.jsonl`` file), else the label."""
        file = self.files.get(split)
        if file is None:
            return self.label
        if row is not None and file.lower().endswith(".jsonl"):
            return f"{file}:{_jsonl_line(Path(file), row)}"
        return file


def as_origin(source: str | Origin, name: str) -> Origin:
    """``source`` as an :class:`Origin` of dataset ``name`` (a plain string is its label)."""
    return source if isinstance(source, Origin) else Origin(name, source)


# --- loading ----------------------------------------------------------------------------------

def load_source(name: str, path: str | None, default: str, config_name: str | None = None,
                splits: tuple[str, ...] = ("train",)) -> tuple[DatasetDict, Origin]:
    """Load dataset ``name`` from ``path`` (or the adapter's ``default`` hub name).

    ``path`` may be a hub name or a local path (see the module docstring); ``splits`` are the split
    names a folder of data files may hold. ``config_name`` is used only with the default hub name.
    Returns the DatasetDict and its :class:`Origin`.
    """
    import datasets

    source = path or default
    local = Path(source)
    if local.is_dir() and (local / "dataset_dict.json").is_file():
        return _load_with_datasets(name, source, lambda: datasets.load_from_disk(source)), Origin(name, source)
    files = {"train": local} if local.is_file() else _split_files(name, local, splits)
    if files:
        return _load_files(name, files), Origin(name, source, {s: str(f) for s, f in files.items()})
    cfg_name = config_name if source == default else None
    return _load_with_datasets(name, source, lambda: datasets.load_dataset(source, cfg_name)), Origin(name, source)


def _split_files(name: str, folder: Path, splits: tuple[str, ...]) -> dict[str, Path]:
    """Split -> ``folder/<split>.<ext>`` for each of ``splits`` that has one (none if no folder)."""
    if not folder.is_dir():
        return {}
    files = {}
    for split in splits:
        found = [f for f in (folder / f"{split}{ext}" for ext in _DATA_FILE_BUILDERS) if f.is_file()]
        if len(found) > 1:
            raise PipelineError(f"dataset {name}: {folder}: split {split!r} has several data files "
                                f"{sorted(p.name for p in found)}; keep one")
        if found:
            files[split] = found[0]
    return files


def _load_files(name: str, files: Mapping[str, Path]) -> DatasetDict:
    """A DatasetDict with one split per data file, each checked before loading."""
    from datasets import DatasetDict

    return DatasetDict({split: _load_file(name, split, file) for split, file in files.items()})


def _load_file(name: str, split: str, file: Path) -> Dataset:
    """One data file as split ``split``; PipelineError naming the file if it cannot be read."""
    import datasets

    builder = _DATA_FILE_BUILDERS.get(file.suffix.lower())
    if builder is None:
        raise PipelineError(
            f"dataset {name}: {file}: unsupported file type {file.suffix!r}; "
            f"use one of {sorted(_DATA_FILE_BUILDERS)} or a save_to_disk directory"
        )
    _check_data_file(name, file)
    try:
        return datasets.load_dataset(builder, data_files={split: str(file)}, split=split)
    except Exception as e:
        raise PipelineError(f"dataset {name}: {file}: cannot load ({_one_line(e)})") from None


def _load_with_datasets(name: str, source: str, load: Callable[[], Any]) -> DatasetDict:
    """``load()`` (a ``datasets`` loader of ``source``), which must give a DatasetDict; a failure
    becomes a one-line PipelineError (naming an empty data file of a local folder if it has one)."""
    import datasets

    try:
        dsd = load()
    except Exception as e:
        if Path(source).is_dir():
            _check_no_empty_file(name, Path(source))
        raise PipelineError(f"dataset {name}: cannot load {source!r} ({_one_line(e)})") from None
    if not isinstance(dsd, datasets.DatasetDict):
        raise PipelineError(f"dataset {name}: {source!r} holds a single split, not a DatasetDict "
                            "with named splits")
    return dsd


def _one_line(e: Exception) -> str:
    """``Type: message`` of an exception, whitespace (newlines included) collapsed."""
    return " ".join(f"{type(e).__name__}: {e}".split())


# --- data file checks -------------------------------------------------------------------------

def _check_data_file(name: str, file: Path) -> None:
    """Raise PipelineError naming ``file`` if it is empty or (a text format) not UTF-8 / only blank
    lines; a UTF-8 error names the line too."""
    if file.stat().st_size == 0:
        raise _empty_file(name, file, "0 bytes")
    if file.suffix.lower() not in _TEXT_SUFFIXES:
        return
    blank = True
    with open(file, "rb") as f:
        for lineno, line in enumerate(f, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise PipelineError(
                    f"dataset {name}: {file}:{lineno}: not valid UTF-8 (byte 0x{line[e.start]:02x} at "
                    f"column {e.start + 1}); data files must be UTF-8 encoded"
                ) from None
            blank = blank and not line.strip()
    if blank:
        raise _empty_file(name, file, "only blank lines")


def _check_no_empty_file(name: str, folder: Path) -> None:
    """Raise PipelineError naming the first 0-byte data file under ``folder`` (any depth): the likely
    cause when ``datasets`` cannot load the folder."""
    for file in sorted(folder.rglob("*")):
        if file.suffix.lower() in _DATA_FILE_BUILDERS and file.is_file() and file.stat().st_size == 0:
            raise _empty_file(name, file, "0 bytes")


def _empty_file(name: str, file: Path, what: str) -> PipelineError:
    """The error for a data file without data."""
    return PipelineError(f"dataset {name}: {file}: empty file ({what}); expected rows of data")


def _jsonl_line(file: Path, row: int) -> int:
    """The line number (from 1) of row ``row`` (from 0) of a JSONL file; blank lines hold no row."""
    seen, lineno = -1, 0
    with open(file, "rb") as f:
        for lineno, line in enumerate(f, 1):
            seen += bool(line.strip())
            if seen == row:
                return lineno
    return lineno + 1


# --- splits, columns, text fields -------------------------------------------------------------

def read_splits(dsd: DatasetDict, origin: Origin, layout: Layout) -> dict[str, str]:
    """Project split -> the source split that provides it (the optional one only if present), after
    checking columns and text fields of each; PipelineError otherwise."""
    picked = {}
    for split, names in layout.splits.items():
        src = _pick_split(dsd, origin, names, required=split != layout.optional)
        if src is not None:
            picked[split] = src
    require_columns(dsd, origin.name, origin.label, dict.fromkeys(picked.values(), layout.columns))
    for src in picked.values():
        check_text(dsd[src], src, origin, layout.required, layout.nullable)
    return picked


def _pick_split(dsd: DatasetDict, origin: Origin, names: tuple[str, ...], required: bool) -> str | None:
    """The one split of ``dsd`` among ``names``; None if none and not ``required``."""
    found = [n for n in names if n in dsd]
    if len(found) > 1:
        raise PipelineError(f"dataset {origin.name} ({origin.label}): splits {found} are alternative "
                            "names of one split; keep one")
    if found:
        return found[0]
    if not required:
        return None
    hint = ""
    if Path(origin.label).is_dir():
        hint = (f" (a folder of data files needs {' or '.join(n + '.<ext>' for n in names)}, "
                f"<ext> one of {sorted(_DATA_FILE_BUILDERS)})")
    raise PipelineError(f"dataset {origin.name} ({origin.label}): no split "
                        f"{' or '.join(map(repr, names))}; found {list(dsd)}{hint}")


def require_columns(dsd: DatasetDict, name: str, source: str,
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


def check_text(ds: Dataset, split: str, origin: Origin, required: tuple[str, ...],
               nullable: tuple[str, ...] = ()) -> None:
    """Raise PipelineError at the first row whose ``required`` field is not a non-empty string
    (null, empty, only whitespace, another type) or whose ``nullable`` field is neither a string nor
    null; it names the file or source, split, row and field."""
    for name, allow_null in [(f, False) for f in required] + [(f, True) for f in nullable]:
        for i, value in enumerate(text_column(ds, split, name, origin)):
            problem = _text_problem(value, allow_null)
            if problem:
                expected = "a string or null" if allow_null else NON_EMPTY
                raise PipelineError(f"dataset {origin.name}: {origin.where(split, i)}: split {split!r} row {i}: "
                                    f"field {name!r} {problem}; expected {expected}")


def _text_problem(value: Any, allow_null: bool) -> str | None:
    """What is wrong with a text field's value, or None."""
    if value is None:
        return None if allow_null else "is null"
    if not isinstance(value, str):
        return f"is a {type(value).__name__} ({value!r:.40})"
    if not allow_null and not value.strip():
        return "is empty" if not value else "holds only whitespace"
    return None


def text_column(ds: Dataset, split: str, name: str, origin: Origin) -> list:
    """Column ``name`` as a list; PipelineError naming the row if a value is not valid UTF-8."""
    try:
        return column(ds, name)
    except UnicodeDecodeError:
        row = _undecodable_row(ds, name)
        raise PipelineError(f"dataset {origin.name}: {origin.where(split, row)}: split {split!r} row {row}: "
                            f"field {name!r} is not valid UTF-8") from None


def _undecodable_row(ds: Dataset, name: str) -> int | None:
    """The first row whose ``name`` value cannot be decoded as UTF-8 (error path only)."""
    part, step = ds.select_columns([name]), 1024
    for start in range(0, len(part), step):
        try:
            part[start:start + step]
        except UnicodeDecodeError:
            for i in range(start, min(start + step, len(part))):
                try:
                    part[i]
                except UnicodeDecodeError:
                    return i
    return None


def column(ds: Dataset, name: str) -> list:
    """A column as a plain Python list."""
    return list(ds[name])


# --- held-out splits --------------------------------------------------------------------------

def carve(ds: Dataset, n_out: int, seed: int, tag: str) -> tuple[Dataset, Dataset]:
    """Split ``ds`` into (rest, held_out) with ``n_out`` held-out rows chosen by a seeded shuffle.

    Both parts keep the source order. ``tag`` names the carve so different carves differ.
    """
    idx = list(range(len(ds)))
    random.Random(f"{tag}/{seed}").shuffle(idx)
    n_out = max(0, min(n_out, len(idx)))
    return ds.select(sorted(idx[n_out:])), ds.select(sorted(idx[:n_out]))


def val_from_train(dsd: DatasetDict, fraction: float, seed: int, tag: str
                   ) -> dict[str, Dataset]:
    """``train``/``val``/``test`` of a set with only train and test: ``val`` is a seeded ``fraction``
    of ``train`` (at least one row, see :func:`carve`), the rest stays ``train``."""
    n_val = max(1, round(fraction * len(dsd["train"])))
    train, val = carve(dsd["train"], n_val, seed, f"{tag}/val")
    return {"train": train, "val": val, "test": dsd["test"]}


def train_val_test(dsd: DatasetDict, picked: Mapping[str, str], fraction: float, seed: int, tag: str
                   ) -> dict[str, Dataset]:
    """The project splits of a set whose ``val`` is optional (see :func:`read_splits`): the source's
    own ``val`` split when it has one, else :func:`val_from_train`."""
    if "val" in picked:
        return {split: dsd[picked[split]] for split in ("train", "val", "test")}
    return val_from_train(dsd, fraction, seed, tag)
