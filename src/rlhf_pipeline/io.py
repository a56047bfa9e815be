"""File helpers: JSONL and CSV read/write and outputs that appear only when a stage succeeded.

Every JSON/JSONL file the project writes goes through :func:`write_json` / :func:`write_jsonl`,
and they own two guarantees, so no caller can forget them:

- **secrets**: values under secret-looking keys (:func:`is_secret_key`: ``token``, ``api_key``,
  ``password``, ``secret``, ``credential(s)`` as whole words of the key, so ``hf_token`` and
  ``apiKey`` match but ``tokenizer`` and ``max_new_tokens`` do not) are written as ``<redacted>``;
- **valid JSON**: NaN and infinities are never written. Data rows (:func:`write_jsonl`) with a
  non-finite number are refused with a PipelineError naming the file, row and key; summaries
  (:func:`write_json`) write them as ``null`` (an undefined metric, e.g. accuracy over no pairs).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import PipelineError

if TYPE_CHECKING:
    import pandas as pd


def read_jsonl(path: str | os.PathLike, required: Iterable[str] = (),
               allow_truncated_tail: bool = False) -> list[dict[str, Any]]:
    """Read a JSONL file; every row must carry the ``required`` fields.

    Raises :class:`PipelineError` naming the file, line and missing field. With
    ``allow_truncated_tail``, an unparsable LAST line (a writer killed mid-line) is skipped with a
    warning instead.
    """
    rows = []
    required = list(required)
    for lineno, row in iter_jsonl(path, allow_truncated_tail):
        missing = [field for field in required if field not in row]
        if missing:
            raise PipelineError(f"{path}:{lineno}: missing field(s) {missing}; rows need {required}")
        rows.append(row)
    return rows


def iter_jsonl(path: str | os.PathLike, allow_truncated_tail: bool = False) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` of every non-blank line of a JSONL file (UTF-8, see
    :func:`read_text`), for readers whose errors name the line; PipelineError naming the file (and the
    line) when it is missing or a line is not JSON. ``allow_truncated_tail``: as in :func:`read_jsonl`."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: file not found")
    lines = [(i, line) for i, line in enumerate(read_text(path).splitlines(), 1) if line.strip()]
    for k, (lineno, line) in enumerate(lines):
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            if allow_truncated_tail and k == len(lines) - 1:
                warnings.warn(f"{path}:{lineno}: skipping truncated last line", stacklevel=3)
                return
            raise PipelineError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        yield lineno, value


def read_text(path: str | os.PathLike) -> str:
    """A text file's content as UTF-8; PipelineError naming the file, line and byte offset of the
    first undecodable byte."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise PipelineError(f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None


_SECRET_WORDS = {"token", "secret", "secrets", "password", "passwd", "credential", "credentials", "apikey",
                 "authorization"}


def _key_words(key: str) -> list[str]:
    """``hfApiKey`` / ``HF_API_KEY`` / ``hf-api-key`` -> ``['hf', 'api', 'key']``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(key))
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def is_secret_key(key: str) -> bool:
    """True for keys that name a secret: ``token``, ``api_key``/``apikey``, ``password``,
    ``secret``, ``credential(s)`` as whole words (``hf_token``, ``OPENAI_API_KEY``); false for
    ``tokenizer``, ``max_new_tokens``, ``key_env`` (the *name* of a variable holding a key)."""
    words = _key_words(key)
    if words and words[-1] == "env":  # e.g. api_key_env: the variable's name, never its value
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any(a == "api" and b == "key" for a, b in pairwise(words))


REDACTED = "<redacted>"


def redact(obj: Any) -> Any:
    """Copy of ``obj`` with the values of secret-looking keys (:func:`is_secret_key`) replaced."""
    if isinstance(obj, dict):
        return {k: (REDACTED if is_secret_key(k) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    return obj


class _NonFinite(ValueError):
    pass


def _finite(obj: Any, key: str, on_nonfinite: str) -> Any:
    """``obj`` with non-finite floats replaced by None (``on_nonfinite="null"``) or refused."""
    if isinstance(obj, float) and not math.isfinite(obj):
        if on_nonfinite == "null":
            return None
        raise _NonFinite(f"{key or 'value'} is {obj}")
    if isinstance(obj, dict):
        return {k: _finite(v, f"{key}.{k}" if key else str(k), on_nonfinite) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v, f"{key}[{i}]", on_nonfinite) for i, v in enumerate(obj)]
    return obj


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as JSONL atomically (temp file in the same directory, then rename); secrets
    redacted, a non-finite number refused (PipelineError naming file, row and key; no file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp, open(tmp, "w") as f:
        for i, row in enumerate(rows, 1):
            try:
                row = _finite(redact(row), "", "raise")
            except _NonFinite as e:
                raise PipelineError(f"{path}: row {i}: {e}; refusing to write invalid JSON") from None
            f.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")


def append_jsonl(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one row as a JSON line and make it durable (flush + fsync) before returning: a
    resumable log that a kill leaves with at most a truncated last line (read it back with
    ``read_jsonl(..., allow_truncated_tail=True)``). Same rules as :func:`write_jsonl`: secrets
    redacted, a non-finite number refused (PipelineError naming the file and key; nothing written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        row = _finite(redact(row), "", "raise")
    except _NonFinite as e:
        raise PipelineError(f"{path}: {e}; refusing to write invalid JSON") from None
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write pretty JSON atomically; secrets redacted, non-finite numbers written as null."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp:
        clean = _finite(redact(obj), "", "null")
        Path(tmp).write_text(json.dumps(clean, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n")


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a table as CSV atomically: no index column, ``\\n`` line ends on every platform, floats at
    full precision (shortest round-trip repr), NaN and None as empty cells."""
    with atomic_file(path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are shared on clusters
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; it replaces ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
