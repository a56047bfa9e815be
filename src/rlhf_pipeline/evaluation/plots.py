"""Figures of reward against KL: one PPO run, and all runs with best-of-n (overoptimization).

The x axis is d = sqrt(KL(policy || initial policy)) in nats, as in Gao et al. 2022, whose
functional forms are gold(d) = d(alpha - beta log d) for RL and d(alpha - beta d) for best-of-n.
Figures are drawn with matplotlib's object API (no pyplot state; rendered by Agg) and written
atomically.
"""

from __future__ import annotations

import os

import pandas as pd
from matplotlib.figure import Figure

from ..errors import PipelineError
from ..io import atomic_file

X_COL = "sqrt_kl"
X_LABEL = r"$d=\sqrt{\mathrm{KL}(\pi\,\|\,\pi_{\mathrm{init}})}$  (nats$^{1/2}$)"
DPI = 120


def _line(ax, df: pd.DataFrame, y: str, label: str, color, style: str = "-", marker: str = "o"):
    """A mean curve against d, in row order (PPO: by step, best-of-n: by n), with a shaded
    +-1 standard error band when the ``{y}_se`` column exists."""
    ax.plot(df[X_COL], df[y], style, marker=marker, ms=4, color=color, label=label)
    se = f"{y}_se"
    if se in df:
        lo, hi = df[y] - df[se].fillna(0), df[y] + df[se].fillna(0)
        ax.fill_between(df[X_COL], lo, hi, color=color, alpha=0.2, linewidth=0)


def _save(fig: Figure, out_png: str | os.PathLike) -> None:
    with atomic_file(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")


def plot_gold_vs_kl(df: pd.DataFrame, out_png: str | os.PathLike, title: str) -> None:
    """Proxy and gold reward (+-1 SE bands) against d = sqrt(KL) for one PPO run (gold_eval.csv).

    Proxy and gold live on different scales, so each gets its own y axis (proxy on the right).
    """
    if df.empty:
        raise PipelineError(f"plot {out_png}: no eval steps to plot")
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    ax_proxy = ax.twinx()
    gold_c, proxy_c = "tab:blue", "tab:orange"
    _line(ax, df, "gold_reward", "gold reward", gold_c)
    _line(ax_proxy, df, "proxy_reward", "proxy reward (objective)", proxy_c, "--", "s")
    ax.set_xlabel(X_LABEL)
    ax.set_ylabel("gold reward", color=gold_c)
    ax_proxy.set_ylabel("proxy reward", color=proxy_c)
    ax.grid(alpha=0.3)
    handles = ax.get_legend_handles_labels()[0] + ax_proxy.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="best", fontsize=9)
    ax.set_title(title)
    _save(fig, out_png)


def plot_overoptimization(
    runs: dict[str, pd.DataFrame], bon: dict[str, pd.DataFrame], out_png: str | os.PathLike
) -> None:
    """All runs on one figure: gold (left) and proxy (right) reward against d = sqrt(KL).

    ``runs``: run name -> gold_eval table (solid lines); ``bon``: name -> best-of-n table (dashed,
    the same colour as the PPO run of the same name). Proxy rewards of different objectives are
    on different scales; compare shapes, not levels, in the right panel.
    """
    if not runs and not bon:
        raise PipelineError(f"plot {out_png}: no PPO runs and no best-of-n results to plot")
    names = list(dict.fromkeys([*runs, *bon]))
    colors = {name: f"C{i % 10}" for i, name in enumerate(names)}
    fig = Figure(figsize=(12, 4.8))
    ax_gold, ax_proxy = fig.subplots(1, 2)
    for ax, y in [(ax_gold, "gold_reward"), (ax_proxy, "proxy_reward")]:
        for name, df in runs.items():
            _line(ax, df, y, f"{name} (PPO)", colors[name])
        for name, df in bon.items():
            _line(ax, df, y, f"{name} (best-of-n)", colors[name], "--", "^")
        ax.set_xlabel(X_LABEL)
        ax.grid(alpha=0.3)
    ax_gold.set_ylabel("gold reward")
    ax_gold.set_title("Gold reward (what we want)")
    ax_proxy.set_ylabel("proxy reward (each run's objective)")
    ax_proxy.set_title("Proxy reward (what is optimised)")
    ax_gold.legend(loc="best", fontsize=8)
    fig.suptitle("Reward-model overoptimization: PPO (solid) and best-of-n (dashed)")
    _save(fig, out_png)
