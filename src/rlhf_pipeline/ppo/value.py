"""The value model: a causal-LM backbone (no LM head) with a scalar head on every position."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import PipelineError


class ValueModel(nn.Module):
    """``values[b, i] = head(backbone(x)[b, i])``: the value of the state ending at token i."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        self.head = nn.Linear(hidden, 1)
        # lm-human-preference-details: scalar heads start with std 1/sqrt(hidden + 1), bias 0.
        nn.init.normal_(self.head.weight, std=1.0 / math.sqrt(hidden + 1))
        nn.init.zeros_(self.head.bias)

    def forward(self, input_ids, attention_mask, position_ids) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask,
                               position_ids=position_ids, use_cache=False).last_hidden_state
        return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1)  # [B, L]


def load_value_backbone(value_init: str, policy_dir: str, value_init_path: str | None,
                        vocab_size: int, dtype=torch.float32) -> nn.Module:
    """The backbone of the initial policy, or that of a reward-model directory.

    A reward-model backbone must be a causal decoder (values may not see future tokens) over the
    policy's vocabulary; otherwise PipelineError names ``ppo.value_init_path``.
    """
    from transformers import AutoConfig, AutoModel
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    path = policy_dir if value_init == "policy" else value_init_path
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise PipelineError(f"config ppo.value_init_path: {path!r} is not a model directory ({e})") from None
    if value_init == "reward":
        # Encoders such as BERT also have a causal-LM class, but only run causally as decoders.
        encoder = (config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
                   and not getattr(config, "is_decoder", False))
        if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or encoder:
            raise PipelineError(f"config ppo.value_init_path: {path!r} has model type "
                                f"{config.model_type!r}, not a causal decoder; use value_init: policy")
        if getattr(config, "vocab_size", None) != vocab_size:
            raise PipelineError(f"config ppo.value_init_path: {path!r} has vocab_size "
                                f"{getattr(config, 'vocab_size', None)}, the policy has {vocab_size}")
    return AutoModel.from_pretrained(path, dtype=dtype)
