"""Assets of the ``coste2023_grpo`` miniature: the same tiny models and AlpacaFarm-shaped data as the ``coste2023``
miniature (:mod:`rlhf_pipeline.miniature.coste2023`; the GRPO experiment is Coste et al.'s setting with another
optimiser), written under ``results/miniature/coste2023_grpo/`` where
``config/experiments/miniature/coste2023_grpo.yaml`` names them."""

from __future__ import annotations

from .coste2023 import make

__all__ = ["make"]
