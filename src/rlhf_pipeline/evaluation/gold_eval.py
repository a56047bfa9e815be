"""Offline gold evaluation of a PPO run's eval samples.

PPO writes ``eval/step{N:06d}.jsonl`` (proxy scores and per-sample KL, never gold scores: the gold
RM is too big to load during training). This module scores every eval sample with the gold RM in
one batched pass and summarises each eval step as one CSV row: means and standard errors of KL,
proxy and gold reward. It works on a partial directory left by a stopped run, so a cancelled run
can still be gold-scored. The input files are never modified.

Non-finite values are never averaged. Every per-sample number gold-eval reads (``kl``,
``proxy_reward``, ``ensemble_variance``, ``response_length`` and each of ``proxy_scores``) must be a
finite JSON number, and so must every score the gold scorer returns; otherwise gold-eval stops with a
:class:`PipelineError` naming the file, line and field (for a gold score: the sample's file and line,
field ``gold_reward``) and how many such values there are, and writes nothing. (NaN/inf in an eval file
means the PPO run that wrote it is broken - PPO itself aborts on a non-finite eval score - and a NaN gold
score means a broken gold scorer; dropping those samples would bias the means towards the samples that
happened to score.) So no sample is ever excluded: ``n`` is the number of samples in the step, which is
the number behind every mean and standard error in that row. The one thing skipped is a truncated last
line of the newest file (a run stopped mid-write, with a warning): it is not a sample and not counted.
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PipelineError
from ..io import atomic_dir, read_jsonl, write_csv

#: A gold scorer: ``(prompts, responses) -> np.ndarray[B]`` (e.g. ``reward.gold.GoldScorer``).
Scorer = Callable[[list[str], list[str]], np.ndarray]

#: Fields every eval row must carry (PPO also writes ``step`` and ``proxy_scores``).
EVAL_FIELDS = ["prompt", "response", "proxy_reward", "kl", "ensemble_variance", "response_length"]

#: Per-sample numbers of an eval row that must be finite (``proxy_scores``, a list, is checked too).
NUMERIC_FIELDS = ["kl", "proxy_reward", "ensemble_variance", "response_length"]

#: Columns of ``gold_eval.csv``, in order.
GOLD_EVAL_COLUMNS = [
    "step",
    "n",
    "kl",
    "kl_se",
    "sqrt_kl",
    "proxy_reward",
    "proxy_reward_se",
    "gold_reward",
    "gold_reward_se",
    "response_length",
    "ensemble_variance",
]

_STEP_FILE = re.compile(r"^step(\d+)\.jsonl$")


def eval_files(eval_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``step*.jsonl`` in ``eval_dir``, sorted by step."""
    eval_dir = Path(eval_dir)
    if not eval_dir.is_dir():
        raise PipelineError(f"{eval_dir}: eval directory not found")
    files = sorted(
        (int(m.group(1)), p)
        for p in eval_dir.iterdir()
        if p.is_file() and (m := _STEP_FILE.match(p.name))
    )
    if not files:
        raise PipelineError(f"{eval_dir}: no step*.jsonl eval files")
    return files


def read_eval_rows(path: Path, newest: bool) -> list[dict[str, Any]]:
    """Read one eval file. In the ``newest`` file a truncated last line (a run stopped while
    writing) is skipped with a warning; anywhere else a bad line is a :class:`PipelineError`."""
    return read_jsonl(path, required=EVAL_FIELDS, allow_truncated_tail=newest)


