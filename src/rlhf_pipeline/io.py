"""File helpers: JSONL and CSV read/write and outputs that appear only when a stage succeeded.

Every JSON/JSONL file the project writes goes through :func:`write_json` / :func:`write_jsonl`,
and they own two guarantees, so no caller can forget them:

- **secrets**: values under secret-looking keys (:func:`is_secret_key`: ``token``, ``api_key``,
  ``password``, ``secret``, ``credential(s)`` as whole words of the key, so ``hf_token`` and
  ``apiKey`` match but ``tokenizer`` and ``max_new_tokens`` do not) are written as ``<redacted>``,
  and values under URL keys (:func:`is_url_key`: ``base_url``, ``url``) as their public part
  (:func:`split_url`: no user-info, query or fragment, where a server's credentials ride);
- **valid JSON**: NaN and infinities are never written. Data rows (:func:`write_jsonl`) with a
  non-finite number are refused with a PipelineError naming the file, row and key; summaries
  (:func:`write_json`) write them as ``null`` (an undefined metric, e.g. accuracy over no pairs).

Outputs appear whole or not at all (:func:`atomic_file`, :func:`atomic_dir`, which every writer here uses):
written to a hidden staging path next to the target, renamed onto it on success. The next writer of a target
removes the staging that a killed writer left (:func:`remove_stale_staging`), and a write that fails on a full
disk ends with one line naming the target, the cause and the free space (:func:`disk_full_as_error`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import socket
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .errors import DiskFull, PipelineError

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


def is_url_key(key: str) -> bool:
    """True for keys that hold a URL: ``url`` or ``uri`` as the key's last word (``base_url``, ``endpointUrl``)."""
    words = _key_words(key)
    return bool(words) and words[-1] in ("url", "uri")


def split_url(url: str) -> tuple[str, str, str]:
    """``url`` as (its public part: scheme, host, port and path; its user-info; its query), the last two as
    written (``''`` when absent). The fragment is dropped. The one place that says what of a URL may be shown:
    user-info (``user:password@``) and every query parameter may be credentials."""
    bare = "://" not in url  # host:port/path: parsed as a network location all the same
    parts = urlsplit(f"//{url}" if bare else url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    public = urlunsplit((parts.scheme, hostport, parts.path, "", ""))
    return (public.removeprefix("//") if bare else public), userinfo, parts.query


REDACTED = "<redacted>"


def redact(obj: Any) -> Any:
    """Copy of ``obj`` with the values of secret-looking keys (:func:`is_secret_key`) replaced, and the
    text values of URL keys (:func:`is_url_key`) cut to their public part (:func:`split_url`)."""
    if isinstance(obj, dict):
        return {k: (REDACTED if is_secret_key(k) else split_url(v)[0] if is_url_key(k) and isinstance(v, str)
                    else redact(v)) for k, v in obj.items()}
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
    with disk_full_as_error(path), open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write pretty JSON atomically; secrets redacted, non-finite numbers written as null."""
    path = Path(path)
    with atomic_file(path) as tmp:
        clean = _finite(redact(obj), "", "null")
        Path(tmp).write_text(json.dumps(clean, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n")


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a table as CSV atomically: no index column, ``\\n`` line ends on every platform, floats at
    full precision (shortest round-trip repr), NaN and None as empty cells."""
    with atomic_file(path) as tmp:
        df.to_csv(tmp, index=False, lineterminator="\n")


# ---- outputs that appear whole or not at all ----------------------------------------------------

@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    The staging file is ``.{name}.{host}-{pid}.{random}.tmp``; staging files that a killed writer of ``path`` left
    are removed first (:func:`remove_stale_staging`). A full disk fails with one line and nothing at ``path``
    (:func:`disk_full_as_error`)."""
    path = Path(path)
    with disk_full_as_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(path.parent, re.escape(path.name))
        fd, tmp = tempfile.mkstemp(prefix=_staging_prefix(path), suffix=".tmp", dir=path.parent)
        os.close(fd)
    _WRITING.add(os.path.abspath(tmp))
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are shared on clusters
        with disk_full_as_error(path, written=tmp):  # judged while the partial file still fills the disk
            yield tmp
            os.replace(tmp, path)
    finally:
        _WRITING.discard(os.path.abspath(tmp))
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; it replaces ``path`` only on success.

    Staging and clean-up of a killed writer's staging as in :func:`atomic_file`; so is a full disk."""
    path = Path(path)
    with disk_full_as_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(path.parent, re.escape(path.name))
        tmp = Path(tempfile.mkdtemp(prefix=_staging_prefix(path), suffix=".tmp", dir=path.parent))
    _WRITING.add(os.path.abspath(tmp))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        with disk_full_as_error(path, written=tmp):  # judged while the partial files still fill the disk
            yield tmp
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
    finally:
        _WRITING.discard(os.path.abspath(tmp))
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0]) or "host"
_STAGING = r"\.(?:{names})\.(?:(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.)?[a-z0-9_]+\.tmp"
"""A staging path of :func:`atomic_file` / :func:`atomic_dir` (mkstemp's random part is ``[a-z0-9_]``); one
without ``{host}-{pid}`` was made before staging paths said whose they are."""
_WRITING: set[str] = set()
"""This process's staging paths still being written."""


