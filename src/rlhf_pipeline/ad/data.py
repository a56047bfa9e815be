"""Learning histories as training data for algorithm distillation: windows over a run's trajectory log
that span PPO steps, in two formats.

A history is one run's ``trajectories/`` (:mod:`rlhf_pipeline.ppo.trajectories`). Its episodes are
ordered by step; every ``step_stride``-th step is used, and from each used step ``episodes_per_step``
episodes go into one *stream*, so a history of ``batch_size`` rollouts per step gives
``batch_size / episodes_per_step`` streams of disjoint episodes, each following the policy as it
learns. A stream is cut into contexts of at most ``context_length`` tokens, filled with whole
episodes in order (never split), so a context spans several PPO steps. An episode longer than
``context_length`` on its own is dropped and counted in the report (never silently).

- **Language format**: each episode rendered with ``ad.format.template`` (``Prompt: ...\\nCompletion:
  ...\\nReward: 0.87\\n\\n``; the reward is the raw task score unless configured otherwise), a context is
  the concatenated text: :func:`language_contexts`.
- **RL format**: a context is a list of episodes (state = prompt ids, action = response ids, reward,
  behaviour logprobs): :class:`RLContexts` (a ``torch.utils.data.Dataset``), :func:`rl_dataset` (a
  ``datasets.Dataset``); an episode costs ``len(prompt) + len(response) + 1`` tokens (the reward slot).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ..ppo.trajectories import read_run_info, read_trajectories
from .config import ContextFormat

HISTORY_COLUMNS = ["run", "step", "episode", "batch_index", "prompt", "prompt_ids", "response", "response_ids",
                   "logprobs", "score", "penalized_score"]


@dataclass
class History:
    """One run's logged episodes (a DataFrame ordered by step and batch index) and its run file."""

    name: str
    episodes: Any
    info: dict[str, Any]

    @property
    def batch_size(self) -> int:
        return int(self.info["hparams"]["batch_size"])


def load_history(name: str, traj_dir: str | os.PathLike) -> History:
    """A history from a trajectory directory; PipelineError (naming it) when it holds no trajectories."""
    traj_dir = Path(traj_dir)
    if not traj_dir.is_dir():
        raise PipelineError(f"history {name!r}: {traj_dir} does not exist (expected a run's trajectories/ directory)")
    return History(name, read_trajectories(traj_dir, columns=HISTORY_COLUMNS), read_run_info(traj_dir))


@dataclass
class Windows:
    """One history's contexts: each a list of row positions in ``History.episodes``."""

    history: str
    contexts: list[list[int]] = field(default_factory=list)
    streams: list[int] = field(default_factory=list)
    """The stream each context came from."""
    dropped: list[int] = field(default_factory=list)
    """Episodes longer than the context length on their own (not in any context)."""
    n_episodes: int = 0
    """Episodes the streams offered (after the step stride)."""


