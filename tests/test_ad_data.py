"""Algorithm distillation's data (rlhf_pipeline.ad.data): windows over learning histories (span steps,
whole episodes, drops reported), language and RL contexts, and histories without trajectories."""

import pandas as pd
import pytest

from rlhf_pipeline.ad.config import ContextFormat
from rlhf_pipeline.ad.data import (
    History,
    RLContexts,
    final_steps,
    language_contexts,
    load_history,
    pack,
    rl_cost,
    rl_dataset,
    streams,
    windows,
)
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.ppo.hooks import Rollout
from rlhf_pipeline.ppo.trajectories import TrajectoryLog


def history(steps=4, batch=4, response_len=lambda s, i: 2, name="h"):
    """A hand-made history: ``steps`` PPO steps of ``batch`` episodes; episode (s, i) has a response of
    ``response_len(s, i)`` tokens, a 2-token prompt and score s + i / 10."""
    rows = []
    for s in range(1, steps + 1):
        for i in range(batch):
            n = response_len(s, i)
            rows.append({"run": name, "step": s, "episode": (s - 1) * batch + i, "batch_index": i,
                         "prompt": f"p{s}.{i}", "prompt_ids": [1, 2], "response": "w " * n,
                         "response_ids": list(range(n)), "logprobs": [-1.0] * n, "score": s + i / 10,
                         "penalized_score": s + i / 10})
    return History(name, pd.DataFrame(rows), {"hparams": {"batch_size": batch}})


def test_pack_fills_whole_items_and_reports_the_too_long():
    assert pack([3, 3, 3, 5, 2, 9, 1], 6) == ([[0, 1], [2], [3], [4, 6]], [5])
    assert pack([], 6) == ([], [])
    assert pack([6, 6], 6) == ([[0], [1]], [])


def test_streams_take_episodes_per_step_in_step_order_with_a_stride():
    h = history(steps=5, batch=4)
    fmt = ContextFormat(episodes_per_step=2, step_stride=2)
    got = [[(h.episodes.loc[r, "step"], h.episodes.loc[r, "batch_index"]) for r in s] for s in streams(h, fmt)]
    assert got == [[(1, 0), (1, 1), (3, 0), (3, 1), (5, 0), (5, 1)], [(1, 2), (1, 3), (3, 2), (3, 3), (5, 2), (5, 3)]]


def test_windows_span_steps_and_count_episodes_that_do_not_fit():
    # RL cost = 2 (prompt) + response + 1; step 2 episode 0 is too long for a 12-token context
    h = history(steps=3, batch=2, response_len=lambda s, i: 20 if (s, i) == (2, 0) else 3)
    w = windows(h, ContextFormat(episodes_per_step=1, context_length=12), rl_cost)
    steps = [[int(h.episodes.loc[r, "step"]) for r in c] for c in w.contexts]
    assert steps == [[1, 3], [1, 2], [3]]  # stream 0: steps 1 and 3 (step 2 dropped); stream 1: 6 + 6, then 6
    assert [int(h.episodes.loc[r, "step"]) for r in w.dropped] == [2] and w.n_episodes == 6
    assert w.streams == [0, 1, 1]


def test_language_contexts_never_split_an_episode_and_respect_the_limit():
    from rlhf_pipeline.models import load_tokenizer

    tok = load_tokenizer("minilm", padding_side="right")
    h = history(steps=6, batch=2)
    fmt = ContextFormat(episodes_per_step=1, context_length=40)
    rows, report = language_contexts([h], fmt, tok)
    for r in rows:
        assert len(tok(r["text"], add_special_tokens=False)["input_ids"]) <= 40
        assert r["text"].count("Prompt: ") == r["n_episodes"] and r["text"].endswith("\n\n")
    assert sum(r["n_episodes"] for r in rows) == 12 and report[0]["dropped_too_long"] == 0
    assert max(r["last_step"] - r["first_step"] for r in rows) >= 1  # a context spans PPO steps
    assert "Reward: 1.10" in rows[-1]["text"] or "Reward: 6.10" in rows[-1]["text"]
    with pytest.raises(PipelineError, match=r"context_length: 8 tokens is shorter than every episode \(the shortest"):
        language_contexts([h], ContextFormat(context_length=8), tok)


def test_rl_contexts_dataset_items_and_the_final_policy_slice():
    h = history(steps=4, batch=2)
    ds = RLContexts([h], ContextFormat(episodes_per_step=1, context_length=12))
    assert len(ds) == 4 and [e["step"] for e in ds[0]] == [1, 2]
    assert ds[0][0]["reward"] == 1.0 and ds[0][0]["action"].tolist() == [0, 1]
    assert sorted(final_steps(h, 2).episodes["step"].unique()) == [3, 4]
    hf = rl_dataset([h], ContextFormat(episodes_per_step=1, context_length=12))
    assert hf.num_rows == 4 and hf[0]["steps"] == [1, 2] and hf[0]["actions"] == [[0, 1], [0, 1]]
    assert hf[0]["rewards"] == [1.0, 2.0]


def test_history_without_trajectories_is_one_clear_line(tmp_path):
    with pytest.raises(PipelineError, match="does not exist"):
        load_history("h0", tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError, match=r"not a trajectory directory \(no _run.json\)"):
        load_history("h0", tmp_path / "empty")
    log = TrajectoryLog(tmp_path / "started", {"run": "r", "hparams": {"batch_size": 1}}, 1, 1)
    log.on_resume(0)
    with pytest.raises(PipelineError, match="no trajectory chunks"):
        load_history("h0", tmp_path / "started")
    log.on_rollout(Rollout(step=1, prompts=["p"], prompt_ids=[[1]], responses=["r"], response_ids=[[2]],
                           logprobs=[[-0.5]], ref_logprobs=[[-0.25]], values=[[0.1]], score=[0.7],
                           penalized_score=[0.7], kl=[[-0.25]], rewards=[[0.7]]))
    h = load_history("h0", tmp_path / "started")
    assert h.batch_size == 1 and h.episodes.loc[0, "score"] == 0.7 and list(h.episodes.loc[0, "logprobs"]) == [-0.5]
