"""The RL-format algorithm-distillation model (rlhf_pipeline.ad.rl): batching and masks, the reward head's
causality (it sees earlier rewards, never its own episode's), the metrics against hand-computed values,
a tiny train + evaluate on hand-made trajectory logs through the CLI stage, and bad input."""

import json
import math
import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch

from rlhf_pipeline.ad.config import ContextFormat
from rlhf_pipeline.ad.data import load_history
from rlhf_pipeline.ad.rl import ADRLConfig, build_model, collate, load_model, metric_rows, train_rl
from rlhf_pipeline.cli import main
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import load_tokenizer
from rlhf_pipeline.ppo.hooks import Rollout
from rlhf_pipeline.ppo.trajectories import TrajectoryLog

torch.set_num_threads(1)
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
        "max_position_embeddings": 128}


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("minilm")


def ep(state, action, reward):
    return {"state": torch.tensor(state), "action": torch.tensor(action), "reward": reward}


def test_collate_lays_out_episodes_labels_and_reward_slots():
    b = collate([[ep([1, 2], [3, 4, 5], 2.0), ep([6], [7], -1.0)], [ep([8], [9, 10], 0.0)]], pad_id=0,
                reward_mean=1.0, reward_std=2.0)
    # context 0: 1 2 3 4 5 [r] 6 7 [r]; context 1: 8 9 10 [r] + padding
    assert b.input_ids.tolist() == [[1, 2, 3, 4, 5, 0, 6, 7, 0], [8, 9, 10, 0, 0, 0, 0, 0, 0]]
    assert b.attention_mask.tolist() == [[1] * 9, [1] * 4 + [0] * 5]
    assert b.reward_slot.nonzero().tolist() == [[0, 5], [0, 8], [1, 3]]
    assert b.reward_in[0, 5] == 0.5 and b.reward_in[0, 8] == -1.0 and b.reward_in[1, 3] == -0.5  # (r - 1) / 2
    # each action token is the label of the position before it; states and slots are never targets
    assert b.labels.tolist() == [[-100, 3, 4, 5, -100, -100, 7, -100, -100], [9, 10] + [-100] * 7]
    assert b.reward_read.nonzero().tolist() == [[0, 4], [0, 7], [1, 2]]  # the last action token
    assert b.reward_target[b.reward_read].tolist() == [0.5, -1.0, -0.5]
    assert b.episode.tolist() == [[0] * 6 + [1] * 3, [0] * 4 + [-1] * 5]


def test_reward_head_sees_earlier_rewards_never_its_own(tok, tmp_path):
    torch.manual_seed(0)
    model = build_model(ADRLConfig(tiny=TINY), tok).eval()
    pad = tok.pad_token_id

    def predict(rewards):
        ctx = [ep([101, 2000 + k], [3000 + k, 3100 + k, 102], r) for k, r in enumerate(rewards)]
        with torch.no_grad():
            out = model(collate([ctx], pad))
        return out["reward_pred"], out["action_logprobs"]

    base, base_lp = predict([0.1, 0.5, -0.3])
    own, own_lp = predict([0.1, 0.5, 7.0])  # episode 2's own reward changed
    assert torch.allclose(own, base, atol=1e-6) and torch.allclose(own_lp, base_lp, atol=1e-6)
    earlier, earlier_lp = predict([0.1, -4.0, -0.3])  # episode 1's reward changed
    assert torch.allclose(earlier[:2], base[:2], atol=1e-6)  # episodes 0, 1 do not see it
    assert abs(float(earlier[2] - base[2])) > 1e-4  # episode 2 does
    assert not torch.allclose(earlier_lp[-3:], base_lp[-3:])  # and so do its action tokens
    # padding does not change anything
    ctx = [ep([101, 2000], [3000, 102], 0.1)]
    with torch.no_grad():
        alone = model(collate([ctx], pad))["reward_pred"]
        padded = model(collate([ctx, ctx * 3], pad))["reward_pred"]
    assert torch.allclose(padded[0], alone[0], atol=1e-5)
    # save_pretrained / load_model round-trip every weight (the tied LM head, the reward layers)
    model.save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    for name, p in model.state_dict().items():
        assert torch.equal(p, loaded.state_dict()[name]), name
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()