def streams(history: History, fmt: ContextFormat) -> list[list[int]]:
    """Row positions of each stream: ``episodes_per_step`` episodes of every ``step_stride``-th step, in order."""
    df = history.episodes
    steps = sorted(df["step"].unique())[::fmt.step_stride]
    used = df[df["step"].isin(steps)]
    n_streams = max(1, history.batch_size // fmt.episodes_per_step)
    out = []
    for j in range(n_streams):
        lo, hi = j * fmt.episodes_per_step, (j + 1) * fmt.episodes_per_step
        rows = used[(used["batch_index"] >= lo) & (used["batch_index"] < hi)]
        out.append(list(rows.sort_values(["step", "batch_index"], kind="stable").index))
    return [s for s in out if s]


def pack(lengths: list[int], context_length: int) -> tuple[list[list[int]], list[int]]:
    """Greedy packing of consecutive items into windows of at most ``context_length`` tokens, never
    splitting one; returns (windows as lists of item positions, positions of items too long on their own)."""
    windows: list[list[int]] = []
    dropped: list[int] = []
    current: list[int] = []
    used = 0
    for i, n in enumerate(lengths):
        if n > context_length:
            dropped.append(i)
            continue
        if current and used + n > context_length:
            windows.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    if current:
        windows.append(current)
    return windows, dropped


def windows(history: History, fmt: ContextFormat, cost: Callable[[Any], int]) -> Windows:
    """The history's contexts; ``cost(row)`` is an episode's length in tokens in the chosen format."""
    out = Windows(history.name)
    for j, rows in enumerate(streams(history, fmt)):
        lengths = [cost(history.episodes.loc[r]) for r in rows]
        packed, dropped = pack(lengths, fmt.context_length)
        out.contexts += [[rows[i] for i in w] for w in packed]
        out.streams += [j] * len(packed)
        out.dropped += [rows[i] for i in dropped]
        out.n_episodes += len(rows)
    return out


def check_fits(all_windows: list[Windows], histories: list[History], fmt: ContextFormat,
               cost: Callable[[Any], int]) -> None:
    """PipelineError when not one episode fits the context length (one line, before training); no histories
    (e.g. no held-out ones) is no error."""
    if not histories or any(w.contexts for w in all_windows):
        return
    shortest = min(cost(row) for h in histories for _, row in h.episodes.iterrows())
    raise PipelineError(f"config ad.format.context_length: {fmt.context_length} tokens is shorter than every "
                        f"episode (the shortest takes {shortest} tokens); expected at least {shortest}")


def report(all_windows: list[Windows], histories: list[History]) -> list[dict[str, Any]]:
    """One row per history: episodes offered, in contexts, dropped (too long), contexts, steps spanned."""
    rows = []
    for w, h in zip(all_windows, histories):
        spans = [int(h.episodes.loc[c[-1], "step"] - h.episodes.loc[c[0], "step"] + 1) for c in w.contexts]
        rows.append({"history": w.history, "episodes": w.n_episodes,
                     "in_contexts": sum(len(c) for c in w.contexts), "dropped_too_long": len(w.dropped),
                     "contexts": len(w.contexts),
                     "episodes_per_context": sum(len(c) for c in w.contexts) / max(1, len(w.contexts)),
                     "steps_spanned_mean": sum(spans) / max(1, len(spans)), "steps_spanned_max": max(spans, default=0)})
    return rows


# ---- language format ----------------------------------------------------------------------------

def episode_text(row, fmt: ContextFormat, reward: float | None = None) -> str:
    """One episode in the language format (``reward`` overrides the logged one, e.g. for a new episode)."""
    r = float(row[fmt.reward]) if reward is None else reward
    return fmt.template.format(prompt=row["prompt"], response=row["response"], reward=r, step=int(row["step"]))


def token_cost(tokenizer, fmt: ContextFormat) -> Callable[[Any], int]:
    """An episode's length in tokens of its language-format text (no special tokens)."""
    def cost(row) -> int:
        return len(tokenizer(episode_text(row, fmt), add_special_tokens=False)["input_ids"])
    return cost


def language_contexts(histories: list[History], fmt: ContextFormat, tokenizer):
    """(rows, report): one row per context (``history``, ``stream``, ``first_step``, ``last_step``,
    ``n_episodes``, ``text``) and the per-history report of :func:`report`."""
    cost = token_cost(tokenizer, fmt)
    all_windows = [windows(h, fmt, cost) for h in histories]
    check_fits(all_windows, histories, fmt, cost)
    rows = []
    for w, h in zip(all_windows, histories):
        for j, ctx in zip(w.streams, w.contexts):
            eps = h.episodes.loc[ctx]
            rows.append({"history": h.name, "stream": j, "first_step": int(eps["step"].iloc[0]),
                         "last_step": int(eps["step"].iloc[-1]), "n_episodes": len(ctx),
                         "text": "".join(episode_text(row, fmt) for _, row in eps.iterrows())})
    return rows, report(all_windows, histories)


# ---- RL format ----------------------------------------------------------------------------------

def rl_cost(row) -> int:
    """An episode's length in the RL format: state tokens, action tokens, one reward slot."""
    return len(row["prompt_ids"]) + len(row["response_ids"]) + 1


class RLContexts:
    """The RL-format contexts as a ``torch.utils.data.Dataset``: item ``i`` is a list of episodes, each
    ``{"state": LongTensor, "action": LongTensor, "reward": float, "logprobs": FloatTensor, "step": int}``."""

    def __init__(self, histories: list[History], fmt: ContextFormat):
        self.histories = {h.name: h for h in histories}
        self.windows = [windows(h, fmt, rl_cost) for h in histories]
        check_fits(self.windows, histories, fmt, rl_cost)
        self.index = [(w.history, ctx) for w in self.windows for ctx in w.contexts]
        self.reward = fmt.reward

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> list[dict[str, Any]]:
        import torch

        name, ctx = self.index[i]
        eps = self.histories[name].episodes.loc[ctx]
        return [{"state": torch.as_tensor(list(r["prompt_ids"]), dtype=torch.long),
                 "action": torch.as_tensor(list(r["response_ids"]), dtype=torch.long),
                 "reward": float(r[self.reward]), "logprobs": torch.as_tensor(list(r["logprobs"])),
                 "step": int(r["step"])} for _, r in eps.iterrows()]

    def report(self) -> list[dict[str, Any]]:
        return report(self.windows, list(self.histories.values()))


def rl_dataset(histories: list[History], fmt: ContextFormat):
    """The RL-format contexts as a ``datasets.Dataset``: one row per context with per-episode lists
    ``states``, ``actions`` (token ids), ``rewards``, ``logprobs`` and ``steps``."""
    from datasets import Dataset

    contexts = RLContexts(histories, fmt)
    rows = []
    for i, (name, _) in enumerate(contexts.index):
        eps = contexts[i]
        rows.append({"history": name, "states": [e["state"].tolist() for e in eps],
                     "actions": [e["action"].tolist() for e in eps], "rewards": [e["reward"] for e in eps],
                     "logprobs": [e["logprobs"].tolist() for e in eps], "steps": [e["step"] for e in eps]})
    return Dataset.from_list(rows)


def split_histories(histories: list[History], heldout: list[str]) -> tuple[list[History], list[History]]:
    """(training histories, held-out histories), by name."""
    return [h for h in histories if h.name not in heldout], [h for h in histories if h.name in heldout]


def final_steps(history: History, n_steps: int) -> History:
    """The history restricted to its last ``n_steps`` PPO steps (the final policy's episodes)."""
    df = history.episodes
    last = sorted(df["step"].unique())[-n_steps:]
    return History(history.name, df[df["step"].isin(last)], history.info)


def write_contexts(ad, histories: dict[str, str], heldout: list[str], tokenizer: str, out_dir) -> list[dict]:
    """The ``ad-data`` stage: ``train.jsonl`` (training histories), ``heldout.jsonl`` (held-out ones),
    ``expert.jsonl`` (the last ``ad.expert_steps`` steps of the training histories: expert distillation),
    ``report.csv`` (per history and split: episodes, in contexts, dropped as too long, steps spanned) and
    ``tokenizer/``, the tokenizer the contexts were measured in and the AD models train with: ``tokenizer``
    (the policy's directory), or for ``'world'`` one made from the training histories' episodes in the language
    format (:func:`~rlhf_pipeline.models.vocab.training_tokenizer`). Every history is read and every check made
    before anything is written."""
    import pandas as pd

    from ..io import atomic_dir, write_csv, write_jsonl
    from ..models.vocab import training_tokenizer

    missing = [h for h in heldout if h not in histories]
    if missing:
        raise PipelineError(f"--heldout {missing}: not among the histories {sorted(histories)}")
    loaded = [load_history(name, d) for name, d in histories.items()]
    train, held = split_histories(loaded, heldout)
    if not train:
        raise PipelineError(f"every history is held out ({heldout}); leave at least one for training")
    tok = training_tokenizer(tokenizer, lambda: (episode_text(row, ad.format) for h in train
                                                 for _, row in h.episodes.iterrows()), padding_side="right")
    expert = [final_steps(h, ad.expert_steps) for h in train]
    outputs, reports = {}, []
    for split, hs in (("train", train), ("heldout", held), ("expert", expert)):
        rows, rep = language_contexts(hs, ad.format, tok)
        outputs[split] = rows
        reports += [{"split": split, **r} for r in rep]
    out_dir = Path(out_dir)
    for split, rows in outputs.items():
        write_jsonl(out_dir / f"{split}.jsonl", rows)
    write_csv(pd.DataFrame(reports), out_dir / "report.csv")
    with atomic_dir(out_dir / "tokenizer") as tmp:  # whole or not at all; a full disk in one line
        tok.save_pretrained(tmp)
    return reports