def _staging_prefix(path: Path) -> str:
    return f".{path.name}.{_HOST}-{os.getpid()}."


def remove_stale_staging(directory: str | os.PathLike, names: str) -> None:
    """Remove the staging files and folders in ``directory`` of targets whose name matches the regular expression
    ``names`` that no live writer holds: left by a writer that was killed (SIGKILL, a node failure, a time limit),
    which nothing else would ever remove.

    Whose: a staging path names its writer's host and pid (:func:`atomic_file`). Stale are those of another host
    or without a writer's name (older versions), and those of this host whose process is gone; this process's
    own only when not being written (a pid reused, e.g. in a restarted container). Removing another host's is
    safe because one process at a time writes an output: Snakemake runs one job per output (a retry starts once
    the killed attempt is over), a multi-process stage writes from its main process, and the one file written by
    processes side by side, the stage-hash cache (:mod:`rlhf_pipeline.codegraph`), takes a failed write as
    "compute it again next time"."""
    pattern = re.compile(_STAGING.format(names=names))
    try:
        with os.scandir(directory) as entries:  # one listing, names only: cheap next to the write it precedes
            found = [(Path(e.path), m) for e in entries if e.name.startswith(".") and (m := pattern.fullmatch(e.name))]
    except FileNotFoundError:
        return
    for entry, m in found:
        if not _stale(m, entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()


def _stale(m: re.Match, entry: Path) -> bool:
    if m["pid"] is None or m["host"] != _HOST:
        return True
    pid = int(m["pid"])
    if pid == os.getpid():
        return os.path.abspath(entry) not in _WRITING
    if os.name == "nt":  # os.kill would end the process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, another user's
        return False
    return False


# ---- a full disk --------------------------------------------------------------------------------

_FULL = {errno.ENOSPC: "no space left on device", errno.EFBIG: "file too large",
         **({errno.EDQUOT: "disk quota exceeded"} if hasattr(errno, "EDQUOT") else {})}
_ERRNO_IN_TEXT = re.compile(r"\(os error (\d+)\)|\[Errno (\d+)\]")  # Rust's io::Error (safetensors), Python's
_TORCH_WRITE_FAILED = re.compile(r"PytorchStreamWriter|unexpected pos \d+ vs \d+|iostream error|file write failed")
_PROBE_BYTES = 1 << 20
RESUMES = "the job resumes from the last complete checkpoint"
"""What a checkpoint's disk-full message adds (:func:`disk_full_as_error` with ``resumes``), in parentheses."""


@contextlib.contextmanager
def disk_full_as_error(path: str | os.PathLike, written: str | os.PathLike | None = None,
                       resumes: bool = False) -> Iterator[None]:
    """Turn a write that failed on a full disk into :class:`~rlhf_pipeline.errors.DiskFull`: one line naming
    ``path`` (what was being written), the cause and the free space, e.g. ``results/ppo/single/ckpt/step000004: no
    space left on device while writing (1.2 MB free on /dev/sda1); free space and rerun``. Every other error
    passes unchanged.

    A full disk is an ``OSError`` with ``errno`` ENOSPC, EDQUOT or EFBIG in the exception's chain, or that error
    number in its text (safetensors: ``... (os error 28)``); or torch's zip writer failing (``unexpected pos 3072
    vs 2964``: no errno) where a 1 MiB probe write next to ``written`` (the staging path; default ``path``) fails
    with one of them, or a file under ``written`` has reached the process's file size limit (``ulimit -f``).
    Enter it inside the clean-up of the partial files (they are what fills the disk when it judges). ``resumes``:
    the message adds that the rerun resumes from the last complete checkpoint. A DiskFull of an inner writer is
    named by ``path``."""
    try:
        yield
    except Exception as e:
        error = _disk_full(Path(path), e, Path(path if written is None else written), resumes)
        if error is None:
            raise
        raise error from e


def _disk_full(path: Path, e: Exception, written: Path, resumes: bool) -> DiskFull | None:
    if isinstance(e, DiskFull):
        return DiskFull(path, e.errno, e.cause, e.detail, e.action + (f" ({RESUMES})" if resumes else ""))
    err_no = _full_errno(e, written)
    if err_no is None:
        return None
    if err_no == errno.EFBIG:
        limit = _file_size_limit()
        detail = ("a file reached the largest size this file system allows" if limit is None else
                  f"a file reached this process's file size limit, {_size(limit)} (ulimit -f)")
        action = "raise the limit or write elsewhere, and rerun"
    else:
        directory = _existing_dir(written)
        detail = f"{_size(shutil.disk_usage(directory).free)} free on {_filesystem(directory)}"
        action = "free space and rerun"
    return DiskFull(path, err_no, _FULL[err_no], detail, action + (f" ({RESUMES})" if resumes else ""))


def _full_errno(error: BaseException, written: Path) -> int | None:
    """ENOSPC / EDQUOT / EFBIG if ``error`` (or one in its chain) is a write that failed for want of space."""
    chain, seen = [error], set()
    while chain[-1] is not None and id(chain[-1]) not in seen:
        seen.add(id(chain[-1]))
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    chain = chain[:-1]
    for e in chain:
        if isinstance(e, OSError) and e.errno in _FULL:
            return e.errno
        for m in _ERRNO_IN_TEXT.finditer(str(e)):
            if int(m[1] or m[2]) in _FULL:
                return int(m[1] or m[2])
    if any(isinstance(e, RuntimeError) and _TORCH_WRITE_FAILED.search(str(e)) for e in chain):
        return _at_size_limit(written) or _probe(written)
    return None


def _at_size_limit(written: Path) -> int | None:
    limit = _file_size_limit()
    files = [written] if written.is_file() else written.rglob("*")
    if limit is not None and any(f.is_file() and f.stat().st_size >= limit for f in files):
        return errno.EFBIG
    return None


def _file_size_limit() -> int | None:
    """This process's file size limit (``ulimit -f``) in bytes; None if there is none."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _probe(written: Path) -> int | None:
    """The disk-full errno of writing 1 MiB next to ``written``; None if that succeeds."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".disk-probe.", suffix=".tmp", dir=_existing_dir(written))
    except OSError as e:
        return e.errno if e.errno in _FULL else None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(_PROBE_BYTES))  # not zeros: a compressing file system stores those for free
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        return e.errno if e.errno in _FULL else None
    finally:
        os.unlink(probe)
    return None


