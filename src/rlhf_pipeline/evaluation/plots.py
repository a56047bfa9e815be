"""Figures of reward against KL: one PPO run, and all runs with best-of-n (overoptimization).

The x axis is d = sqrt(KL(policy || initial policy)) in nats, as in Gao et al. 2022, whose
functional forms are gold(d) = d(alpha - beta log d) for RL and d(alpha - beta d) for best-of-n.
Figures are drawn with matplotlib's object API (no pyplot state; rendered by Agg) and written
atomically.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import PipelineError
from ..plotting import save_figure

X_COL = "sqrt_kl"
X_LABEL = r"$d=\sqrt{\mathrm{KL}(\pi\,\|\,\pi_{\mathrm{init}})}$  (nats$^{1/2}$)"


def _line(ax, df: pd.DataFrame, y: str, label: str, color, style: str = "-", marker: str = "o"):
    """A mean curve against d, in row order (PPO: by step, best-of-n: by n), with a shaded band:
    the 95% interval when ``{y}_lo``/``{y}_hi`` exist (a replicate aggregate), else +-1 standard
    error when the ``{y}_se`` column exists."""
    ax.plot(df[X_COL], df[y], style, marker=marker, ms=4, color=color, label=label)
    se = f"{y}_se"
    if f"{y}_lo" in df and f"{y}_hi" in df:
        lo, hi = df[f"{y}_lo"], df[f"{y}_hi"]
    elif se in df:
        lo, hi = df[y] - df[se].fillna(0), df[y] + df[se].fillna(0)
    else:
        return
    ax.fill_between(df[X_COL], lo, hi, color=color, alpha=0.2, linewidth=0)


def _fitted(ax, fit: pd.Series, color, style: str) -> None:
    """A Gao et al. fit (a fits.csv row) from d = 0 to its largest fitted d: gold_start + R(d)."""
    from .fits import FUNCTIONS

    d = np.linspace(0.0, float(fit["d_max"]), 60)
    ax.plot(d, float(fit["gold_start"]) + FUNCTIONS[fit["form"]](d, float(fit["alpha"]), float(fit["beta"])),
            style, color=color, linewidth=1.2, alpha=0.9)


def _diversity_panel(ax, div: pd.DataFrame) -> None:
    """Bars: mean pairwise member error correlation (held-out pairs) per member group, and the
    disagreement-error correlation on PPO samples per ensemble run."""
    held = div[(div["scope"] == "heldout_pairs") & (div["measure"] == "mean_error_corr")]
    ppo = div[(div["scope"] == "ppo_eval") & (div["measure"] == "disagreement_error_pearson")]
    labels = [f"members {s}: error corr" for s in held["subject"]] + [f"{s}: var~(proxy-gold)" for s in ppo["subject"]]
    values = list(held["value"]) + list(ppo["value"])
    colors = ["tab:gray"] * len(held) + ["tab:purple"] * len(ppo)
    ax.barh(range(len(values)), values, color=colors)
    ax.set_yticks([])
    for i, label in enumerate(labels):  # inside the panel: long labels would run into the proxy panel
        ax.text(-0.97, i, label, va="center", ha="left", fontsize=8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlim(-1, 1)
    ax.invert_yaxis()
    ax.set_xlabel("Pearson correlation")
    ax.set_title("Ensemble diversity (results/rm/diversity.csv)")


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
    save_figure(fig, out_png)


OPTIMIZER_LABELS = {"ppo": "PPO", "grpo": "GRPO", "rloo": "RLOO", "online_dpo": "online DPO"}
"""How a run's optimiser (``ppo.runs.<run>.optimizer``) is named on figures; another name is shown as given."""


def _optimizer_label(optimizers: dict[str, str] | None, run: str) -> str:
    optimizer = (optimizers or {}).get(run, "ppo")
    return OPTIMIZER_LABELS.get(optimizer, optimizer)


