"""Readout heads: shapes, padding invariance (left/right), save/load round trips, pooling math."""

import math

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertConfig, BertModel

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.reward import HEADS, RewardModel, RewardModelConfig
from rlhf_pipeline.reward.heads import (
    encode_for_reward,
    last_token_pool,
    masked_attention_pool,
    masked_mean_pool,
    score_token_ids,
)

torch.set_num_threads(1)
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
TEXTS = ["the cat sat on the mat today", "hi", "a longer sentence with several more words in it"]


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("minilm")


@pytest.fixture(scope="module")
def backbones(tok):
    llama = load_causal_lm(None, tok, tiny=TINY, seed=0)
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=64, pad_token_id=tok.pad_token_id))
    return {"llama": llama, "bert": bert}


def _model(backbones, kind, head, **kw):
    torch.manual_seed(1)
    return RewardModel.from_backbone(backbones[kind], head=head, **kw).eval()


def _rewards(model, tok, side, pad_to=None):
    tok.padding_side = side
    try:
        kw = dict(padding="max_length", max_length=pad_to) if pad_to else dict(padding=True)
        enc = tok(TEXTS, return_tensors="pt", **kw)
    finally:
        tok.padding_side = "left"
    with torch.no_grad():
        return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits


# --- pooling math, hand-computed ----------------------------------------------------------------


def test_last_token_pool_left_and_right_padding():
    h = torch.arange(2 * 4 * 1, dtype=torch.float).reshape(2, 4, 1)  # row0: 0..3, row1: 4..7
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    assert last_token_pool(h, right).flatten().tolist() == [1.0, 7.0]
    assert last_token_pool(h, left).flatten().tolist() == [3.0, 7.0]


def test_masked_mean_pool_ignores_padding_even_nan():
    h = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [float("nan"), 100.0]]])
    assert masked_mean_pool(h, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 4.0]]


def test_masked_attention_pool_hand_computed():
    # h1=[1,0], h2=[0,1], padding = NaN; q = [sqrt(2) ln 3, 0] -> scores [ln 3, 0] -> weights [3/4, 1/4]
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [float("nan"), float("nan")]]])
    mask = torch.tensor([[1, 1, 0]])
    q = torch.tensor([math.sqrt(2) * math.log(3), 0.0])
    assert torch.allclose(masked_attention_pool(h, mask, q), torch.tensor([[0.75, 0.25]]))
    # zero query = plain masked mean
    assert torch.allclose(masked_attention_pool(h, mask, torch.zeros(2)), torch.tensor([[0.5, 0.5]]))


# --- the model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["llama", "bert"])
@pytest.mark.parametrize("head", HEADS)
def test_shape_and_padding_invariance(tok, backbones, kind, head):
    model = _model(backbones, kind, head)
    ref = _rewards(model, tok, "right")
    assert ref.shape == (len(TEXTS), 1)
    assert torch.isfinite(ref).all()
    assert len(set(ref.flatten().tolist())) == len(TEXTS)  # different texts, different rewards
    for side in ("left", "right"):
        for pad_to in (None, 20):
            assert torch.allclose(_rewards(model, tok, side, pad_to), ref, atol=1e-5), (side, pad_to)


@pytest.mark.parametrize("head", HEADS)
def test_save_load_round_trip(tok, backbones, tmp_path, head):
    model = _model(backbones, "llama", head, mlp_hidden=8 if head == "mean" else 0)
    model.config.reward_mean, model.config.reward_std = 0.25, 2.0
    model.save_pretrained(tmp_path)
    ref = _rewards(model, tok, "left")
    for loader in (RewardModel, AutoModelForSequenceClassification):
        loaded = loader.from_pretrained(tmp_path).eval()
        assert isinstance(loaded, RewardModel)
        assert loaded.config.head == head and loaded.config.reward_std == 2.0
        got = _rewards(loaded, tok, "left")
        assert torch.allclose(got, ref, atol=1e-6, rtol=0), (got - ref).abs().max()


def test_attention_head_learns_layer_weights_and_clips_layers(tok, backbones):
    model = _model(backbones, "llama", "attention", attention_layers=10).train()
    assert model.n_pool_layers == 3  # 2 layers + embeddings
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    model(**enc).logits.sum().backward()
    assert model.pooler.queries.grad.abs().sum() > 0
    assert model.pooler.layer_logits.grad.abs().sum() > 0


def test_from_backbone_keeps_pretrained_weights_and_freezes(tok, backbones, tmp_path):
    lm = backbones["llama"]
    lm.save_pretrained(tmp_path / "sft")
    model = RewardModel.from_backbone(str(tmp_path / "sft"), head="mean", freeze_backbone=True)
    assert torch.equal(model.backbone.embed_tokens.weight, lm.model.embed_tokens.weight)
    assert torch.equal(model.backbone.layers[0].mlp.up_proj.weight, lm.model.layers[0].mlp.up_proj.weight)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"score.weight", "score.bias"}


def test_encoding_and_batched_scoring_match_forward(tok, backbones):
    model = _model(backbones, "llama", "last_token")
    ids = encode_for_reward(tok, ["Q:", "Q:"], ["yes", "no no no no no"], max_length=5)
    assert all(len(x) <= 5 and x[-1] == tok.eos_token_id and x[0] == tok.cls_token_id for x in ids)
    batched = score_token_ids(model, tok, ids, batch_size=1)
    with torch.no_grad():
        single = torch.cat([model(input_ids=torch.tensor([x])).logits[:, 0] for x in ids])
    assert torch.allclose(batched, single, atol=1e-5)


def test_bad_head_config():
    with pytest.raises(PipelineError, match="last_token"):
        RewardModelConfig(backbone_config={"model_type": "bert"}, head="cls")