def _existing_dir(path: Path) -> Path:
    path = path if path.is_dir() else path.parent
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


def _filesystem(directory: Path) -> str:
    """The device holding ``directory`` (``/dev/sda1``), else its type and mount point (``tmpfs at /scratch``)."""
    target, best = os.path.realpath(directory), None
    try:
        with open("/proc/self/mounts", encoding="utf-8") as f:
            for line in f:
                device, point, fstype = (re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)
                                         for field in line.split()[:3])
                if (target == point or target.startswith(point.rstrip("/") + "/")) and (
                        best is None or len(point) >= len(best[1])):  # the longest; the last mounted on a tie
                    best = (device, point, fstype)
    except (OSError, ValueError):
        pass
    if best is None:  # no /proc (macOS): the mount point
        point = Path(target)
        while not os.path.ismount(point) and point != point.parent:
            point = point.parent
        return str(point)
    device, point, fstype = best
    return device if device.startswith("/") else f"{fstype} at {point}"


def _size(n: float) -> str:
    """``0 B``, ``512 B``, ``1.2 MB``: decimal units, as ``df -H``."""
    if n < 1000:
        return f"{int(n)} B"
    for unit in ("kB", "MB", "GB", "TB"):
        n /= 1000
        if n < 1000 or unit == "TB":
            break
    return f"{n:.1f} {unit}"
