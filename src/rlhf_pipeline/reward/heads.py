"""A reward model = any ``AutoModel`` backbone + a readout head giving one scalar per sequence.

Heads (``RewardModelConfig.head``):

- ``last_token``: the final-layer hidden state of the last non-padding token. Found from the
  attention mask, so it works with left and right padding.
- ``mean``: the masked mean of the final-layer hidden states over non-padding tokens.
- ``attention``: for each of the last ``attention_layers`` hidden-state layers, attention pooling
  over tokens with a learned query per layer (softmax masked so padding gets exactly zero weight),
  then a learned softmax weighting over those layers (the FLAN-T5 readout, minus its padding bug).

The pooled vector goes through a readout: linear (``mlp_hidden=0``) or a one-hidden-layer MLP.
Position ids are computed from the attention mask, so left padding does not shift positions of
backbones with absolute position embeddings (BERT/MiniLM).

Importing :mod:`rlhf_pipeline.reward` registers the classes with ``AutoConfig`` and
``AutoModelForSequenceClassification``, so a saved reward model loads with either
``RewardModel.from_pretrained(dir)`` or ``AutoModelForSequenceClassification.from_pretrained(dir)``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from ..errors import PipelineError
from ..models import join_text
from .config import HEAD_NAMES as HEADS


@strict
class RewardModelConfig(PreTrainedConfig):
    """Configuration of :class:`RewardModel`.

    Args:
        backbone_config: the backbone's config as a dict (``config.to_dict()``, with ``model_type``).
        head: readout head, one of ``last_token``, ``mean``, ``attention``.
        attention_layers: ``attention`` head: pool over the last N hidden-state layers (clipped to
            the number the backbone has, embeddings included).
        mlp_hidden: width of the readout MLP's hidden layer; 0 = a linear readout.
        freeze_backbone: whether the backbone's parameters are frozen (only the head trains).
        reward_mean: mean reward over the SFT policy's samples (set after training; used to
            standardise ensemble members).
        reward_std: standard deviation of those rewards.
        reward_max_length: tokens per scored text (training and inference truncate identically).
    """

    model_type = "rlhf_reward_model"

    backbone_config: dict | None = None
    head: str = "last_token"
    attention_layers: int = 4
    mlp_hidden: int = 0
    freeze_backbone: bool = False
    reward_mean: float = 0.0
    reward_std: float = 1.0
    reward_max_length: int | None = None

    def __post_init__(self, **kwargs):
        if self.id2label is None:
            kwargs.setdefault("num_labels", 1)  # one scalar reward per sequence
        super().__post_init__(**kwargs)
        if self.head not in HEADS:
            raise PipelineError(f"reward model head {self.head!r}: must be one of {list(HEADS)}")
        if self.attention_layers < 1:
            raise PipelineError(f"reward model attention_layers={self.attention_layers}: must be >= 1")
        if self.mlp_hidden < 0:
            raise PipelineError(f"reward model mlp_hidden={self.mlp_hidden}: must be >= 0")

    def make_backbone_config(self) -> PreTrainedConfig:
        """The backbone's ``PreTrainedConfig`` rebuilt from the stored dict."""
        if not self.backbone_config:
            raise PipelineError("reward model config has no backbone_config")
        d = dict(self.backbone_config)
        return AutoConfig.for_model(d.pop("model_type"), **d)


# ---------------------------------------------------------------------------------------------
# Pooling: pure functions on (B, T, H) hidden states and a (B, T) attention mask.
# ---------------------------------------------------------------------------------------------


def last_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hidden state of each row's last non-padding token (left or right padding). (B,T,H)->(B,H)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask.bool(), positions, -1).max(dim=1).values.clamp(min=0)  # (B,)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def masked_mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states over non-padding tokens. (B,T,H)->(B,H)."""
    m = mask.bool().unsqueeze(-1)
    total = hidden.masked_fill(~m, 0.0).sum(dim=1)
    return total / m.sum(dim=1).clamp(min=1).to(hidden.dtype)


