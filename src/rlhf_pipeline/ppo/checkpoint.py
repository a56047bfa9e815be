"""Resumable checkpoints: atomic step directories, the last ``keep`` kept, corrupt ones skipped.

Layout of ``ckpt_dir/step{N:06d}/``: one ``{name}.pt`` per saved object, copies of output files
(train log, eval samples) under ``files/``, and ``manifest.json`` (step and every file's size),
written last. A checkpoint is first written to a hidden temporary directory and renamed into place.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..io import atomic_dir

MANIFEST = "manifest.json"


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and, if present, CUDA) RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states captured by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def step_dir(ckpt_dir: str | os.PathLike, step: int) -> Path:
    return Path(ckpt_dir) / f"step{step:06d}"


def save_checkpoint(ckpt_dir: str | os.PathLike, step: int, objects: dict[str, Any],
                    files: dict[str, str | os.PathLike] | None = None, keep: int = 2,
                    links: dict[str, str | os.PathLike] | None = None) -> Path:
    """Save ``objects`` (torch.save each) and copies of ``files`` as ``step{step:06d}``; prune.

    ``files`` maps a name to a file or directory to copy; missing ones are skipped. ``links``: the
    same, for files that are never changed once written (e.g. trajectory chunks): hard-linked where
    the file system allows, so a checkpoint costs no copy of a growing log.
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = step_dir(ckpt_dir, step)
    with atomic_dir(final) as tmp:  # a checkpoint dir appears whole or not at all
        for name, obj in objects.items():
            torch.save(obj, tmp / f"{name}.pt")
        for name, src in (files or {}).items():
            copy_output(src, tmp / "files" / name)
        for name, src in (links or {}).items():
            copy_output(src, tmp / "files" / name, link=True)
        sizes = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps({"step": step, "sizes": sizes}, indent=1))
    for old in list_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def copy_output(src: str | os.PathLike, dst: str | os.PathLike, link: bool = False) -> None:
    """Copy the file or directory ``src`` to ``dst`` (hard links with ``link``, copies where linking
    fails, e.g. across file systems); hidden temporary files are skipped; a missing ``src`` is a no-op."""
    src, dst = Path(src), Path(dst)
    copy = _link_or_copy if link else shutil.copy2
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=copy, ignore=shutil.ignore_patterns(".*"), dirs_exist_ok=True)
    elif src.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        copy(src, dst)


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def list_checkpoints(ckpt_dir: str | os.PathLike) -> list[Path]:
    """Checkpoint directories, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.glob("step[0-9]*") if p.is_dir())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load every object of one checkpoint; raises if any file is missing, truncated or unreadable.

    Returns ``{"step": int, "dir": Path, name: object, ...}``.
    """
    path = Path(path)
    manifest = json.loads((path / MANIFEST).read_text())
    for rel, size in manifest["sizes"].items():
        actual = (path / rel).stat().st_size
        if actual != size:
            raise ValueError(f"{path / rel}: {actual} bytes, manifest says {size}")
    out: dict[str, Any] = {"step": int(manifest["step"]), "dir": path}
    for f in sorted(path.glob("*.pt")):
        out[f.stem] = torch.load(f, map_location="cpu", weights_only=False)  # our own files
    return out


def load_latest_checkpoint(ckpt_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The newest checkpoint that loads; invalid ones are skipped with a warning. None if none."""
    for path in reversed(list_checkpoints(ckpt_dir)):
        try:
            return load_checkpoint(path)
        except Exception as e:
            warnings.warn(f"skipping invalid checkpoint {path}: {type(e).__name__}: {e}", stacklevel=2)
    return None
