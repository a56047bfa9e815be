"""Shared by the red-team tests: a hand-computed BLEU value and an embedder that looks texts up in a table."""

from __future__ import annotations

import math

import numpy as np

# self-BLEU of "a b x y" against the one reference "a b c d", orders 2-5 (worked out in the docstring of
# tests/test_redteam_rewards.py)
ABXY = (math.sqrt(1 / 6) + (1 / 24) ** (1 / 3) + 2 * (1 / 96) ** (1 / 4)) / 4


class LookupEmbed:
    """Embeds texts by a table (texts not in it: by their first word); counts the texts it embedded."""

    def __init__(self, table):
        self.table, self.calls = table, []

    def __call__(self, texts):
        self.calls.extend(texts)
        return np.array([self.table[t] if t in self.table else self.table[t.split()[0]] for t in texts], dtype=float)
