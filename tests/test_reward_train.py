"""Proxy RM training on a tiny learnable preference set: TRL's RewardTrainer (tiny Llama, tiny T5 with
every head), and the frozen-backbone head loop on cached features vs the backbone in the loop."""

import json
import math
import random

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import write_jsonl
from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.reward import RewardModel, RMConfig
from rlhf_pipeline.reward.ensemble import EnsembleReward
from rlhf_pipeline.reward.heads import collate_readout_inputs, encode_for_reward, score_token_ids
from rlhf_pipeline.reward.train import (
    bradley_terry_loss,
    cache_nbytes,
    check_cache_fits,
    compute_feature_cache,
    estimate_cache_bytes,
    head_train_steps,
    linear_decay,
    pairwise_accuracy,
    train_reward_model,
)

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
                                            num_attention_heads=4), seed=0)
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


# --- encoder-decoder (T5) backbones, frozen backbone on cached features ----------------------------

T5_HEADS = [("last_token", "encoder"), ("mean", "encoder"), ("attention", "encoder"), ("layer_attention", "encoder"),
            ("first_token_attention", "encoder"), ("first_token_attention", "decoder"), ("decoder_output", "encoder")]


@pytest.fixture(scope="module")
def t5_dir(setup):
    """A tiny randomly initialised T5 (on the MiniLM tokenizer) saved like a hub model: rm.init=<dir>."""
    from transformers import T5Config, T5ForConditionalGeneration

    d = setup / "t5"
    tok = load_tokenizer("minilm")
    torch.manual_seed(0)
    T5ForConditionalGeneration(T5Config(
        vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
    )).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _weights(path):
    return load_file(str(path / "model" / "model.safetensors"))


@pytest.mark.parametrize("head, stack", T5_HEADS, ids=[f"{h}-{s}" for h, s in T5_HEADS])
def test_t5_backbone_trains_with_every_head(setup, t5_dir, tmp_path, head, stack):
    d = setup
    cfg = RMConfig(**{**CFG, "head": head, "epochs": 1}, readout_stack=stack, init=str(t5_dir))
    m = train_reward_model(cfg, 1, d / "train.jsonl", d / "val.jsonl", None, tmp_path / "rm")
    assert m["head"] == head and m["readout_stack"] == ("decoder" if "decoder" in (head + stack) else "encoder")
    assert m["freeze_backbone"] is False and m["reward_std"] > 0
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm" / "model")
    assert isinstance(model, RewardModel) and model.config.backbone_config["model_type"] == "t5"
    assert model.config.head == head and model.stack == m["readout_stack"]
    w, w0 = _weights(tmp_path / "rm"), load_file(str(t5_dir / "model.safetensors"))
    assert not torch.equal(w["backbone.encoder.block.0.layer.1.DenseReluDense.wo.weight"],
                           w0["encoder.block.0.layer.1.DenseReluDense.wo.weight"])  # TRL trained the backbone
    ens = EnsembleReward([tmp_path / "rm" / "model"], standardize=False, device="cpu")
    rows = [json.loads(line) for line in (d / "val.jsonl").read_text().splitlines()]
    r = ens([x["prompt"] for x in rows] * 2, [x["chosen"] for x in rows] + [x["rejected"] for x in rows]).numpy()
    flipped = np.array([x["label_flipped"] for x in rows])
    assert pairwise_accuracy(r[:len(rows)], r[len(rows):], flipped) == pytest.approx(m["accuracy_gold"])


@pytest.mark.parametrize("backbone, head, stack", [("t5", "attention", "encoder"), ("t5", "first_token_attention",
                                                                                   "decoder"),
                                                   ("sft", "layer_attention", "encoder")])
def test_cached_features_equal_frozen_backbone_in_the_loop(setup, t5_dir, tmp_path, backbone, head, stack):
    d = setup
    cfg = RMConfig(**{**CFG, "head": head, "epochs": 2, "learning_rate": 1e-2}, readout_stack=stack,
                   init=str(t5_dir) if backbone == "t5" else "sft", freeze_backbone=True)
    runs = {cache: train_reward_model(cfg, 3, d / "train.jsonl", d / "val.jsonl", d / "sft",
                                      tmp_path / f"rm_{cache}", cache_features=cache) for cache in (True, False)}
    cached, in_loop = runs[True], runs[False]
    w_c, w_l = _weights(tmp_path / "rm_True"), _weights(tmp_path / "rm_False")
    assert w_c.keys() == w_l.keys()
    for k in w_c:
        assert torch.allclose(w_c[k], w_l[k], atol=1e-6, rtol=0), (k, (w_c[k] - w_l[k]).abs().max())
    for k in ("accuracy_gold", "accuracy_noisy", "reward_mean", "reward_std", "train_loss"):
        assert cached[k] == pytest.approx(in_loop[k], abs=1e-6), k
    assert cached["train_steps"] == in_loop["train_steps"] == 16  # ceil(2 * ceil(128 / 16))
    assert cached["feature_cache_mb"] > 0 and in_loop["feature_cache_mb"] == 0
    assert cached["freeze_backbone"] and cached["cache_features"] and not in_loop["cache_features"]
    assert cached["resumed_from"] is None and cached["feature_dtype"] == "float32"
    # only the head trained: the backbone is the one we started from, the reward's bias stays 0
    src = load_file(str((t5_dir if backbone == "t5" else d / "sft") / "model.safetensors"))
    prefix = "" if backbone == "t5" else "model."
    same = {k: src[prefix + k[len("backbone."):]] for k in w_c if prefix + k[len("backbone."):] in src}
    assert len(same) >= 10 and all(torch.equal(w_c[k], v) for k, v in same.items())
    assert float(w_c["score.bias"]) == 0.0 and w_c["score.weight"].abs().sum() > 0
    assert RewardModel.from_pretrained(tmp_path / "rm_True" / "model").config.freeze_backbone


