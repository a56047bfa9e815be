"""Trajectory logs: every rollout of a PPO run, as Parquet, for algorithm distillation and analysis.

Layout of ``<run dir>/trajectories/``:

- ``steps{first:06d}-{last:06d}.parquet``: one file per chunk of ``trajectory_chunk_steps`` PPO steps
  (and at every checkpoint), written atomically and never changed afterwards, so a killed run keeps
  every complete chunk. One row per rollout: :data:`COLUMNS`, then ``term_<name>`` (the reward's
  per-sample terms, e.g. red-teaming's toxicity) and the reward's text extras (e.g. ``target_response``).
- ``_run.json``: the run once: its id, every PPO hyperparameter and what the run optimised (RM
  members, objective, reward terms). The leading underscore keeps it out of ``pd.read_parquet(dir)``;
  with ``datasets``: ``load_dataset("parquet", data_files=f"{dir}/*.parquet", split="train")``.

**Scores are never mixed up**: ``score`` is the raw task score (the reward's answer, before the
missing-EOS penalty and the KL term); ``penalized_score`` is what PPO added at the last token;
``shaped_rewards`` are the per-token rewards PPO optimised (``-kl_coef * kl`` on every token, the
entropy bonus if on, plus ``penalized_score`` at the last token); ``kl`` is per token (k1, logp - ref_logp).

Resume: each checkpoint keeps hard links to the chunks written so far (they are immutable), and a
resumed run starts from exactly those, so every step is logged once (:meth:`TrajectoryLog.on_resume`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ..io import atomic_file, write_json
from .hooks import Rollout

RUN_FILE = "_run.json"
CHUNK_RE = re.compile(r"^steps(\d{6,})-(\d{6,})\.parquet$")
FORMAT_VERSION = 1

COLUMNS = {
    "run": "the run's id (its directory name)",
    "step": "PPO step (1-based) whose policy sampled this rollout",
    "episode": "episode index in the run: (step - 1) * batch_size + batch_index",
    "batch_index": "position in the step's batch",
    "prompt": "prompt text",
    "prompt_ids": "prompt token ids (no padding; long prompts keep their last max_prompt_length tokens)",
    "response": "response text (decoded, special tokens skipped)",
    "response_ids": "response token ids up to and including the first EOS",
    "logprobs": "per response token: log-probability under the sampling policy (logits / temperature)",
    "ref_logprobs": "per response token: under the reference policy",
    "values": "per response token: the value model's estimate of the state before the token",
    "score": "the raw task score: the reward's answer before the missing-EOS penalty and the KL term",
    "penalized_score": "the score PPO added at the last token (after the missing-EOS penalty)",
    "kl": "per response token: logp - ref_logp (k1)",
    "shaped_rewards": "per response token: the reward PPO optimised (KL penalty, entropy bonus, score at the end)",
}
_LISTS_INT = ("prompt_ids", "response_ids")
_LISTS_FLOAT = ("logprobs", "ref_logprobs", "values", "kl", "shaped_rewards")


def _schema(terms: list[str], extras: list[str]):
    import pyarrow as pa

    fields = [pa.field("run", pa.string()), pa.field("step", pa.int32()), pa.field("episode", pa.int64()),
              pa.field("batch_index", pa.int32()), pa.field("prompt", pa.string()),
              pa.field("prompt_ids", pa.list_(pa.int32())), pa.field("response", pa.string()),
              pa.field("response_ids", pa.list_(pa.int32())),
              *[pa.field(c, pa.list_(pa.float32())) for c in ("logprobs", "ref_logprobs", "values")],
              pa.field("score", pa.float64()), pa.field("penalized_score", pa.float64()),
              *[pa.field(c, pa.list_(pa.float32())) for c in ("kl", "shaped_rewards")],
              *[pa.field(f"term_{t}", pa.float64()) for t in terms],
              *[pa.field(e, pa.string()) for e in extras]]
    return pa.schema(fields)


def chunk_steps(path: Path) -> tuple[int, int] | None:
    """(first, last) step of a chunk file, from its name; None for any other file."""
    m = CHUNK_RE.match(path.name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def chunk_files(traj_dir: str | os.PathLike) -> list[Path]:
    """The chunk files of a trajectory directory, in step order."""
    d = Path(traj_dir)
    return sorted((p for p in d.glob("steps*.parquet") if chunk_steps(p)), key=chunk_steps) if d.is_dir() else []


class TrajectoryLog:
    """The rollout hook that writes ``trajectories/`` (see the module docstring).

    ``run_info``: written to ``_run.json`` once (``run``, ``hparams`` and whatever the caller adds,
    e.g. the RM members and objective). ``batch_size``: rollouts per step (for ``episode``)."""

    files_immutable = True  # checkpoints may hard-link the chunks instead of copying them

    def __init__(self, traj_dir: str | os.PathLike, run_info: dict[str, Any], chunk_steps: int, batch_size: int):
        self.dir = Path(traj_dir)
        self.run_info = dict(run_info)
        self.run_id = str(self.run_info.get("run", self.dir.parent.name))
        self.chunk_steps, self.batch_size = chunk_steps, batch_size
        self._buffer: list[Rollout] = []

    # ---- the hook protocol (rlhf_pipeline.ppo.hooks) ------------------------------------------
    def checkpoint_files(self) -> dict[str, Path]:
        return {"trajectories": self.dir}

    def on_resume(self, step: int) -> None:
        """Keep the chunks up to ``step`` (a resumed run redoes the later steps), and the run file."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for p in self.dir.iterdir():
            span = chunk_steps(p)
            if p.name.startswith(".") or (span is not None and span[1] > step):
                p.unlink()  # temporary files of a killed write, chunks of steps to be redone
        write_json(self.dir / RUN_FILE, {"format_version": FORMAT_VERSION, "run": self.run_id,
                                         **{k: v for k, v in self.run_info.items() if k != "run"},
                                         "columns": COLUMNS})
        self._buffer = []

    def on_rollout(self, rollout: Rollout) -> None:
        self._buffer.append(rollout)
        if len(self._buffer) >= self.chunk_steps:
            self.flush()

    def on_checkpoint(self, step: int) -> None:
        self.flush()

    # ---- writing ----------------------------------------------------------------------------
    def flush(self) -> Path | None:
        """Write the buffered steps as one chunk file (atomically); returns its path."""
        if not self._buffer:
            return None
        import pyarrow.parquet as pq

        table = rollouts_table(self._buffer, self.run_id, self.batch_size)
        table = table.replace_schema_metadata({b"rlhf_pipeline.run": json.dumps(
            {"run": self.run_id, "format_version": FORMAT_VERSION}).encode()})
        first, last = self._buffer[0].step, self._buffer[-1].step
        path = self.dir / f"steps{first:06d}-{last:06d}.parquet"
        with atomic_file(path) as tmp:
            pq.write_table(table, tmp, compression="zstd")
        self._buffer = []
        return path


