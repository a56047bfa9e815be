"""Every real-scale experiment in miniature: tiny models of the same architecture families and shaped data
files, made here by the project's own code (nothing is downloaded), for the overlays in
``config/experiments/miniature/<experiment>.yaml``.

An overlay names its experiment as its ``base`` and changes sizes only (dotted keys, one leaf each:
model dimensions, rows, steps, lengths, counts, and local paths to the tiny models and data made here);
:func:`check_overlay` enforces that. ``python -m rlhf_pipeline miniature-assets <experiment>`` writes an
experiment's assets under ``results/miniature/<experiment>/`` (the paths its overlay names); experiments
on the embedded world need none. Each experiment with assets has a module here with ``make(out_dir)``.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

ROOT = Path("results/miniature")
"""Where the assets go, relative to the workflow's working directory (the overlays name paths under it)."""


def has_assets(experiment: str) -> bool:
    """True when ``experiment`` needs tiny models or data files of its own (a module here makes them)."""
    return importlib.util.find_spec(f"{__name__}.{experiment}") is not None


def make_assets(experiment: str, root: str | Path = ROOT) -> Path | None:
    """Write ``experiment``'s tiny models and shaped data under ``root/<experiment>/``; None when it needs none."""
    if not has_assets(experiment):
        return None
    out = Path(root) / experiment
    out.mkdir(parents=True, exist_ok=True)
    importlib.import_module(f"{__name__}.{experiment}").make(out)
    return out
