"""Readout heads: shapes, padding invariance (left/right), save/load round trips, pooling math, on
decoder-only (tiny Llama), encoder-only (tiny BERT) and encoder-decoder (tiny T5) backbones; the split
into readout inputs + readout; a head that does not apply is refused when the model is built."""

import math

import pytest
import torch
from reward_helpers import HEADS_OF
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertModel,
    T5Config,
    T5ForConditionalGeneration,
    T5Model,
)

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.reward import RewardModel, RewardModelConfig
from rlhf_pipeline.reward.heads import (
    collate_readout_inputs,
    encode_for_reward,
    first_token_pool,
    last_token_pool,
    layer_attention_pool,
    masked_attention_pool,
    masked_attention_weights,
    masked_mean_pool,
    score_token_ids,
    split_readout_inputs,
)

torch.set_num_threads(1)
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
TEXTS = ["the cat sat on the mat today", "hi", "a longer sentence with several more words in it"]
# (backbone, head, readout_stack): every head on every backbone it applies to, and the T5 decoder variant
CASES = [(k, h, "encoder") for k, hs in HEADS_OF.items() for h in hs] + [("t5", "first_token_attention", "decoder")]
IDS = [f"{k}-{h}-{s}" for k, h, s in CASES]


def tiny_t5_config(tok) -> T5Config:
    return T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                    num_heads=4, decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("minilm")


@pytest.fixture(scope="module")
def backbones(tok):
    llama = load_causal_lm(None, tok, tiny=TINY, seed=0)
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=64, pad_token_id=tok.pad_token_id))
    torch.manual_seed(0)
    t5 = T5Model(tiny_t5_config(tok))
    return {"llama": llama, "bert": bert, "t5": t5}


def _model(backbones, kind, head, random_pooler=False, **kw):
    torch.manual_seed(1)
    model = RewardModel.from_backbone(backbones[kind], head=head, **kw).eval()
    if random_pooler and hasattr(model, "pooler"):  # non-uniform attention (zeros at init = plain means)
        with torch.no_grad():
            for p in model.pooler.parameters():
                p.normal_(0.0, 3.0)
    return model


def _batch(tok, side, pad_to=None, texts=TEXTS):
    tok.padding_side = side
    try:
        kw = dict(padding="max_length", max_length=pad_to) if pad_to else dict(padding=True)
        return tok(texts, return_tensors="pt", **kw)
    finally:
        tok.padding_side = "left"


def _rewards(model, tok, side, pad_to=None):
    enc = _batch(tok, side, pad_to)
    with torch.no_grad():
        return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits


# --- pooling math, hand-computed ----------------------------------------------------------------


def test_last_token_pool_left_and_right_padding():
    h = torch.arange(2 * 4 * 1, dtype=torch.float).reshape(2, 4, 1)  # row0: 0..3, row1: 4..7
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])
    assert last_token_pool(h, right).flatten().tolist() == [1.0, 7.0]
    assert last_token_pool(h, left).flatten().tolist() == [3.0, 7.0]


def test_first_token_pool_left_and_right_padding():
    h = torch.arange(2 * 4 * 1, dtype=torch.float).reshape(2, 4, 1)  # row0: 0..3, row1: 4..7
    assert first_token_pool(h, torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])).flatten().tolist() == [0.0, 4.0]
    assert first_token_pool(h, torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])).flatten().tolist() == [2.0, 5.0]


def test_masked_mean_pool_ignores_padding_even_nan():
    h = torch.tensor([[[1.0, 2.0], [3.0, 6.0], [float("nan"), 100.0]]])
    assert masked_mean_pool(h, torch.tensor([[1, 1, 0]])).tolist() == [[2.0, 4.0]]


def test_masked_attention_pool_hand_computed():
    # h1=[1,0], h2=[0,1], padding = NaN; q = [sqrt(2) ln 3, 0] -> scores [ln 3, 0] -> weights [3/4, 1/4]
    h = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [float("nan"), float("nan")]]])
    mask = torch.tensor([[1, 1, 0]])
    q = torch.tensor([math.sqrt(2) * math.log(3), 0.0])
    assert torch.allclose(masked_attention_pool(h, mask, q), torch.tensor([[0.75, 0.25]]))
    assert torch.allclose(masked_attention_weights(h, mask, q), torch.tensor([[0.75, 0.25, 0.0]]))
    # zero query = plain masked mean
    assert torch.allclose(masked_attention_pool(h, mask, torch.zeros(2)), torch.tensor([[0.5, 0.5]]))


def test_padding_gets_exactly_zero_attention_weight():
    torch.manual_seed(0)
    h = torch.randn(3, 6, 8) * 100  # large scores: padding would get weight if not masked
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    w = masked_attention_weights(h, mask, torch.randn(8) * 10)
    assert (w[mask == 0] == 0.0).all()  # exactly zero, also for an all-padding row
    assert torch.allclose(w[:2].sum(dim=1), torch.ones(2))