def rollouts_table(rollouts: list[Rollout], run_id: str, batch_size: int):
    """A ``pyarrow.Table`` of the rollouts of several steps, one row per rollout."""
    import pyarrow as pa

    terms = sorted({k for r in rollouts for k in r.terms})
    extras = sorted({k for r in rollouts for k in r.extras})
    schema = _schema(terms, extras)
    cols: dict[str, list] = {name: [] for name in schema.names}
    for r in rollouts:
        n = len(r.prompts)
        cols["run"] += [run_id] * n
        cols["step"] += [r.step] * n
        cols["episode"] += [(r.step - 1) * batch_size + i for i in range(n)]
        cols["batch_index"] += list(range(n))
        for c in ("prompt", "response"):
            cols[c] += list(getattr(r, c + "s"))
        for c in ("prompt_ids", "response_ids", "logprobs", "ref_logprobs", "values", "kl"):
            cols[c] += list(getattr(r, c))
        cols["score"] += [float(x) for x in r.score]
        cols["penalized_score"] += [float(x) for x in r.penalized_score]
        cols["shaped_rewards"] += list(r.rewards)
        for t in terms:
            cols[f"term_{t}"] += [float(x) for x in r.terms[t]] if t in r.terms else [None] * n
        for e in extras:
            cols[e] += list(r.extras[e]) if e in r.extras else [None] * n
    return pa.Table.from_pydict(cols, schema=schema)


# ---- reading ------------------------------------------------------------------------------------

def read_run_info(traj_dir: str | os.PathLike) -> dict[str, Any]:
    """``_run.json`` of a trajectory directory (PipelineError when there is none)."""
    path = Path(traj_dir) / RUN_FILE
    if not path.is_file():
        raise PipelineError(f"{traj_dir}: not a trajectory directory (no {RUN_FILE}); trajectories are written by "
                            "PPO runs with ppo.hparams.trajectories: true")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PipelineError(f"{path}: not valid JSON ({e})") from None


def read_trajectories(traj_dir: str | os.PathLike, columns: list[str] | None = None):
    """Every logged rollout of one run as a pandas DataFrame, ordered by step and batch index.

    PipelineError, naming the directory, when it has no run file or no chunk (a run killed before its
    first complete chunk, or one with trajectory logging off); chunks must not overlap."""
    import pandas as pd
    import pyarrow.parquet as pq

    info = read_run_info(traj_dir)
    files = chunk_files(traj_dir)
    if not files:
        raise PipelineError(f"{traj_dir}: no trajectory chunks (steps*.parquet) yet: the run "
                            f"{info.get('run')!r} was stopped before its first chunk or logs no trajectories")
    spans = [chunk_steps(p) for p in files]
    for (_, last), (first, _), p in zip(spans, spans[1:], files[1:]):
        if first <= last:
            raise PipelineError(f"{p}: overlaps the previous chunk (steps up to {last}); the log is inconsistent")
    frames = [pq.read_table(p, columns=columns).to_pandas() for p in files]
    df = pd.concat(frames, ignore_index=True)
    if "step" in df and "batch_index" in df:
        df = df.sort_values(["step", "batch_index"], kind="stable", ignore_index=True)
    return df
