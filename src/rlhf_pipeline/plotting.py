"""Figures: every family draws with matplotlib's object API (:class:`matplotlib.figure.Figure`, no
pyplot state, so nothing to close and no GUI backend is touched; a figure without a canvas renders
with Agg) and writes with :func:`save_figure`."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .io import atomic_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 120
"""Resolution of every figure the workflow writes."""


def save_figure(fig: Figure, path: str | os.PathLike) -> None:
    """Write ``fig`` as PNG (:data:`DPI`, bounding box tight around what is drawn) atomically: the
    file appears only once complete."""
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
