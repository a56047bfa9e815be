"""Backbone configs of the three kinds (decoder-only Llama, encoder-only BERT, encoder-decoder T5) and the
readout heads that apply to each; shared by the reward tests."""

from rlhf_pipeline.reward import HEADS

LLAMA, BERT, T5 = {"model_type": "llama"}, {"model_type": "bert"}, {"model_type": "t5", "is_encoder_decoder": True,
                                                                    "decoder_start_token_id": 0}
HEADS_OF = {"llama": ["last_token", "mean", "attention", "layer_attention"],
            "bert": ["last_token", "mean", "attention", "layer_attention", "first_token_attention"],
            "t5": list(HEADS)}
