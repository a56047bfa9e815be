"""Content hashes of local model directories: what a fingerprint or a provenance record says about
the weights a result was made with."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

FULL_HASH_BYTES = 2 * 1024**3
"""Weights up to this size (all files together) are hashed in full; larger ones by name and size."""
_WEIGHTS = ("*.safetensors", "*.bin", "*.pt", "*.gguf")


@lru_cache(maxsize=16)
def model_dir_hash(path: str) -> dict[str, Any]:
    """Content hash of a local model directory: sha256 over ``config.json`` and the weight files
    (``hash_of: config+weights``) when the weights total at most :data:`FULL_HASH_BYTES`; larger
    models hash ``config.json``, any ``*.index.json`` and the weight files' names and sizes
    (``hash_of: config+index+sizes``). ``{}`` for a path that is not a directory."""
    root = Path(path)
    if not root.is_dir():
        return {}
    h = hashlib.sha256()
    cfg = root / "config.json"
    if cfg.is_file():
        h.update(b"config.json\0" + cfg.read_bytes())
    weights = sorted({p for pat in _WEIGHTS for p in root.glob(pat) if p.is_file()})
    total = sum(p.stat().st_size for p in weights)
    full = total <= FULL_HASH_BYTES
    if not full:
        for p in sorted(root.glob("*.index.json")):
            h.update(p.name.encode() + b"\0" + p.read_bytes())
    for p in weights:
        h.update(f"{p.name}\0{p.stat().st_size}\0".encode())
        if full:
            with p.open("rb") as f:
                for block in iter(lambda f=f: f.read(1 << 20), b""):
                    h.update(block)
    return {"sha256": h.hexdigest(), "hash_of": "config+weights" if full else "config+index+sizes"}
