"""PPO runs as named in the config: which proxy RMs a run optimises, and how they are combined.

    ppo:
      hparams: {...}            # PPOConfig keys shared by every run
      runs:
        seed1: {rm_seeds: [1]}                                   # single proxy RM; PPO seed = 1
        ensemble_uwo: {rm_seeds: [1, 2, 3], objective: UWO, uwo_weight: 0.1}
        small_kl: {rm_seeds: [1, 2, 3], objective: WCO, hparams: {kl_coef: 0.01}}

A run's PPO settings are ``ppo.hparams`` updated by the run's own ``hparams``; its seed is the
run's ``seed``, else its single RM's seed, else ``ppo.hparams.seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import section_from_dict
from .errors import PipelineError


@dataclass
class PPORun:
    """One entry of ``ppo.runs``."""

    rm_seeds: list[int]
    """Proxy RM members (their ``rm.seeds`` values) whose scores are combined."""
    objective: str = "mean"
    """mean | WCO | UWO (case-insensitive); with one member all three equal its score."""
    uwo_weight: float = 0.1
    """UWO's lambda: mean - uwo_weight * variance over members (variance divides by K)."""
    seed: int | None = None
    """PPO seed; default: the RM's seed for single-RM runs, else ppo.hparams.seed."""
    hparams: dict[str, Any] = field(default_factory=dict)
    """PPOConfig overrides for this run only."""

    def check(self, name: str, trained_seeds: list[int], objective: bool = True) -> None:
        """PipelineError naming the key for an untrained RM seed, unknown objective, uwo_weight < 0."""
        where = f"ppo.runs.{name}"
        if not self.rm_seeds:
            raise PipelineError(f"{where}.rm_seeds: empty; name at least one of rm.seeds {trained_seeds}")
        missing = [s for s in self.rm_seeds if s not in trained_seeds]
        if missing:
            raise PipelineError(f"{where}.rm_seeds: RM seed(s) {missing} are not trained (rm.seeds = {trained_seeds})")
        if objective:
            from .reward.ensemble import canonical_objective

            try:
                canonical_objective(self.objective)
            except PipelineError as e:
                raise PipelineError(f"{where}.objective: {e}") from None
        if self.uwo_weight < 0:
            raise PipelineError(f"{where}.uwo_weight: {self.uwo_weight} < 0; it must be >= 0")

    def ppo_settings(self, shared: dict[str, Any]) -> dict[str, Any]:
        """The PPOConfig dict of this run (shared hparams, run overrides, run seed)."""
        settings = {**shared, **self.hparams}
        if self.seed is not None:
            settings["seed"] = self.seed
        elif len(self.rm_seeds) == 1:
            settings["seed"] = self.rm_seeds[0]
        return settings


def load_runs(ppo_section: dict[str, Any], trained_seeds: list[int], objective: bool = True) -> dict[str, PPORun]:
    """Parse and check every run of a ``ppo`` config section (``objective=False``: skip the
    objective-name check, which imports torch; the config schema checks it too)."""
    runs = {}
    for name, spec in (ppo_section.get("runs") or {}).items():
        run = section_from_dict(PPORun, spec, f"ppo.runs.{name}")
        run.check(name, trained_seeds, objective=objective)
        runs[name] = run
    return runs
