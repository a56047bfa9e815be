"""Which training pairs one ensemble member sees (``rm.data``) and its own label noise
(``rm.member_label_noise``): the data-side knobs of ensemble diversity.

- ``all``: every pair, as before (members differ only in seed: head init and data order).
- ``bootstrap``: ``n`` pairs drawn with replacement from the ``n`` pairs, by a generator seeded with
  the member's seed (stream :data:`BOOTSTRAP_STREAM`): about 63% distinct pairs per member.
- ``disjoint``: the pairs, permuted once by a generator seeded with :data:`DISJOINT_SEED` (the same
  permutation for every member), are dealt into ``parts`` parts; member ``part`` takes
  ``perm[part::parts]`` (kept in file order). Parts never share a pair and together hold them all.

Then ``member_label_noise`` flips exactly ``round(noise * len(rows))`` of the member's rows (a subset
seeded by the member's seed, stream :data:`NOISE_STREAM`): chosen and rejected swap, and so do their
gold scores, and ``label_flipped`` toggles (a flipped pair flipped again agrees with gold). These flips
are the member's own, unlike ``preferences.label_noise``, which every member shares, so they make the
members' errors less correlated (the "world knob" of Eisenstein et al. 2023's diversity question).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import default_of
from ..errors import PipelineError
from .config import DATA_MODES, RMConfig

BOOTSTRAP_STREAM = 1
"""First entry of the bootstrap generator's seed sequence ``[BOOTSTRAP_STREAM, seed]``."""
NOISE_STREAM = 2
"""First entry of the member-noise generator's seed sequence ``[NOISE_STREAM, seed]``."""
DISJOINT_SEED = 0
"""Seed of the one permutation the disjoint partition deals from (shared by every member)."""


def member_indices(n: int, mode: str, seed: int, part: int = 0, parts: int = 1) -> np.ndarray:
    """Row indices (into ``n`` pairs) member ``seed`` trains on under ``mode`` (see the module doc)."""
    if mode not in DATA_MODES:
        raise PipelineError(f"rm.data {mode!r}: must be one of {list(DATA_MODES)}")
    if mode == "all":
        return np.arange(n)
    if mode == "bootstrap":
        return np.random.default_rng([BOOTSTRAP_STREAM, seed]).integers(0, n, size=n)
    if not 0 <= part < parts:
        raise PipelineError(f"rm.data disjoint: part {part} of {parts} (must be 0 <= part < parts)")
    if parts > n:
        raise PipelineError(f"rm.data disjoint: {parts} members but only {n} training pairs")
    perm = np.random.default_rng(DISJOINT_SEED).permutation(n)
    return np.sort(perm[part::parts])


def flip_member_labels(rows: list[dict[str, Any]], noise: float, seed: int) -> list[dict[str, Any]]:
    """Copies of ``rows`` with exactly ``round(noise * len(rows))`` seeded rows flipped (toggling
    ``label_flipped``); the others unchanged."""
    n_flip = round(noise * len(rows))
    flip = set(np.random.default_rng([NOISE_STREAM, seed]).choice(len(rows), size=n_flip, replace=False).tolist())
    out = []
    for i, row in enumerate(rows):
        row = dict(row)
        if i in flip:
            row["chosen"], row["rejected"] = row["rejected"], row["chosen"]
            row["gold_chosen"], row["gold_rejected"] = row["gold_rejected"], row["gold_chosen"]
            row["label_flipped"] = not row["label_flipped"]
        out.append(row)
    return out


def member_pairs(rows: list[dict[str, Any]], mode: str, seed: int, part: int = 0, parts: int = 1,
                 label_noise: float = default_of(RMConfig, "member_label_noise")) -> list[dict[str, Any]]:
    """The training pairs of member ``seed``: :func:`member_indices`, then its own label noise."""
    picked = [rows[i] for i in member_indices(len(rows), mode, seed, part, parts)]
    return flip_member_labels(picked, label_noise, seed) if label_noise > 0 else picked
