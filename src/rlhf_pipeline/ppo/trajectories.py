"""Trajectory logs: every rollout of a PPO run, as Parquet, for algorithm distillation and analysis.

Layout of ``<run dir>/trajectories/``:

- ``steps{first:06d}-{last:06d}.parquet``: one file per chunk of ``trajectory_chunk_steps`` PPO steps
  (and at every checkpoint), written atomically and never changed afterwards, so a killed run keeps
  every complete chunk. One row per rollout: :data:`COLUMNS`, then ``term_<name>`` (the reward's
  per-sample terms, e.g. red-teaming's toxicity) and the reward's text extras (e.g. ``target_response``).
  Written with Parquet page checksums (a CRC32 of every page's data).
- ``_steps{first:06d}-{last:06d}.parquet.sha256``: the chunk's SHA-256 over the whole file, in ``sha256sum``
  format (``cd trajectories && cat _*.sha256 | sha256sum -c`` checks them by hand). It covers what the page
  checksums leave out (the footer with the schema and the offsets, the page headers, the key-value
  metadata). Written atomically *before* the chunk is renamed into place, so every chunk in place has one.
- ``_run.json``: the run once: its id, every PPO hyperparameter and what the run optimised (RM
  members, objective, reward terms). The leading underscore keeps it and the ``.sha256`` files out of
  ``pd.read_parquet(dir)``; with ``datasets``: ``load_dataset("parquet", data_files=f"{dir}/*.parquet",
  split="train")``.

**Scores are never mixed up**: ``score`` is the raw task score (the reward's answer, before the
missing-EOS penalty and the KL term); ``penalized_score`` is what PPO added at the last token;
``shaped_rewards`` are the per-token rewards PPO optimised (``-kl_coef * kl`` on every token, the
entropy bonus if on, plus ``penalized_score`` at the last token); ``kl`` is per token (k1, logp - ref_logp).

**Reading verifies** (:func:`read_trajectories`, the one reader; the algorithm-distillation stages read
through it): the chunks' names cover steps 1 to N with no gap and no overlap; each chunk's bytes match its
SHA-256 and its pages their checksums; its rows' ``step`` values are exactly the steps its name covers,
each one present; every float is finite (``score``, ``penalized_score``, ``term_*`` and every element of
the per-token lists). Anything else is a :class:`~rlhf_pipeline.errors.PipelineError` of one line naming
the file and what is wrong. **Chunks of older logs** (format 1: no ``.sha256`` file, and the chunk's own
metadata does not say format 2 or later) are read with one warning naming how many chunks went unverified
for corruption; every other check still applies to them. A chunk of format 2 without its ``.sha256`` is
refused.

Resume: each checkpoint keeps hard links to the chunks and their ``.sha256`` files written so far (they
are immutable), and a resumed run starts from exactly those, so every step is logged once
(:meth:`TrajectoryLog.on_resume`). The links share the bytes: a chunk damaged on disk is damaged in every
checkpoint that holds it, so the remedy for a damaged chunk is to rerun the run from scratch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ..io import atomic_file, write_json
from .hooks import Rollout

RUN_FILE = "_run.json"
CHUNK_RE = re.compile(r"^steps(\d{6,})-(\d{6,})\.parquet$")
FORMAT_VERSION = 2
"""1: chunks without checksums; 2: Parquet page checksums and a ``.sha256`` file per chunk."""
METADATA_KEY = b"rlhf_pipeline.run"
"""The chunk's Parquet key-value metadata: ``{"run": id, "format_version": FORMAT_VERSION}`` as JSON."""
REDO = "rerun the run from scratch: delete its trajectories/ and its checkpoints, which hard-link the same chunks"

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


def digest_file(chunk: Path) -> Path:
    """The file holding a chunk's SHA-256: ``_<chunk name>.sha256`` next to it."""
    return chunk.with_name(f"_{chunk.name}.sha256")


def digested_chunk(path: Path) -> Path | None:
    """The chunk whose SHA-256 the file ``path`` holds; None for any other file."""
    m = re.match(r"^_(.+)\.sha256$", path.name)
    return path.with_name(m.group(1)) if m and chunk_steps(path.with_name(m.group(1))) else None