def test_frozen_t5_head_learns_the_preference(setup, t5_dir, tmp_path):
    d = setup
    cfg = RMConfig(**{**CFG, "head": "mean", "epochs": 4, "learning_rate": 3e-2}, init=str(t5_dir),
                   freeze_backbone=True)
    m = train_reward_model(cfg, 1, d / "train.jsonl", d / "val.jsonl", None, tmp_path / "rm")
    assert m["accuracy_gold"] >= 0.9, m


def test_head_backbone_mismatch_rejected_before_training(setup, t5_dir, tmp_path):
    d = setup
    for cfg, message in (
        (RMConfig(**{**CFG, "head": "decoder_output"}), "config rm.head: got 'decoder_output', expected a head that "
         "applies to a llama backbone (decoder-only): ['last_token', 'mean', 'attention', 'layer_attention']"),
        (RMConfig(**{**CFG, "head": "mean"}, init=str(t5_dir), readout_stack="decoder"),
         "config rm.readout_stack: got 'decoder', expected 'encoder' for head 'mean' on a t5 backbone"),
    ):
        with pytest.raises(PipelineError) as e:
            train_reward_model(cfg, 1, d / "train.jsonl", d / "val.jsonl", d / "sft", tmp_path / "out")
        assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert not (tmp_path / "out").exists()


def test_frozen_loop_math_hand_computed():
    r_c, r_r = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0])
    want = (math.log(1 + math.exp(-1.0)) + math.log(2.0)) / 2
    assert bradley_terry_loss(r_c, r_r).item() == pytest.approx(want, abs=1e-7)
    assert [linear_decay(s, 4) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert head_train_steps(100, 32, 2) == (4, 8)
    assert head_train_steps(100, 32, 0.5) == (4, 2)
    assert head_train_steps(10, 32, 0.1) == (1, 1)


@pytest.mark.parametrize("head, stack", [("attention", "encoder"), ("mean", "encoder"), ("last_token", "encoder"),
                                         ("first_token_attention", "decoder")])
def test_feature_cache_trimmed_per_text_and_its_size(t5_dir, head, stack):
    tok = load_tokenizer(str(t5_dir))
    model = RewardModel.from_backbone(str(t5_dir), head=head, readout_stack=stack, attention_layers=2)
    ids = encode_for_reward(tok, ["Q:"] * 3, ["yes", "no no no no", "a b"], max_length=16)
    cache = compute_feature_cache(model, tok, ids, batch_size=2, dtype=torch.bfloat16)
    reads_tokens = head in ("attention", "mean")
    n_layers = 1 if head in ("mean", "last_token") else 2
    assert [tuple(x.shape) for x in cache] == [(n_layers, len(x) if reads_tokens else 1, 32) for x in ids]
    assert all(x.dtype == torch.bfloat16 for x in cache)
    assert cache_nbytes(cache) == estimate_cache_bytes([len(x) for x in ids], head, n_layers, 32, 2)
    with torch.no_grad():  # the cached features give the model's rewards (to bfloat16 rounding)
        got = model.readout(collate_readout_inputs(cache, dtype=torch.float32)).squeeze(-1)
    assert torch.allclose(got, score_token_ids(model, tok, ids, batch_size=32), atol=0.05)


def test_cache_size_estimate_and_memory_check():
    assert estimate_cache_bytes([3, 5], "mean", 1, 4, 4) == 8 * 4 * 4
    assert estimate_cache_bytes([3, 5], "attention", 3, 4, 2) == 8 * 3 * 4 * 2
    assert estimate_cache_bytes([3, 5], "first_token_attention", 3, 4, 4) == 2 * 3 * 4 * 4
    assert estimate_cache_bytes([3, 5], "last_token", 1, 4, 4) == 2 * 4 * 4
    check_cache_fits(10, 10)
    check_cache_fits(10**12, None)  # unknown: no check
    with pytest.raises(PipelineError, match=r"^rm\.freeze_backbone: the feature cache needs 2\.0 GB but 1\.0 GB of "
                                            r"memory is available; use rm\.feature_dtype: bfloat16"):
        check_cache_fits(2 * 10**9, 10**9)