def plot_overoptimization(
    runs: dict[str, pd.DataFrame], bon: dict[str, pd.DataFrame], out_png: str | os.PathLike,
    fits: pd.DataFrame | None = None, diversity: pd.DataFrame | None = None,
    groups: list[list[str]] | None = None, optimizers: dict[str, str] | None = None,
) -> None:
    """All runs on one figure: gold (left) and proxy (middle) reward against d = sqrt(KL).

    ``runs``: run name -> gold_eval table or replicate aggregate (solid lines; bands: the aggregate's
    95% interval, else +-1 SE over prompts); ``bon``: name -> best-of-n table (dashed, the same colour
    as the PPO run of the same name). ``fits`` (fits.csv): each run's fitted Gao et al. curve, drawn
    in the gold panel (dotted: PPO, dash-dot: best-of-n). ``diversity`` (diversity.csv): a third panel
    of the ensemble diagnostics. ``groups``: runs drawn together, one row of panels per group (e.g. one
    per ensemble regime; :meth:`rlhf_pipeline.runs.PPOSection.comparison_groups`); None: one row of all.
    ``optimizers``: run name -> its optimiser (``ppo.runs.<run>.optimizer``), named in its label (default ppo).
    Proxy rewards of different objectives are on different scales; compare shapes, not levels, in the
    proxy panel.
    """
    if not runs and not bon:
        raise PipelineError(f"plot {out_png}: no PPO runs and no best-of-n results to plot")
    names = list(dict.fromkeys([*runs, *bon]))
    groups = [g for g in (groups or [names]) if any(n in names for n in g)] or [names]
    colors = {}
    for group in groups:  # the same colour for the i-th run of every group (e.g. single, mean, WCO, UWO)
        colors.update({name: f"C{i % 10}" for i, name in enumerate(group)})
    colors.update({name: f"C{i % 10}" for i, name in enumerate(names) if name not in colors})
    panels = 3 if diversity is not None and not diversity.empty else 2
    fig = Figure(figsize=(6 * panels, 4.8 * len(groups)), layout="constrained")  # rows' titles clear the labels
    axes = np.atleast_2d(fig.subplots(len(groups), panels))
    for row, group in enumerate(groups):
        ax_gold, ax_proxy = axes[row, 0], axes[row, 1]
        for ax, y in [(ax_gold, "gold_reward"), (ax_proxy, "proxy_reward")]:
            for name, df in runs.items():
                if name in group:
                    _line(ax, df, y, f"{name} ({_optimizer_label(optimizers, name)})", colors[name])
            for name, df in bon.items():
                if name in group:
                    _line(ax, df, y, f"{name} (best-of-n)", colors[name], "--", "^")
            ax.set_xlabel(X_LABEL)
            ax.grid(alpha=0.3)
        if fits is not None:
            for _, fit in fits.iterrows():
                if fit["run"] in group and np.isfinite(float(fit["alpha"])):
                    _fitted(ax_gold, fit, colors[fit["run"]], ":" if fit["form"] == "rl" else "-.")
        ax_gold.set_ylabel("gold reward")
        ax_gold.set_title("Gold reward (what we want)" + ("; fitted Gao et al. forms dotted" if fits is not None
                                                          else ""))
        ax_proxy.set_ylabel("proxy reward (each run's objective)")
        ax_proxy.set_title("Proxy reward (what is optimised)")
        ax_gold.legend(loc="best", fontsize=8)
        if panels == 3 and row > 0:
            axes[row, 2].set_visible(False)
    if panels == 3:
        _diversity_panel(axes[0, 2], diversity)
    used = sorted({_optimizer_label(optimizers, name) for name in runs}) or ["PPO"]
    fig.suptitle(f"Reward-model overoptimization: {', '.join(used)} (solid) and best-of-n (dashed). Bands: "
                 "aggregates 95% (over seeds; one seed: over prompts), single tables and best-of-n +-1 SE over prompts")
    save_figure(fig, out_png)