def test_metrics_against_hand_computed_values():
    hist = [{"pred": 1.0, "reward": 1.5, "logprob_sum": -2.0, "n_tokens": 2},
            {"pred": 2.0, "reward": 2.0, "logprob_sum": -3.0, "n_tokens": 1},
            {"pred": 0.0, "reward": 1.0, "logprob_sum": -4.0, "n_tokens": 4}]
    alone = [{**e, "pred": 0.0, "logprob_sum": e["logprob_sum"] * 2} for e in hist]
    rows = pd.DataFrame(metric_rows({"history": hist, "no_history": alone})).set_index(["condition", "metric"])
    assert rows.loc[("history", "reward_mae"), "value"] == pytest.approx(0.5)  # |.5|, 0, 1
    assert rows.loc[("no_history", "reward_mae"), "value"] == pytest.approx(1.5)  # 1.5, 2, 1
    assert rows.loc[("history", "action_logprob_per_token"), "value"] == pytest.approx((-1 - 3 - 1) / 3)
    assert rows.loc[("history", "reward_pearson"), "value"] == pytest.approx(np.corrcoef([1, 2, 0], [1.5, 2, 1])[0, 1])
    assert math.isnan(rows.loc[("no_history", "reward_pearson"), "value"])  # constant prediction
    d = rows.loc[("history_minus_no_history", "reward_mae")]
    assert d["value"] == pytest.approx(-1.0) and d["se"] == pytest.approx(np.std([-1, -2, 0], ddof=1) / math.sqrt(3))
    assert d["n"] == 3


def write_history(path, run, offset, steps=6, batch=4, seed=0):
    """A hand-made trajectory log: the reward rises with the step from a run-specific offset, so earlier
    rewards in the context say something about the next one."""
    rng = np.random.default_rng(seed)
    log = TrajectoryLog(path, {"run": run, "hparams": {"batch_size": batch}}, chunk_steps=3, batch_size=batch)
    log.on_resume(0)
    for step in range(1, steps + 1):
        pids = [[101, int(rng.integers(2000, 2010))] for _ in range(batch)]
        rids = [[int(rng.integers(3000, 3010)) for _ in range(int(rng.integers(1, 4)))] + [102] for _ in range(batch)]
        score = [offset + 0.1 * step + 0.01 * i for i in range(batch)]
        lps = [[-1.0] * len(r) for r in rids]
        log.on_rollout(Rollout(step, [f"p{i}" for i in range(batch)], pids, [f"r{i}" for i in range(batch)], rids,
                               lps, lps, lps, score, score, lps, lps))
    log.flush()
    return path


TOK = ["--tokenizer", "minilm"]  # the histories' token ids are MiniLM's (the tok fixture)


