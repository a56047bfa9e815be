"""One table and one figure for the proxy reward-model ensemble."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import PipelineError
from ..io import write_csv
from ..plotting import save_figure

COLUMNS = ["seed", "head", "accuracy_gold", "accuracy_noisy", "reward_mean", "reward_std",
           "n_train", "n_val", "train_time_s"]


def summarize_rms(metrics_paths: Sequence[str | os.PathLike], out_csv: str | os.PathLike,
                  out_png: str | os.PathLike):
    """Write one CSV row per member (``COLUMNS`` first, then any other metric) and a bar plot of
    each member's gold and noisy-label accuracy with the 0.5 chance line. Returns the DataFrame."""
    import pandas as pd
    from matplotlib.figure import Figure

    if not metrics_paths:
        raise PipelineError("RM summary: no metrics.json files given")
    rows = []
    for p in metrics_paths:
        p = Path(p)
        if not p.is_file():
            raise PipelineError(f"{p}: file not found")
        try:
            m = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise PipelineError(f"{p}: not valid JSON ({e.msg})") from None
        missing = [k for k in ("seed", "accuracy_gold", "accuracy_noisy") if k not in m]
        if missing:
            raise PipelineError(f"{p}: missing field(s) {missing}")
        rows.append({**m, "metrics_path": str(p)})
    df = pd.DataFrame(rows)
    cols = [c for c in COLUMNS if c in df.columns] + [c for c in df.columns if c not in COLUMNS]
    df = df[cols].sort_values("seed", kind="stable").reset_index(drop=True)
    write_csv(df, out_csv)

    fig = Figure(figsize=(max(4.0, 1.2 * len(df) + 2), 3.5))
    ax = fig.subplots()
    x = range(len(df))
    width = 0.38
    ax.bar([i - width / 2 for i in x], df["accuracy_gold"], width, label="vs gold preference")
    ax.bar([i + width / 2 for i in x], df["accuracy_noisy"], width, label="vs noisy labels")
    ax.axhline(0.5, color="k", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(list(x), [f"seed {s}" for s in df["seed"]])
    ax.set_ylim(0, 1.18)
    ax.set_ylabel("held-out pairwise accuracy")
    ax.set_title("Proxy reward models")
    ax.legend(loc="upper center", ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    save_figure(fig, out_png)
    return df
