"""Seeds derived from values: stable across processes, machines and Python versions (unlike ``hash()``),
so a speech, a judge call or a sampled batch is reproducible from what it is about."""

from __future__ import annotations

import hashlib
from typing import Any


def derive_seed(*parts: Any) -> int:
    """A seed in [0, 2**32): the first four bytes (big-endian) of the SHA-256 of the parts' ``str``
    joined by ``/``."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def mix_seed(*parts: Any) -> int:
    """A 31-bit seed (what ``torch.manual_seed`` and OpenAI-compatible servers take): :func:`derive_seed`
    of ``parts`` without its top bit."""
    return derive_seed(*parts) & 0x7FFFFFFF