def row_line_numbers(path: Path, n_rows: int) -> list[int]:
    """The line numbers of the first ``n_rows`` rows :func:`read_eval_rows` returned from ``path``:
    its non-blank lines, in order (only a truncated LAST line is ever skipped, so row k is line k)."""
    lines = [i for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    return lines[:n_rows]


def check_finite_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """:class:`PipelineError` naming the first line and field of ``path`` whose value is not a finite
    number (NaN, Infinity, null, a string...): :data:`NUMERIC_FIELDS` and each ``proxy_scores`` entry."""
    bad = []
    for k, row in enumerate(rows):
        for field in NUMERIC_FIELDS:
            if not _is_finite_number(row[field]):
                bad.append((k, field, row[field]))
        scores = row.get("proxy_scores", [])
        for value in scores if isinstance(scores, list) else [scores]:
            if not _is_finite_number(value):
                bad.append((k, "proxy_scores", value))
    if bad:
        k, field, value = bad[0]
        line = row_line_numbers(path, len(rows))[k]
        raise PipelineError(f"{path}:{line}: {field} is {_show(value)}, not a finite number ({len(bad)} such "
                            "value(s) in this file); gold-eval does not average over non-finite values")


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _show(value: Any) -> str:
    """``value`` as its JSON file has it: NaN, Infinity, null, "text", ..."""
    return json.dumps(value)


def load_eval_dir(eval_dir: str | os.PathLike) -> dict[int, tuple[Path, list[dict[str, Any]]]]:
    """All eval rows by step: ``{step: (path, rows)}``; an empty newest file is skipped."""
    files = eval_files(eval_dir)
    out = {}
    for k, (step, path) in enumerate(files):
        newest = k == len(files) - 1
        rows = read_eval_rows(path, newest=newest)
        check_finite_rows(path, rows)
        if rows:
            out[step] = (path, rows)
        elif newest:
            warnings.warn(f"{path}: no complete rows yet; skipping step {step}", stacklevel=2)
        else:
            raise PipelineError(f"{path}: empty eval file (only the newest may be incomplete)")
    if not out:
        raise PipelineError(f"{eval_dir}: no complete eval rows in any step*.jsonl")
    return out


def summarize_steps(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per step from per-sample columns ``step, kl, proxy_reward, gold_reward,
    response_length, ensemble_variance``: means, standard errors (NaN for one sample), n, and
    ``sqrt_kl = sqrt(max(mean KL, 0))`` (the distance d of Gao et al. 2022).

    Every value must be finite (:class:`PipelineError` otherwise): ``n``, the number of samples of the
    step, is then the number behind every mean."""
    averaged = ["kl", "proxy_reward", "gold_reward", "response_length", "ensemble_variance"]
    values = samples[averaged].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        bad = ~np.isfinite(values)
        cols = [c for c, b in zip(averaged, bad.any(0)) if b]
        steps = sorted({int(s) for s in samples["step"].to_numpy()[bad.any(1)]})
        raise PipelineError(f"gold eval summary: {int(bad.sum())} non-finite value(s) in {cols} at step(s) {steps}; "
                            "means over the finite values would not be means over n samples")
    g = samples.groupby("step", sort=True)
    mean, se = g.mean(numeric_only=True), g.sem(numeric_only=True)
    out = pd.DataFrame({"step": mean.index.astype(int), "n": g.size().to_numpy()})
    for col in ["kl", "proxy_reward", "gold_reward"]:
        out[col] = mean[col].to_numpy()
        out[f"{col}_se"] = se[col].to_numpy()
    out["sqrt_kl"] = np.sqrt(np.clip(out["kl"], 0.0, None))
    for col in ["response_length", "ensemble_variance"]:
        out[col] = mean[col].to_numpy()
    return out[GOLD_EVAL_COLUMNS].reset_index(drop=True)


def gold_eval(
    eval_dir: str | os.PathLike,
    scorer: Scorer,
    out_csv: str | os.PathLike | None = None,
    scored_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Gold-score every eval sample of a (possibly partial) PPO run and summarise per step.

    ``scorer(prompts, responses) -> np.ndarray[B]`` is called once on all rows (it batches
    internally). Returns :data:`GOLD_EVAL_COLUMNS`, one row per eval step sorted by step, and
    writes it atomically to ``out_csv`` when given. With ``scored_dir``, also writes a copy of
    each eval file with a ``gold_reward`` field per row (same file names) - inputs stay untouched.
    """
    by_step = load_eval_dir(eval_dir)
    flat = [(step, row) for step, (_, rows) in by_step.items() for row in rows]
    gold = np.asarray(
        scorer([r["prompt"] for _, r in flat], [r["response"] for _, r in flat]), dtype=np.float64
    ).reshape(-1)
    if len(gold) != len(flat):
        raise PipelineError(f"gold scorer returned {len(gold)} scores for {len(flat)} eval samples")
    bad = np.flatnonzero(~np.isfinite(gold))
    if len(bad):
        path, line = _locate(by_step, int(bad[0]))
        raise PipelineError(f"{path}:{line}: the gold scorer returned gold_reward {_show(float(gold[bad[0]]))} for "
                            f"this sample, not a finite number ({len(bad)} of {len(gold)} gold scores are "
                            "non-finite); gold-eval does not average over non-finite values")

    samples = pd.DataFrame(
        {
            "step": [s for s, _ in flat],
            "kl": [r["kl"] for _, r in flat],
            "proxy_reward": [r["proxy_reward"] for _, r in flat],
            "gold_reward": gold,
            "response_length": [r["response_length"] for _, r in flat],
            "ensemble_variance": [r["ensemble_variance"] for _, r in flat],
        }
    )
    df = summarize_steps(samples)
    if scored_dir is not None:
        _write_scored(by_step, gold, scored_dir)
    if out_csv is not None:
        write_csv(df, out_csv)
    return df


def _locate(by_step, k: int) -> tuple[Path, int]:
    """(file, line) of the ``k``-th sample of the flattened ``by_step`` rows."""
    for path, rows in by_step.values():
        if k < len(rows):
            return path, row_line_numbers(path, len(rows))[k]
        k -= len(rows)
    raise IndexError(k)


def _write_scored(by_step, gold: np.ndarray, scored_dir: str | os.PathLike) -> None:
    """Copies of the eval files with per-sample ``gold_reward``; the directory appears whole."""
    it = iter(gold.tolist())
    with atomic_dir(scored_dir) as tmp:
        for path, rows in by_step.values():
            with open(tmp / path.name, "w") as f:
                f.writelines(json.dumps({**row, "gold_reward": next(it)}, ensure_ascii=False, allow_nan=False) + "\n"
                             for row in rows)
