"""Proxy RM training with TRL's RewardTrainer on a tiny learnable preference set."""

import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import write_jsonl
from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.reward import RewardModel, RMConfig
from rlhf_pipeline.reward.ensemble import EnsembleReward
from rlhf_pipeline.reward.train import pairwise_accuracy, train_reward_model

torch.set_num_threads(1)
WORDS = ["the", "cat", "dog", "sat", "on", "a", "mat", "with", "red", "blue", "green", "house", "tree"]
CFG = dict(head="last_token", epochs=2, batch_size=16, learning_rate=3e-3, max_length=32)


def _rows(n, flip_every, seed):
    """Gold prefers responses ending in 'excellent' over 'terrible'; every ``flip_every``-th
    label is flipped (chosen/rejected swapped, label_flipped=True)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        base = " ".join(rng.choice(WORDS) for _ in range(5))
        good, bad = base + " excellent", base + " terrible"
        flipped = flip_every > 0 and i % flip_every == 0
        rows.append(dict(prompt="Write:", chosen=bad if flipped else good, rejected=good if flipped else bad,
                         gold_chosen=-1.0 if flipped else 1.0, gold_rejected=1.0 if flipped else -1.0,
                         label_flipped=flipped))
    return rows


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("rm")
    tok = load_tokenizer("minilm")
    lm = load_causal_lm(None, tok, tiny=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=4))
    lm.save_pretrained(d / "sft")
    tok.save_pretrained(d / "sft")
    write_jsonl(d / "train.jsonl", _rows(128, 8, seed=0))  # 12.5% label noise
    write_jsonl(d / "val.jsonl", _rows(40, 2, seed=1))  # half the val labels flipped
    return d


@pytest.fixture(scope="module")
def trained(setup):
    d = setup
    out = {}
    for name, seed in (("a", 1), ("b", 2), ("a_again", 1)):
        out[name] = train_reward_model(RMConfig(**CFG), seed, d / "train.jsonl", d / "val.jsonl",
                                       d / "sft", d / f"rm_{name}")
    return out


def test_learns_gold_preference(trained):
    for m in (trained["a"], trained["b"]):
        assert m["accuracy_gold"] >= 0.9  # clearly above chance
        # half the val labels are flipped: a model that learned the gold preference gets ~0.5 on them
        assert abs(m["accuracy_noisy"] - 0.5) <= 0.1


def test_metrics_and_outputs(setup, trained):
    d = setup
    metrics = json.loads((d / "rm_a" / "metrics.json").read_text())
    for key in ("seed", "head", "n_train", "n_val", "accuracy_gold", "accuracy_noisy",
                "reward_mean", "reward_std", "train_time_s"):
        assert key in metrics, key
    assert metrics["seed"] == 1 and metrics["head"] == "last_token"
    assert metrics["n_train"] == 128 and metrics["n_val"] == 40
    assert metrics["reward_std"] > 0
    model = RewardModel.from_pretrained(d / "rm_a" / "model")
    assert model.config.reward_mean == pytest.approx(metrics["reward_mean"])
    assert model.config.reward_std == pytest.approx(metrics["reward_std"])
    assert model.config.reward_max_length == CFG["max_length"]
    assert (d / "rm_a" / "model" / "tokenizer.json").is_file()
    # stored mean/std standardise the policy's samples: z-scores over the train responses ~ N(0, 1)
    rows = [json.loads(line) for line in (d / "train.jsonl").read_text().splitlines()]
    ens = EnsembleReward([d / "rm_a" / "model"], standardize=True, device="cpu")
    z = ens([r["prompt"] for r in rows] * 2, [r["chosen"] for r in rows] + [r["rejected"] for r in rows])
    assert abs(float(z.mean())) < 1e-3 and float(z.std(unbiased=False)) == pytest.approx(1.0, abs=1e-3)


def test_seeds_differ_only_by_seed(setup):
    d = setup
    w = {k: load_file(str(d / f"rm_{k}" / "model" / "model.safetensors")) for k in ("a", "b", "a_again")}
    assert not torch.equal(w["a"]["score.weight"], w["b"]["score.weight"])
    assert all(torch.equal(w["a"][k], w["a_again"][k]) for k in w["a"])  # same seed, same model


def test_pairwise_accuracy_hand_computed():
    rc, rr = np.array([1.0, 0.0, 2.0, 1.0]), np.array([0.0, 1.0, 2.0, -1.0])
    assert pairwise_accuracy(rc, rr) == 0.5  # right, wrong, tie (wrong), right
    # gold = un-flipped: pair 1 flipped (RM prefers rejected -> right), pair 3 flipped (tie -> wrong)
    assert pairwise_accuracy(rc, rr, np.array([False, True, True, False])) == 0.75


def test_input_validation(setup, tmp_path):
    d = setup
    rows = _rows(4, 0, seed=2)
    del rows[2]["gold_rejected"]
    write_jsonl(tmp_path / "bad.jsonl", rows)
    (tmp_path / "empty.jsonl").write_text("")
    cfg = RMConfig(**CFG)
    with pytest.raises(PipelineError, match=r"bad\.jsonl:3.*gold_rejected"):
        train_reward_model(cfg, 1, tmp_path / "bad.jsonl", d / "val.jsonl", d / "sft", tmp_path / "out")
    with pytest.raises(PipelineError, match=r"empty\.jsonl.*empty"):
        train_reward_model(cfg, 1, d / "train.jsonl", tmp_path / "empty.jsonl", d / "sft", tmp_path / "out")
    with pytest.raises(PipelineError, match="does not exist"):
        train_reward_model(cfg, 1, d / "train.jsonl", d / "val.jsonl", tmp_path / "nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rm_config_from_dict():
    cfg = RMConfig.from_dict({"seeds": [4], "head": "attention", "learning_rate": "1e-3"})
    assert cfg.seeds == [4] and cfg.head == "attention" and cfg.learning_rate == 1e-3
    with pytest.raises(PipelineError, match=r"unknown key\(s\) \['lr'\].*learning_rate"):
        RMConfig.from_dict({"lr": 1.0})
    with pytest.raises(PipelineError, match="rm.head"):
        RMConfig.from_dict({"head": "cls"})


def test_summary_table_and_plot(setup, trained, tmp_path):
    import pandas as pd

    from rlhf_pipeline.reward.summary import summarize_rms

    d = setup
    paths = [d / "rm_b" / "metrics.json", d / "rm_a" / "metrics.json"]
    summarize_rms(paths, tmp_path / "rm_summary.csv", tmp_path / "rm_accuracy.png")
    df = pd.read_csv(tmp_path / "rm_summary.csv")
    assert df["seed"].tolist() == [1, 2]
    assert list(df.columns[:6]) == ["seed", "head", "accuracy_gold", "accuracy_noisy", "reward_mean", "reward_std"]
    assert df["accuracy_gold"].tolist() == [trained["a"]["accuracy_gold"], trained["b"]["accuracy_gold"]]
    assert (tmp_path / "rm_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(PipelineError, match="missing.json: file not found"):
        summarize_rms([tmp_path / "missing.json"], tmp_path / "x.csv", tmp_path / "x.png")