def write_chunk(table, path: str | os.PathLike, run_id: str) -> Path:
    """Write ``table`` as the chunk ``path``, atomically: Parquet (zstd) with page checksums and the format
    stamped in its metadata (:data:`METADATA_KEY`); its ``.sha256`` file goes into place before the chunk does."""
    import pyarrow.parquet as pq

    path = Path(path)
    stamp = json.dumps({"run": run_id, "format_version": FORMAT_VERSION}).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: stamp})
    with atomic_file(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)
        digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
        with atomic_file(digest_file(path)) as tmp_digest:
            Path(tmp_digest).write_text(f"{digest}  {path.name}\n")
    return path


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
        """Keep the chunks up to ``step`` and their ``.sha256`` files (a resumed run redoes the later steps),
        and the run file."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for p in self.dir.iterdir():
            chunk = digested_chunk(p)
            span = chunk_steps(chunk or p)
            if p.name.startswith(".") or (span is not None and span[1] > step) or (chunk and not chunk.exists()):
                p.unlink()  # temporary files of a killed write, chunks of steps to be redone and their digests
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
        """Write the buffered steps as one chunk file (:func:`write_chunk`); returns its path."""
        if not self._buffer:
            return None
        table = rollouts_table(self._buffer, self.run_id, self.batch_size)
        first, last = self._buffer[0].step, self._buffer[-1].step
        path = write_chunk(table, self.dir / f"steps{first:06d}-{last:06d}.parquet", self.run_id)
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

    Verifies the whole log first (see the module docstring; every column of every chunk, whatever
    ``columns`` asks for). PipelineError, naming the directory, when it has no run file or no chunk (a run
    killed before its first complete chunk, or one with trajectory logging off); naming the file, when a
    chunk is missing, overlaps another, is truncated or damaged, or holds wrong steps or a non-finite value."""
    import pandas as pd

    info = read_run_info(traj_dir)
    files = chunk_files(traj_dir)
    if not files:
        raise PipelineError(f"{traj_dir}: no trajectory chunks (steps*.parquet) yet: the run "
                            f"{info.get('run')!r} was stopped before its first chunk or logs no trajectories")
    check_spans(files)
    frames, unverified = [], []
    for p in files:
        table, verified = read_chunk(p)
        if not verified:
            unverified.append(p)
        if columns is not None:
            absent = [c for c in columns if c not in table.column_names]
            if absent:
                raise PipelineError(f"{p}: no column(s) {absent}")
            table = table.select(columns)
        frames.append(table.to_pandas())
    if unverified:
        warnings.warn(f"{traj_dir}: {len(unverified)} of {len(files)} chunks (from {unverified[0].name}) were "
                      "written before chunks carried checksums (format 1, no .sha256): read without a corruption "
                      "check", stacklevel=2)
    df = pd.concat(frames, ignore_index=True)
    if "step" in df and "batch_index" in df:
        df = df.sort_values(["step", "batch_index"], kind="stable", ignore_index=True)
    return df


def check_spans(files: list[Path]) -> None:
    """PipelineError unless the chunks' names (in step order) cover steps 1, 2, ... with no gap and no overlap;
    a missing range is named as the chunk file it would be."""
    prev, prev_last = None, 0
    for p in files:
        first, last = chunk_steps(p)
        if first < 1 or first > last:
            raise PipelineError(f"{p}: not a step range (steps are 1-based and a chunk covers first-last)")
        if first <= prev_last:
            raise PipelineError(f"{p}: overlaps {prev.name} (steps {first}-{min(last, prev_last)} in both); "
                                "the log is inconsistent")
        if first > prev_last + 1:
            missing = p.with_name(f"steps{prev_last + 1:06d}-{first - 1:06d}.parquet")
            before = (f"the chunks before it end at step {prev_last} and {p.name} starts at step {first}" if prev
                      else f"the first chunk, {p.name}, starts at step {first}")
            raise PipelineError(f"{missing}: missing; {before} (a gap at {prev_last + 1}-{first - 1})")
        prev, prev_last = p, last


def read_chunk(path: Path):
    """(table, verified): one chunk as a ``pyarrow.Table``, checked as the module docstring says; ``verified``
    is False for a format-1 chunk (no ``.sha256``: read without the corruption check). PipelineError, naming
    the file, for anything wrong."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        data = path.read_bytes()
    except OSError as e:
        raise PipelineError(f"{path}: cannot be read ({e.strerror})") from None
    recorded = _recorded_digest(path)
    if recorded is not None and hashlib.sha256(data).hexdigest() != recorded:
        name = digest_file(path).name
        raise _damaged(path, _damage(data) or f"its bytes do not match the SHA-256 recorded in {name}; the damage "
                       f"is outside the page checksums (footer, page headers, metadata) or in {name} itself")
    try:
        table = pq.read_table(pa.BufferReader(data), page_checksum_verification=True)
        table.schema.names  # noqa: B018 (decodes the column names: a damaged one raises here, not later)
        version = _format_version(table)
    except (pa.ArrowException, OSError, ValueError):
        raise _damaged(path, _damage(data) or "not readable as a trajectory chunk") from None
    if recorded is None and version >= 2:
        raise PipelineError(f"{path}: its checksum file {digest_file(path).name} is missing (a format-{version} "
                            f"chunk is written with one); {REDO}")
    _check_rows(path, table)
    return table, recorded is not None


def _recorded_digest(chunk: Path) -> str | None:
    """The SHA-256 the chunk's ``.sha256`` file records; None when there is none."""
    path = digest_file(chunk)
    try:
        fields = path.read_bytes().decode("ascii", "replace").split()
    except FileNotFoundError:
        return None
    if len(fields) != 2 or not re.fullmatch(r"[0-9a-f]{64}", fields[0]) or fields[1] != chunk.name:
        raise _damaged(path, f"not a sha256sum line for {chunk.name} (expected '<64 hex digits>  {chunk.name}')")
    return fields[0]


