"""Per-stage provenance: what produced a result, so a researcher can tell runs apart later.

Written as ``manifest.json`` next to a stage's outputs: git commit and dirty flag, the hash and
content of the stage's config section, package versions, seed, command line, host and time.
Values of keys that look like secrets (token, key, password, secret) are never written.
"""

from __future__ import annotations

import datetime as _dt
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .config import config_hash
from .io import write_json

PACKAGES = ("rlhf-pipeline", "torch", "transformers", "trl", "accelerate", "datasets", "peft",
            "sentence-transformers", "sacrebleu", "snakemake", "numpy", "pandas")
_SECRET = re.compile(r"(token|secret|password|api[_-]?key|credential)", re.IGNORECASE)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """Commit of the source tree this package runs from, and whether it has uncommitted changes."""
    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "unknown", "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def redact(obj: Any) -> Any:
    """Copy of ``obj`` with the values of secret-looking keys replaced by ``"<redacted>"``."""
    if isinstance(obj, dict):
        return {k: ("<redacted>" if _SECRET.search(str(k)) else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    return obj


def write_manifest(path: str | Path, stage: str, config: dict[str, Any], seed: int | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the provenance record of one stage run to ``path`` and return it."""
    clean = redact(config)
    manifest = {
        "stage": stage,
        "config_hash": config_hash(clean),
        "config": clean,
        "seed": seed,
        "git": git_state(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "host": platform.node(),
        "argv": [a if not _SECRET.search(a) else "<redacted>" for a in sys.argv],
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    write_json(path, manifest)
    return manifest
