"""Dataset name -> adapter. Adding a dataset = one module with ``load_rows`` + one line here.

An adapter is ``load_rows(cfg: DatasetConfig, seed: int) -> {"train"|"val"|"test": [row, ...]}``
with rows ``{"prompt": str}`` plus, where the source has them, ``"response"`` (an SFT
demonstration) and ``"chosen"``/``"rejected"`` (responses only, without the prompt).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import PipelineError
from . import alpaca_farm, anthropic_hh, imdb, synthetic

Rows = dict[str, list[dict[str, Any]]]
Adapter = Callable[[Any, int], Rows]

ADAPTERS: dict[str, Adapter] = {
    "synthetic": synthetic.load_rows,
    "alpaca_farm": alpaca_farm.load_rows,
    "anthropic_hh": anthropic_hh.load_rows,
    "imdb": imdb.load_rows,
}


def get_adapter(name: str) -> Adapter:
    """The adapter registered as ``name``; PipelineError listing the registered names otherwise."""
    try:
        return ADAPTERS[name]
    except (KeyError, TypeError):
        raise PipelineError(
            f"config dataset.name: unknown dataset {name!r}; registered datasets: {sorted(ADAPTERS)}"
        ) from None