def masked_attention_pool(hidden: torch.Tensor, mask: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Softmax attention pooling over tokens with one query vector; padding gets zero weight.

    weights_t = softmax_t(h_t . q / sqrt(H)) over tokens with mask 1; returns sum_t weights_t h_t.
    (B,T,H), (B,T), (H,) -> (B,H).
    """
    m = mask.bool()
    hidden = hidden.masked_fill(~m.unsqueeze(-1), 0.0)  # padded states may be NaN/garbage
    scores = (hidden @ query) / math.sqrt(hidden.shape[-1])  # (B,T)
    scores = scores.masked_fill(~m, float("-inf"))
    weights = torch.softmax(scores, dim=1).nan_to_num(0.0)  # all-padding row -> zeros
    return torch.einsum("bt,bth->bh", weights, hidden)


class AttentionPooling(nn.Module):
    """Attention pooling over tokens per layer (one learned query each), then a learned softmax
    weighting over the layers."""

    def __init__(self, hidden_size: int, n_layers: int):
        super().__init__()
        self.queries = nn.Parameter(torch.zeros(n_layers, hidden_size))  # zeros = mean pooling at init
        self.layer_logits = nn.Parameter(torch.zeros(n_layers))  # zeros = equal layer weights

    def forward(self, layers: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """``layers``: the last n_layers hidden states, each (B,T,H). Returns (B,H)."""
        pooled = torch.stack(
            [masked_attention_pool(h, mask, q) for h, q in zip(layers, self.queries)], dim=1
        )  # (B,L,H)
        layer_weights = torch.softmax(self.layer_logits, dim=0)  # (L,)
        return torch.einsum("l,blh->bh", layer_weights, pooled)


def _hidden_size(config: PreTrainedConfig) -> int:
    text = config.get_text_config()
    for name in ("hidden_size", "d_model", "n_embd", "dim"):
        if getattr(text, name, None):
            return int(getattr(text, name))
    raise PipelineError(f"backbone {type(config).__name__}: cannot find its hidden size")


def _num_layers(config: PreTrainedConfig) -> int:
    text = config.get_text_config()
    for name in ("num_hidden_layers", "num_layers", "n_layer"):
        if getattr(text, name, None):
            return int(getattr(text, name))
    return 1


class RewardModel(PreTrainedModel):
    """Backbone + readout head; ``forward`` returns ``SequenceClassifierOutput(logits=(B, 1))``."""

    config_class = RewardModelConfig
    base_model_prefix = "backbone"
    supports_gradient_checkpointing = False
    _supports_sdpa = True

    def __init__(self, config: RewardModelConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config)
        self.backbone = backbone if backbone is not None else AutoModel.from_config(config.make_backbone_config())
        hidden = _hidden_size(self.backbone.config)
        if config.head == "attention":
            self.n_pool_layers = min(config.attention_layers, _num_layers(self.backbone.config) + 1)
            self.pooler = AttentionPooling(hidden, self.n_pool_layers)
        if config.mlp_hidden > 0:
            self.score = nn.Sequential(
                nn.Linear(hidden, config.mlp_hidden), nn.GELU(), nn.Linear(config.mlp_hidden, 1)
            )
        else:
            self.score = nn.Linear(hidden, 1)
        fwd = inspect.signature(self.backbone.forward).parameters
        self._takes_position_ids = "position_ids" in fwd
        self._takes_use_cache = "use_cache" in fwd
        self.post_init()
        if config.freeze_backbone:
            self.backbone.requires_grad_(False)

    @torch.no_grad()
    def _init_weights(self, module):
        if isinstance(module, AttentionPooling):
            module.queries.zero_()
            module.layer_logits.zero_()
        elif isinstance(module, nn.Linear):
            std = 1.0 / math.sqrt(module.in_features)
            module.weight.normal_(0.0, std)
            if module.bias is not None:
                module.bias.zero_()

    @classmethod
    def from_backbone(
        cls,
        backbone: str | PreTrainedModel,
        head: str = "last_token",
        attention_layers: int = 4,
        mlp_hidden: int = 0,
        freeze_backbone: bool = False,
        **backbone_kwargs: Any,
    ) -> RewardModel:
        """A reward model around ``backbone``: a hub id, a local path (e.g. the SFT policy's dir:
        its base model is used, its LM head dropped) or an already-built model (used, not copied;
        a causal LM contributes its base model). The head is freshly initialised (seed with
        ``transformers.set_seed`` first)."""
        if isinstance(backbone, str):
            try:
                backbone = AutoModel.from_pretrained(backbone, **backbone_kwargs)
            except OSError as e:
                raise PipelineError(f"reward model backbone {backbone!r}: cannot be loaded ({e})") from None
        else:
            backbone = getattr(backbone, "base_model", backbone)  # e.g. LlamaForCausalLM -> LlamaModel
        bcfg = backbone.config.to_dict()
        config = RewardModelConfig(
            backbone_config=bcfg,
            head=head,
            attention_layers=attention_layers,
            mlp_hidden=mlp_hidden,
            freeze_backbone=freeze_backbone,
            pad_token_id=backbone.config.get_text_config().pad_token_id,
        )
        return cls(config, backbone=backbone)

    def pooled_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The head's input: the pooled (B, H) vector the readout maps to a reward."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kw: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self._takes_position_ids:
            kw["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        if self._takes_use_cache:
            kw["use_cache"] = False
        head = self.config.head
        out = self.backbone(**kw, output_hidden_states=(head == "attention"), return_dict=True)
        if head == "attention":
            return self.pooler(list(out.hidden_states[-self.n_pool_layers:]), attention_mask)
        if head == "mean":
            return masked_mean_pool(out.last_hidden_state, attention_mask)
        return last_token_pool(out.last_hidden_state, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        """Rewards as ``logits`` (B, 1). Other keyword arguments (e.g. ``use_cache`` from trainers)
        are ignored."""
        features = self.pooled_features(input_ids, attention_mask, token_type_ids)
        return SequenceClassifierOutput(logits=self.score(features.to(self.score_dtype)))

    @property
    def score_dtype(self) -> torch.dtype:
        return next(self.score.parameters()).dtype


def register_auto_classes() -> None:
    """Make ``AutoConfig`` / ``AutoModelForSequenceClassification`` know our reward model."""
    AutoConfig.register(RewardModelConfig.model_type, RewardModelConfig, exist_ok=True)
    AutoModelForSequenceClassification.register(RewardModelConfig, RewardModel, exist_ok=True)


# ---------------------------------------------------------------------------------------------
# Text -> token ids -> rewards. The SAME functions serve training (train.py) and inference
# (ensemble.py, gold.py), so a reward model always sees text exactly as it was trained on it.
# ---------------------------------------------------------------------------------------------


def encode_texts(tokenizer, texts: Sequence[str], max_length: int | None = None,
                 add_eos: bool = True) -> list[list[int]]:
    """Token ids of each text: the tokenizer's special tokens, truncated on the right so that,
    with the EOS appended (``add_eos``, as TRL's RewardTrainer does), at most ``max_length``."""
    eos = tokenizer.eos_token_id if add_eos else None
    limit = None if max_length is None else max_length - (1 if eos is not None else 0)
    enc = tokenizer(list(texts), truncation=limit is not None, max_length=limit)["input_ids"]
    if eos is not None:
        enc = [ids if ids and ids[-1] == eos else ids + [eos] for ids in enc]
    return enc


def encode_for_reward(tokenizer, prompts: Sequence[str], responses: Sequence[str],
                      max_length: int | None = None, add_eos: bool = True) -> list[list[int]]:
    """Token ids of ``join_text(prompt, response)`` for each pair (see :func:`encode_texts`)."""
    if len(prompts) != len(responses):
        raise PipelineError(f"{len(prompts)} prompts but {len(responses)} responses")
    return encode_texts(tokenizer, [join_text(p, r) for p, r in zip(prompts, responses)],
                        max_length, add_eos)


def padded_batches(tokenizer, ids: Sequence[list[int]], batch_size: int, desc: str | None = None):
    """Yield ``(indices, batch)``: padded tensor batches of ``ids``, shortest texts first (less
    padding); ``indices`` say which inputs each batch holds. A tqdm bar shows when ``desc`` is set."""
    from tqdm.auto import tqdm

    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    starts = range(0, len(order), batch_size)
    for s in tqdm(starts, desc=desc, disable=desc is None or len(starts) < 2):
        idx = order[s:s + batch_size]
        batch = tokenizer.pad({"input_ids": [list(ids[i]) for i in idx]}, return_tensors="pt")
        yield idx, {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}


@torch.no_grad()
def score_token_ids(model, tokenizer, ids: Sequence[list[int]], batch_size: int = 32,
                    device: str | torch.device | None = None, desc: str | None = None) -> torch.Tensor:
    """Rewards (float32, CPU, shape (N,), in input order) of pre-tokenised texts, batched, no grad.

    Works for :class:`RewardModel` and for any sequence-classification model (``logits[:, 0]``),
    or models whose output carries ``rewards`` (AlpacaFarm's reward model)."""
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    out = torch.zeros(len(ids))
    for idx, batch in padded_batches(tokenizer, ids, batch_size, desc):
        res = model(**{k: v.to(device) for k, v in batch.items()})
        rewards = res.rewards if getattr(res, "rewards", None) is not None else res.logits[:, 0]
        out[idx] = rewards.float().reshape(-1).cpu()
    model.train(was_training)
    return out


register_auto_classes()
