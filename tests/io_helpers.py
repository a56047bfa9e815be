"""A full disk for the tests of writers (test_io, test_ppo_checkpoint, test_trainer_checkpoints): real writes that
run out of space, no library mocked.

"Full" two ways, the ``full`` fixture's two params: a 512 KiB tmpfs mounted for the test (where mounting is
allowed: root on Linux), and, anywhere on Unix, this process's file size limit lowered during the write
(``RLIMIT_FSIZE``: a write past it fails with EFBIG, "file too large"; SIGXFSZ ignored, as Python does).
"""

from __future__ import annotations

import contextlib
import gc
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import RESUMES

CHECKPOINT_HINT = f"({RESUMES})"
"""How a checkpoint's disk-full line ends."""


@dataclass
class Full:
    """A directory whose writes run out of space inside :meth:`writing`."""

    dir: Path
    cause: str
    """The message's cause: "no space left on device" or "file too large"."""
    limit: int | None = None
    """The file size limit (bytes) during :meth:`writing`; None: ``dir`` is a small tmpfs."""

    @contextlib.contextmanager
    def writing(self):
        if self.limit is None:
            yield
            return
        with file_size_limit(self.limit):
            yield


@contextlib.contextmanager
def file_size_limit(limit: int):
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def can_mount() -> bool:
    return sys.platform.startswith("linux") and os.geteuid() == 0


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str):
    """A tmpfs of ``size`` mounted on ``path`` (created); skips the test where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs ({r.stderr.decode().strip()}); the fsize variant covers this")
    try:
        yield path
    finally:
        gc.collect()  # torch's writer keeps its file open until collected
        if subprocess.run(["umount", str(path)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(path)], check=True)


@pytest.fixture(params=["tmpfs", "fsize"])
def full(request, tmp_path) -> Full:
    if request.param == "fsize":
        (tmp_path / "full").mkdir()
        yield Full(tmp_path / "full", "file too large", limit=256 * 1024)
        return
    with small_tmpfs(tmp_path / "full", "512k") as d:
        yield Full(d, "no space left on device")


def one_line(error: BaseException, path: Path, cause: str) -> str:
    """The message of ``error``, asserted to be one PipelineError line naming ``path`` and ``cause``."""
    msg = str(error)
    assert isinstance(error, PipelineError) and "\n" not in msg, repr(msg)
    assert msg.startswith(f"{path}: {cause} while writing ("), msg
    return msg


def staging(directory: Path) -> list[str]:
    """The hidden entries (staging files and folders) of ``directory``."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".")) if directory.is_dir() else []