def _format_version(table) -> int:
    """The format the chunk's metadata states; 1 when it states none (the oldest chunks). ValueError when the
    stamp does not decode (a damaged footer)."""
    stamp = (table.schema.metadata or {}).get(METADATA_KEY)
    try:
        return 1 if stamp is None else int(json.loads(stamp).get("format_version", 1))
    except (AttributeError, TypeError) as e:
        raise ValueError(f"{METADATA_KEY.decode()} metadata: {e}") from None


def _damaged(path: Path, what: str) -> PipelineError:
    return PipelineError(f"{path}: {what} (the file is damaged; {REDO})")


def _damage(data: bytes) -> str | None:
    """What is wrong with the bytes of a chunk that failed a check, where Parquet can tell: truncated, an
    unreadable footer, or the first column whose pages fail their checksums or do not decode."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if len(data) < 12 or data[:4] != b"PAR1" or data[-4:] != b"PAR1":
        return f"truncated or not Parquet ({len(data)} bytes, without Parquet's leading and trailing PAR1)"
    try:
        f = pq.ParquetFile(pa.BufferReader(data), page_checksum_verification=True)
        names = f.schema_arrow.names
    except (pa.ArrowException, OSError, ValueError):
        return "its Parquet footer is unreadable"
    for name in names:
        try:
            f.read(columns=[name])
        except (pa.ArrowException, OSError, ValueError) as e:
            return (f"checksum mismatch in column {name!r}" if "checksum" in str(e).lower()
                    else f"column {name!r} does not decode")
    return None


def _check_rows(path: Path, table) -> None:
    """PipelineError unless the chunk has every column of :data:`COLUMNS`, its rows' steps are exactly the
    steps of its name, and every float (scalar or list element) is finite."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    absent = [c for c in COLUMNS if c not in table.column_names]
    if absent:
        raise PipelineError(f"{path}: no column(s) {absent}; not a trajectory chunk")
    first, last = chunk_steps(path)
    steps = table.column("step").combine_chunks()
    if steps.null_count:
        raise PipelineError(f"{path}: {steps.null_count} row(s) without a step")
    steps = steps.to_numpy()
    present = {int(s) for s in np.unique(steps)}
    outside = sorted(s for s in present if not first <= s <= last)
    if outside:
        raise PipelineError(f"{path}: rows of step(s) {_spans(outside)}, outside the steps its name covers "
                            f"({first}-{last})")
    absent_steps = sorted(set(range(first, last + 1)) - present)
    if absent_steps:
        raise PipelineError(f"{path}: no rows of step(s) {_spans(absent_steps)}, which its name covers "
                            f"({first}-{last})")
    for field in table.schema:
        col, kind = table.column(field.name).combine_chunks(), field.type
        is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind)
        if not pa.types.is_floating(kind.value_type if is_list else kind):
            continue
        values = pc.list_flatten(col) if is_list else col
        bad = pc.fill_null(pc.invert(pc.is_finite(values)), False)
        n_bad = pc.sum(bad).as_py() or 0
        if n_bad:
            rows = np.asarray(pc.list_parent_indices(col))[np.asarray(bad)] if is_list else np.flatnonzero(bad)
            raise PipelineError(f"{path}: column {field.name!r} has {n_bad} non-finite value(s) (NaN or inf), "
                                f"the first at step {int(steps[rows[0]])}")


def _spans(steps: list[int]) -> str:
    """Sorted step numbers as ranges: ``[1, 2, 3, 7]`` -> ``'1-3, 7'``."""
    out, start = [], steps[0]
    for a, b in zip(steps, [*steps[1:], None]):
        if b != a + 1:
            out.append(f"{start}-{a}" if a > start else f"{a}")
            start = b
    return ", ".join(out)