def test_layer_attention_pool_hand_computed():
    # layer 1 tokens [2,0],[0,0] -> mean [1,0]; layer 2 tokens [0,1],[0,1] -> mean [0,1]; padding NaN.
    nan = float("nan")
    h = torch.tensor([[[[2.0, 0.0], [0.0, 0.0], [nan, nan]],
                       [[0.0, 1.0], [0.0, 1.0], [nan, nan]]]])  # (B=1, L=2, T=3, H=2)
    mask = torch.tensor([[1, 1, 0]])
    q = torch.tensor([math.sqrt(2) * math.log(3), 0.0])  # scores over layers [ln 3, 0] -> weights [3/4, 1/4]
    assert torch.allclose(layer_attention_pool(h, mask, q), torch.tensor([[0.75, 0.25]]))
    assert torch.allclose(layer_attention_pool(h, mask, torch.zeros(2)), torch.tensor([[0.5, 0.5]]))


def test_mismatch_rejected_when_building_the_model(backbones):
    with pytest.raises(PipelineError, match=r"^config rm\.head: got 'decoder_output', expected .* llama backbone"):
        RewardModel.from_backbone(backbones["llama"], head="decoder_output")
    with pytest.raises(PipelineError, match=r"^config rm\.readout_stack: got 'decoder'"):
        RewardModel.from_backbone(backbones["t5"], head="attention", readout_stack="decoder")
    with pytest.raises(PipelineError, match="first_token_attention"):
        RewardModelConfig(backbone_config=backbones["llama"].config.to_dict(), head="first_token_attention")
    for head, stack in (("mean", "encoder"), ("first_token_attention", "decoder")):  # these apply
        RewardModelConfig(backbone_config=backbones["t5"].config.to_dict(), head=head, readout_stack=stack)


def test_bad_head_config():
    with pytest.raises(PipelineError, match="last_token"):
        RewardModelConfig(backbone_config={"model_type": "bert"}, head="cls")


# --- the model ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, head, stack", CASES, ids=IDS)
def test_shape_and_padding_invariance(tok, backbones, kind, head, stack):
    model = _model(backbones, kind, head, random_pooler=True, readout_stack=stack)
    ref = _rewards(model, tok, "right")
    assert ref.shape == (len(TEXTS), 1)
    assert torch.isfinite(ref).all()
    assert len(set(ref.flatten().tolist())) == len(TEXTS)  # different texts, different rewards
    for side in ("left", "right"):
        for pad_to in (None, 20):
            assert torch.allclose(_rewards(model, tok, side, pad_to), ref, atol=1e-5), (side, pad_to)


@pytest.mark.parametrize("kind, head, stack", CASES, ids=IDS)
def test_save_load_round_trip(tok, backbones, tmp_path, kind, head, stack):
    model = _model(backbones, kind, head, random_pooler=True, readout_stack=stack,
                   mlp_hidden=8 if head == "mean" else 0)
    model.config.reward_mean, model.config.reward_std = 0.25, 2.0
    model.save_pretrained(tmp_path)
    ref = _rewards(model, tok, "left")
    for loader in (RewardModel, AutoModelForSequenceClassification):
        loaded = loader.from_pretrained(tmp_path).eval()
        assert isinstance(loaded, RewardModel)
        assert loaded.config.head == head and loaded.config.reward_std == 2.0
        assert loaded.config.backbone_config["model_type"] == backbones[kind].config.model_type
        assert loaded.stack == model.stack and loaded.n_pool_layers == model.n_pool_layers
        got = _rewards(loaded, tok, "left")
        assert torch.allclose(got, ref, atol=1e-6, rtol=0), (got - ref).abs().max()


@pytest.mark.parametrize("kind, head, stack", CASES, ids=IDS)
def test_readout_inputs_are_what_the_head_reads(tok, backbones, kind, head, stack):
    model = _model(backbones, kind, head, random_pooler=True, readout_stack=stack, attention_layers=2)
    enc = _batch(tok, "left")
    with torch.no_grad():
        inputs = model.readout_inputs(enc["input_ids"], enc["attention_mask"])
        hidden, mask = inputs["hidden_states"], inputs["attention_mask"]
        n_layers = 2 if head in ("attention", "layer_attention", "first_token_attention") else 1
        n_tokens = enc["input_ids"].shape[1] if head in ("mean", "attention", "layer_attention") else 1
        assert hidden.shape == (len(TEXTS), n_layers, n_tokens, 32) and mask.shape == (len(TEXTS), n_tokens)
        assert (hidden.transpose(1, 2)[mask == 0] == 0).all()  # padding zeroed
        ref = model(**enc).logits
        assert torch.equal(model.readout(inputs), ref)  # forward = readout(readout_inputs(...))
        # trimmed to each text's length (the feature cache) and right-padded back: the same rewards
        items = split_readout_inputs(inputs)
        assert [x.shape[1] for x in items] == mask.sum(dim=1).tolist()
        assert torch.allclose(model.readout(collate_readout_inputs(items)), ref, atol=1e-6, rtol=0)
        assert torch.allclose(model.pooled_features(**enc), model.pool(inputs))


