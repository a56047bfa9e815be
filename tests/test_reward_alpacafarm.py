"""AlpacaFarm's reward model as AlpacaFarm saves it (RewardConfig + backbone_model.* / reward_head.* weights), loaded
by GoldScorer without AlpacaFarm, scoring as AlpacaFarm does: left padding, last hidden state at position -1,
reward_head with its bias."""

import json

import pytest
import torch
from huggingface_hub import save_torch_state_dict
from transformers import LlamaConfig, LlamaForCausalLM

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import check_model
from rlhf_pipeline.models.vocab import train_tokenizer
from rlhf_pipeline.reward.alpacafarm import AlpacaFarmRewardModel, save_alpacafarm_layout
from rlhf_pipeline.reward.gold import GoldScorer, alpacafarm_format

torch.set_num_threads(2)
PROMPTS = ["Name a colour.", "Give me three reasons to learn to cook at home.", "Hi", "Summarise the text.",
           "Why is the sky blue during the day but dark at night?"]
RESPONSES = ["Blue.", "It is cheaper, healthier and fun.", "Hello! How can I help you today?",
             "The text says that cats are wonderful pets for people who live in small flats.", "Scattering."]


def _write_rm(root, layout="bin_sharded", drop=(), recorded=None):
    """A tiny AlpacaFarm reward model at root/reward-model-human (its backbone config at root/sft10k), written the
    way AlpacaFarm's recovery does. Returns (rm_dir, backbone, head)."""
    rm = root / "reward-model-human"
    tok = train_tokenizer([alpacafarm_format(p, r) for p, r in zip(PROMPTS, RESPONSES)] * 4, "llama3", 300, rm)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      tie_word_embeddings=False)
    backbone = LlamaForCausalLM(cfg).eval()
    head = torch.nn.Linear(cfg.hidden_size, 1)
    with torch.no_grad():
        head.bias.fill_(0.75)  # AlpacaFarm's head has a bias: it must be added
    backbone.save_pretrained(root / "sft10k")
    recorded = "./pretrained_models/sft10k" if recorded is None else recorded
    if layout == "ours":
        save_alpacafarm_layout(backbone, head, rm, recorded, max_shard_size="40KB")
        return rm, backbone, head
    state = {f"backbone_model.{k}": v.clone() for k, v in backbone.state_dict().items()}
    state.update({f"reward_head.{k}": v.clone() for k, v in head.state_dict().items()})
    state = {k: v for k, v in state.items() if not k.startswith(drop)}
    if layout == "bin_sharded":  # transformers 4.29.2 (AlpacaFarm's pin): pytorch_model-0000k-of-0000n.bin + index
        save_torch_state_dict(state, rm, filename_pattern="pytorch_model{suffix}.bin", max_shard_size="40KB",
                              safe_serialization=False)
    else:  # newer transformers: safetensors
        save_torch_state_dict(state, rm, max_shard_size="10GB")
    config = {"architectures": ["RewardModel"], "backbone_model_name_or_path": recorded,
              "model_type": "reward_model", "torch_dtype": "float32", "transformers_version": "4.29.2"}
    (rm / "config.json").write_text(json.dumps(config))
    return rm, backbone, head


@torch.no_grad()
def _reference(tok, backbone, head, texts):
    """Each text alone (no padding): BOS + text, last position's hidden state @ head weight + bias."""
    out = []
    for t in texts:
        ids = torch.tensor([tok(t)["input_ids"]])
        hidden = backbone.model(input_ids=ids).last_hidden_state[0, -1]
        out.append(float(hidden @ head.weight[0] + head.bias[0]))
    return torch.tensor(out)


@pytest.mark.parametrize("layout", ["bin_sharded", "safetensors", "ours"])
def test_gold_scorer_loads_alpacafarm_rm_and_scores_like_alpacafarm(tmp_path, layout):
    rm, backbone, head = _write_rm(tmp_path, layout)
    if layout != "safetensors":
        assert (rm / "pytorch_model.bin.index.json").is_file() and len(list(rm.glob("pytorch_model-*.bin"))) > 1
    scorer = GoldScorer(rm, is_alpacafarm_rm=True, batch_size=len(PROMPTS), device="cpu")
    assert isinstance(scorer.model, AlpacaFarmRewardModel) and scorer.tokenizer.padding_side == "left"
    texts = [alpacafarm_format(p, r) for p, r in zip(PROMPTS, RESPONSES)]
    ids = [scorer.tokenizer(t)["input_ids"] for t in texts]
    assert len({len(i) for i in ids}) > 1 and all(i[0] == scorer.tokenizer.bos_token_id for i in ids)
    assert all(i[-1] != scorer.tokenizer.eos_token_id for i in ids)  # no EOS, as AlpacaFarm scores
    got = torch.from_numpy(scorer(PROMPTS, RESPONSES))  # one left-padded batch of all five
    want = _reference(scorer.tokenizer, backbone, head, texts)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # the same read directly: position -1 of a left-padded batch
    batch = scorer.tokenizer(texts, padding=True, return_tensors="pt")
    assert (batch["attention_mask"][:, -1] == 1).all() and (batch["attention_mask"][:, 0] == 0).any()
    with torch.no_grad():
        hidden = backbone.model(**batch).last_hidden_state[:, -1]
    torch.testing.assert_close(got, (hidden @ head.weight[0] + head.bias[0]), atol=1e-5, rtol=0)


def test_plan_time_check_accepts_alpacafarm_dir(tmp_path):
    rm, _, _ = _write_rm(tmp_path, "bin_sharded")
    ref = check_model("config gold_rm.path", str(rm))
    assert ref.local and ref.path == str(rm)


def test_missing_weights_one_line_error(tmp_path):
    rm, _, _ = _write_rm(tmp_path, "bin_sharded", drop=("reward_head.",))
    with pytest.raises(PipelineError) as e:
        GoldScorer(rm, is_alpacafarm_rm=True, batch_size=8, device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and str(rm) in msg and "missing" in msg and "reward_head" in msg

    for f in rm.glob("pytorch_model*"):  # no weights at all
        f.unlink()
    with pytest.raises(PipelineError) as e:
        GoldScorer(rm, is_alpacafarm_rm=True, batch_size=8, device="cpu")
    assert "\n" not in str(e.value) and str(rm) in str(e.value)


def test_backbone_config_found_or_one_line_error(tmp_path):
    # an absolute recorded path is used as written (no sibling needed)
    elsewhere = tmp_path / "elsewhere"
    rm, backbone, _ = _write_rm(tmp_path / "a", "safetensors", recorded=str(elsewhere / "sft10k"))
    elsewhere.mkdir()
    (tmp_path / "a" / "sft10k").rename(elsewhere / "sft10k")
    scorer = GoldScorer(rm, batch_size=8, device="cpu")
    assert scorer.model.backbone_model.config.hidden_size == backbone.config.hidden_size

    # neither the recorded path nor a sibling sft10k: one line naming config.json and the recorded name
    rm, _, _ = _write_rm(tmp_path / "b", "safetensors", recorded="./nowhere/sft10k")
    for f in (tmp_path / "b" / "sft10k").iterdir():
        f.unlink()
    (tmp_path / "b" / "sft10k").rmdir()
    with pytest.raises(PipelineError) as e:
        GoldScorer(rm, batch_size=8, device="cpu")
    msg = str(e.value)
    assert "\n" not in msg and str(rm / "config.json") in msg and "./nowhere/sft10k" in msg