def test_cli_trains_and_evaluates_on_histories(tmp_path, tok):
    hist = {name: write_history(tmp_path / name / "trajectories", name, off, seed=i)
            for i, (name, off) in enumerate([("a", 0.0), ("b", 1.0), ("c", -1.0)])}
    fmt = {"context_length": 40, "episodes_per_step": 2}
    cfg = {"format": fmt, "rl": {"tiny": TINY, "epochs": 2, "batch_size": 4}, "eval": {"n_episodes_heldout": 8}}
    out = tmp_path / "out"
    rc = main(["ad-rl", *TOK, "--config", json.dumps(cfg), "--histories", f"a={hist['a']}", f"b={hist['b']}",
               "--heldout", f"c={hist['c']}", "--out-dir", str(out), "--manifest", str(tmp_path / "m.json")])
    assert rc == 0
    assert (out / "model" / "config.json").is_file() and (out / "model" / "model.safetensors").is_file()
    log = pd.read_csv(out / "train_log.csv")
    assert len(log) > 1 and np.isfinite(log["loss"]).all()
    report = pd.read_csv(out / "train_report.csv")
    assert list(report["history"]) == ["a", "b"] and (report["dropped_too_long"] == 0).all()
    m = pd.read_csv(out / "metrics.csv")
    assert set(m["condition"]) == {"history", "shuffled_history", "no_history", "history_minus_no_history",
                                   "shuffled_history_minus_no_history"}
    assert set(m["metric"]) == {"reward_mae", "reward_pearson", "action_logprob_per_token"}
    assert (m[m["metric"] == "reward_mae"]["n"] == 8).all()
    assert (m[m["condition"] == "history"]["mean_history_episodes"] >= 1).all()
    eps = pd.read_csv(out / "eval_episodes.csv")
    assert len(eps) == 8 and (eps["history"] == "c").all() and (eps["position"] >= 1).all()
    assert (eps["pred_no_history"] - eps["reward"]).abs().mean() == pytest.approx(
        m.set_index(["condition", "metric"]).loc[("no_history", "reward_mae"), "value"])
    assert (out / "metrics.png").stat().st_size > 0
    assert json.loads((tmp_path / "m.json").read_text())["stage"] == "ad-rl"


def test_sigterm_then_rerun_equals_uninterrupted(tmp_path, tok):
    hist = [load_history(n, write_history(tmp_path / n / "trajectories", n, off, seed=i))
            for i, (n, off) in enumerate([("a", 0.0), ("b", 1.0)])]
    fmt = ContextFormat(context_length=40, episodes_per_step=1)
    cfg = ADRLConfig(tiny=TINY, epochs=3, batch_size=2)
    straight = train_rl(cfg, fmt, hist, tmp_path / "straight", tok)
    assert straight["steps"] >= 10
    ck = tmp_path / "ckpt"

    def term_after_first_checkpoint():
        while not (ck / "step000001").exists():
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=term_after_first_checkpoint, daemon=True)
    killer.start()
    with pytest.raises(SystemExit) as exc:
        train_rl(cfg, fmt, hist, tmp_path / "out", tok, ckpt_dir=ck, checkpoint_every=1)
    killer.join()
    assert exc.value.code == 128 + signal.SIGTERM and not (tmp_path / "out").exists()
    stopped = max(int(p.name[4:]) for p in ck.glob("step*"))
    assert 1 <= stopped < straight["steps"]
    resumed = train_rl(cfg, fmt, hist, tmp_path / "out", tok, ckpt_dir=ck, checkpoint_every=1)
    assert resumed["resumed_from_step"] == stopped and not list(ck.glob("step*"))
    a, b = load_model(tmp_path / "straight" / "model"), load_model(tmp_path / "out" / "model")
    for name, p in a.state_dict().items():
        assert torch.equal(p, b.state_dict()[name]), name
    assert (tmp_path / "straight" / "train_log.csv").read_text() == (tmp_path / "out" / "train_log.csv").read_text()


def test_bad_input_is_one_line_before_training(tmp_path, capsys):
    empty = tmp_path / "empty" / "trajectories"
    empty.mkdir(parents=True)
    good = write_history(tmp_path / "g" / "trajectories", "g", 0.0)
    rc = main(["ad-rl", *TOK, "--histories", f"e={empty}", "--heldout", f"g={good}", "--out-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and str(empty) in err and "not a trajectory directory" in err
    too_long = {"format": {"context_length": 600}, "lm": {"tiny": {"max_position_embeddings": 600}}}
    rc = main(["ad-rl", *TOK, "--histories", f"g={good}", "--heldout", f"h={good}", "--out-dir", str(tmp_path / "o"),
               "--config", json.dumps(too_long)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "ad.rl.tiny.max_position_embeddings" in err
    rc = main(["ad-rl", *TOK, "--histories", f"g={good}", "--heldout", f"g={good}", "--out-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "also in --histories" in err
    assert not (tmp_path / "o").exists()
    with pytest.raises(PipelineError, match="history 'x'"):
        load_history("x", tmp_path / "missing")