def test_t5_readouts_run_the_encoder_alone_or_a_one_token_decoder(tok, backbones):
    t5 = backbones["t5"].eval()
    enc = _batch(tok, "left")
    start = torch.full((len(TEXTS), 1), tok.pad_token_id)
    with torch.no_grad():
        enc_out = t5.get_encoder()(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                   output_hidden_states=True)
        full = t5(**enc, decoder_input_ids=start, output_hidden_states=True)
        mean = _model(backbones, "t5", "mean")
        want = mean.score(masked_mean_pool(enc_out.last_hidden_state, enc["attention_mask"]))
        assert torch.allclose(mean(**enc).logits, want, atol=1e-6)
        dec = _model(backbones, "t5", "decoder_output")
        assert torch.allclose(dec(**enc).logits, dec.score(full.last_hidden_state[:, 0]), atol=1e-6)
        # zero query: the plain mean over the last 2 layers' first states
        first_dec = _model(backbones, "t5", "first_token_attention", readout_stack="decoder", attention_layers=2)
        states = torch.stack([h[:, 0] for h in full.decoder_hidden_states[-2:]]).mean(dim=0)
        assert torch.allclose(first_dec(**enc).logits, first_dec.score(states), atol=1e-6)
        first_enc = _model(backbones, "t5", "first_token_attention", attention_layers=2)
        states = torch.stack([first_token_pool(h, enc["attention_mask"]) for h in enc_out.hidden_states[-2:]])
        assert torch.allclose(first_enc(**enc).logits, first_enc.score(states.mean(dim=0)), atol=1e-6)
        # T5 takes neither position ids nor token type ids: the latter are ignored
        assert not mean._takes_position_ids and not mean._takes_token_type_ids
        assert torch.equal(mean(**enc, token_type_ids=torch.ones_like(enc["input_ids"])).logits, mean(**enc).logits)


def test_t5_backbone_from_local_dir_and_from_a_conditional_generation_model(tok, tmp_path):
    torch.manual_seed(0)
    lm = T5ForConditionalGeneration(tiny_t5_config(tok))
    lm.save_pretrained(tmp_path / "t5")
    for source in (str(tmp_path / "t5"), lm):
        model = RewardModel.from_backbone(source, head="decoder_output", freeze_backbone=True)
        assert type(model.backbone) is T5Model  # the bare encoder-decoder, LM head dropped
        assert torch.equal(model.backbone.shared.weight, lm.shared.weight)
        assert torch.equal(model.backbone.decoder.block[1].layer[2].DenseReluDense.wo.weight,
                           lm.decoder.block[1].layer[2].DenseReluDense.wo.weight)
        assert {n for n, p in model.named_parameters() if p.requires_grad} == {"score.weight", "score.bias"}
        assert model.config.backbone_config["model_type"] == "t5"


def test_layer_heads_learn_and_clip_layers(tok, backbones):
    model = _model(backbones, "llama", "attention", attention_layers=10).train()
    assert model.n_pool_layers == 3  # 2 layers + embeddings
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    model(**enc).logits.sum().backward()
    assert model.pooler.queries.grad.abs().sum() > 0
    assert model.pooler.layer_logits.grad.abs().sum() > 0
    for kind, head, stack in (("t5", "layer_attention", "encoder"), ("t5", "first_token_attention", "decoder"),
                              ("bert", "first_token_attention", "encoder")):
        model = _model(backbones, kind, head, readout_stack=stack, attention_layers=10).train()
        assert model.n_pool_layers == 3  # 2 layers (encoder or decoder) + embeddings
        model(**enc).logits.sum().backward()
        assert model.pooler.query.grad.abs().sum() > 0, (kind, head)


def test_from_backbone_keeps_pretrained_weights_and_freezes(tok, backbones, tmp_path):
    lm = backbones["llama"]
    lm.save_pretrained(tmp_path / "sft")
    model = RewardModel.from_backbone(str(tmp_path / "sft"), head="mean", freeze_backbone=True)
    assert torch.equal(model.backbone.embed_tokens.weight, lm.model.embed_tokens.weight)
    assert torch.equal(model.backbone.layers[0].mlp.up_proj.weight, lm.model.layers[0].mlp.up_proj.weight)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"score.weight", "score.bias"}


@pytest.mark.parametrize("kind, head", [("llama", "last_token"), ("t5", "decoder_output"), ("t5", "attention")])
def test_encoding_and_batched_scoring_match_forward(tok, backbones, kind, head):
    model = _model(backbones, kind, head, random_pooler=True)
    ids = encode_for_reward(tok, ["Q:", "Q:"], ["yes", "no no no no no"], max_length=5)
    assert all(len(x) <= 5 and x[-1] == tok.eos_token_id and x[0] == tok.cls_token_id for x in ids)
    batched = score_token_ids(model, tok, ids, batch_size=2)
    with torch.no_grad():
        single = torch.cat([model(input_ids=torch.tensor([x])).logits[:, 0] for x in ids])
    assert torch.allclose(batched, single, atol=1e-5)
