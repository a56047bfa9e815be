"""Typed view of the ``bon:`` config section (kept apart from the numerics so configs load fast)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Section, bad, setting


@dataclass
class BestOfNConfig(Section):
    """Settings of the best-of-n evaluation (objective and UWO weight come from the PPO run)."""

    section = "bon"

    ns: list[int] = setting(default_factory=lambda: [1, 2, 4, 8, 16], ge=1, min_items=1, unique=True,
                            help="Values of n to evaluate; each must be <= n_samples.")
    standardize: bool = setting(True, help="Standardise each ensemble member's scores (zero mean, unit variance "
                                "over all samples) before combining them, so no member dominates by its scale.")
    n_prompts: int = setting(64, ge=1, help="Held-out prompts to sample for (the first ones of the test split).")
    n_samples: int = setting(16, ge=1, help="N: responses sampled from the SFT policy per prompt (>= max(ns)).")
    max_new_tokens: int = setting(24, ge=1, help="Longest sampled response (match PPO's max_new_tokens).")
    temperature: float = setting(1.0, gt=0, help="Sampling temperature (match PPO's).")
    top_k: int = setting(0, ge=0, help="Top-k sampling (0 = off).")
    batch_size: int = setting(64, ge=1, help="Generation and scoring batch size.")
    seed: int = setting(0, help="Sampling seed.")

    def check(self, where: str) -> None:
        if max(self.ns) > self.n_samples:
            bad(f"{where}.ns", self.ns, f"every n <= {where}.n_samples={self.n_samples}")
