"""Where a PPO run's wall time goes: :class:`PhaseTimer` over :data:`PHASES` (``train_ppo``'s summary
"phase_seconds"; ``bench/ppo_throughput.py`` prints the shares)."""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch

PHASES = ("generation", "policy_logprobs", "ref_and_value", "scoring", "update", "logging", "eval", "checkpoint")


class PhaseTimer:
    """Wall seconds per phase (:data:`PHASES`): ``with timer("update"): ...``. On GPU each phase ends with a
    synchronisation, so asynchronous kernels count where they ran."""

    def __init__(self):
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self._sync = torch.cuda.synchronize if torch.cuda.is_available() else None

    @contextmanager
    def __call__(self, phase: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self._sync is not None:
                self._sync()
            self.seconds[phase] += time.perf_counter() - t0
