"""Per-stage provenance: what produced a result, so a researcher can tell runs apart later.

Written as ``manifest.json`` next to a stage's outputs: git commit and dirty flag, the hash and
content of the stage's config section, package versions, seed, command line, host and time.
Secrets are never written: the manifest goes through :func:`rlhf_pipeline.io.write_json`, which
redacts secret-looking keys everywhere and cuts URL settings (``base_url``) to their public part, and
:func:`redact_argv` does the same on the command line: it hides the value of a secret-looking flag
(``--api-key X``, ``--hf-token=X``), cuts a URL flag's value (``--base-url X``) to its public part, and
applies :func:`rlhf_pipeline.io.redact` inside a JSON ``--config``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .config import config_hash
from .io import REDACTED, is_secret_key, is_url_key, redact, split_url, write_json

PACKAGES = ("rlhf-pipeline", "torch", "transformers", "trl", "accelerate", "datasets", "peft",
            "sentence-transformers", "sacrebleu", "snakemake", "numpy", "pandas")


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


def _flag_value(key: str, value: str) -> str:
    """How the value of a secret-looking or URL flag ``--key`` is recorded."""
    return REDACTED if is_secret_key(key) else split_url(value)[0]


def redact_argv(argv: list[str]) -> list[str]:
    """``argv`` with the values of secret-looking flags hidden, those of URL flags cut to their public part,
    and JSON arguments redacted (:func:`rlhf_pipeline.io.redact`)."""
    out: list[str] = []
    flag_of_next = None  # the secret or URL flag whose value is the next argument
    for arg in argv:
        if flag_of_next is not None:
            out.append(_flag_value(flag_of_next, arg))
            flag_of_next = None
            continue
        flag, eq, value = arg.partition("=")
        key = flag.lstrip("-")
        if arg.startswith("-") and (is_secret_key(key) or is_url_key(key)):
            if eq:
                out.append(f"{flag}={_flag_value(key, value)}")
            else:
                out.append(arg)
                flag_of_next = key
            continue
        if arg.lstrip().startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                arg = json.dumps(redact(json.loads(arg)), sort_keys=True)
        out.append(arg)
    return out


def write_manifest(path: str | Path, stage: str, config: dict[str, Any], seed: int | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the provenance record of one stage run to ``path`` and return it."""
    clean = redact(config)  # hashed after redaction, so the hash never encodes a secret
    manifest = {
        "stage": stage,
        "config_hash": config_hash(clean),
        "config": clean,
        "seed": seed,
        "git": git_state(),
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "host": platform.node(),
        "argv": redact_argv(sys.argv),
        "finished_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    write_json(path, manifest)
    return manifest
