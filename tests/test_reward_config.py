"""Reward-model settings (rlhf_pipeline.reward.config): per-member overrides, values and new settings checked,
which readout head applies to which backbone."""

import re

import pytest
from reward_helpers import BERT, HEADS_OF, LLAMA, T5

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.reward.config import RMConfig, backbone_kind, check_head, head_stack, heads_for

# --- which head applies to which backbone --------------------------------------------------------


def test_heads_for_each_backbone_kind():
    assert backbone_kind(LLAMA) == "decoder-only" and list(heads_for(LLAMA)) == HEADS_OF["llama"]
    assert backbone_kind(BERT) == "encoder-only" and list(heads_for(BERT)) == HEADS_OF["bert"]
    assert backbone_kind(T5) == "encoder-decoder" and list(heads_for(T5)) == HEADS_OF["t5"]
    assert backbone_kind({"model_type": "bert", "is_decoder": True}) == "decoder-only"  # causal BERT
    assert backbone_kind({"model_type": "t5"}) == "encoder-decoder"  # a config.json without is_encoder_decoder
    assert head_stack("decoder_output", T5) == "decoder"
    assert head_stack("first_token_attention", T5, "decoder") == "decoder"
    assert head_stack("first_token_attention", T5) == head_stack("attention", T5, "encoder") == "encoder"
    assert head_stack("mean", LLAMA, "decoder") == "backbone"  # one stack: readout_stack ignored


@pytest.mark.parametrize("head, cfg, stack, message", [
    ("decoder_output", LLAMA, "encoder", "config rm.head: got 'decoder_output', expected a head that applies to a "
     "llama backbone (decoder-only): ['last_token', 'mean', 'attention', 'layer_attention']"),
    ("first_token_attention", LLAMA, "encoder", "config rm.head: got 'first_token_attention', expected a head "
     "that applies to a llama backbone (decoder-only): ['last_token', 'mean', 'attention', 'layer_attention']"),
    ("decoder_output", BERT, "encoder", "config rm.head: got 'decoder_output', expected a head that applies to a "
     "bert backbone (encoder-only): ['last_token', 'mean', 'attention', 'layer_attention', 'first_token_attention']"),
    ("mean", T5, "decoder", "config rm.readout_stack: got 'decoder', expected 'encoder' for head 'mean' on a t5 "
     "backbone (only first_token_attention and decoder_output read the decoder stack)"),
    ("decoder_output", {**T5, "decoder_start_token_id": None}, "encoder", "config rm.head: got 'decoder_output', "
     "expected a head that reads the encoder (the t5 backbone's config has no decoder_start_token_id to start "
     "its decoder with)"),
    ("mean", T5, "both", "config rm.readout_stack: got 'both', expected one of ['encoder', 'decoder']"),
    ("cls", T5, "encoder", "config rm.head: got 'cls', expected one of ['last_token', 'mean', 'attention', "),
])
def test_head_backbone_mismatch_is_one_line(head, cfg, stack, message):
    with pytest.raises(PipelineError) as e:
        check_head(head, cfg, stack)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_rm_config_from_dict():
    cfg = RMConfig.from_dict({"seeds": [4], "head": "attention", "learning_rate": "1e-3"})
    assert cfg.seeds == [4] and cfg.head == "attention" and cfg.learning_rate == 1e-3
    with pytest.raises(PipelineError, match=r"unknown key\(s\) \['lr'\].*learning_rate"):
        RMConfig.from_dict({"lr": 1.0})
    with pytest.raises(PipelineError, match="rm.head"):
        RMConfig.from_dict({"head": "cls"})


def test_rm_config_new_settings():
    cfg = RMConfig.from_dict({"head": "first_token_attention", "readout_stack": "Decoder", "freeze_backbone": True,
                              "feature_dtype": "bfloat16"})
    assert (cfg.head, cfg.readout_stack, cfg.freeze_backbone, cfg.feature_dtype) == \
        ("first_token_attention", "decoder", True, "bfloat16")
    for d, message in (({"readout_stack": "both"}, "config rm.readout_stack: got 'both', expected one of "
                                                   "['encoder', 'decoder']"),
                       ({"feature_dtype": "int8"}, "config rm.feature_dtype: got 'int8', expected one of"),
                       ({"freeze_backbone": "yes"}, "config rm.freeze_backbone: got 'yes', expected true or false")):
        with pytest.raises(PipelineError, match=re.escape(message)):
            RMConfig.from_dict(d)


def test_member_overrides_and_the_disjoint_partition_seeds():
    rm = RMConfig.from_dict({"seeds": [1, 2, 3, 4], "data": "disjoint",
                             "members": {"2": {"data": "bootstrap", "member_label_noise": 0.1}}})
    assert rm.member(1).seeds == [1, 3, 4] and rm.member(4).data == "disjoint"
    assert rm.member(2).seeds == [2] and rm.member(2).data == "bootstrap" and rm.member(2).member_label_noise == 0.1
    with pytest.raises(PipelineError, match=r"rm.data: got 'half'"):
        RMConfig.from_dict({"data": "half"})
