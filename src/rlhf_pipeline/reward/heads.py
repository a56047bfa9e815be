"""A reward model = an ``AutoModel`` backbone + a readout head giving one scalar per sequence.

Backbones: encoder-only (BERT/MiniLM), decoder-only (Llama, the SFT policy) and encoder-decoder (T5 /
FLAN-T5; ``AutoModel`` gives ``T5Model``). An encoder-decoder runs its encoder alone for the heads that
read the encoder, and encoder + decoder with a one-token decoder input (``decoder_start_token_id``, one
position per row) for the heads that read the decoder; :func:`~rlhf_pipeline.reward.config.head_stack`
says which. Which head applies to which backbone: :func:`~rlhf_pipeline.reward.config.check_head`.

Heads (``RewardModelConfig.head``); "layer" = a hidden-state layer of the stack read, the embedding
output counting as one; the last N = ``attention_layers``, clipped to the layers the stack has:

- ``last_token``: the final-layer hidden state of the last non-padding token (found from the attention
  mask, so left and right padding agree).
- ``mean``: the masked mean of the final-layer hidden states over non-padding tokens.
- ``attention``: for each of the last N layers, attention pooling over tokens with a learned query per
  layer (softmax masked so padding gets exactly zero weight), then a learned softmax weighting over
  those layers that does not depend on the input (the FLAN-T5 readout, minus its padding bug).
- ``layer_attention``: for each of the last N layers, the masked mean over non-padding tokens m_l;
  then attention pooling across layers with one learned query q: w = softmax_l(m_l . q / sqrt(H)),
  output sum_l w_l m_l (input-dependent layer weights; q = 0 at init = the mean over layers).
- ``first_token_attention``: the first token's state f_l in each of the last N layers (an encoder
  stack: the first non-padding token, e.g. ``[CLS]``; the decoder stack: position 0, the decoder
  start), pooled like ``layer_attention``: softmax_l(f_l . q / sqrt(H)). Encoder-decoders pick the
  stack with ``readout_stack``; not for decoder-only models (a causal first token sees nothing else).
- ``decoder_output``: the decoder's final-layer hidden state at the start position (encoder-decoder).

The model is split in two (for frozen-backbone training on cached features, :mod:`.train`):
:meth:`RewardModel.readout_inputs` runs the backbone and returns exactly the hidden states the head
reads, ``{"hidden_states": (B, L, T, H), "attention_mask": (B, T)}`` (padding zeroed): the last N
layers' states for ``attention``/``layer_attention``; the last layer's for ``mean``; one position
(T = 1, mask 1) gathered from each read layer for ``last_token`` (L = 1), ``decoder_output`` (L = 1)
and ``first_token_attention``. :meth:`RewardModel.readout` maps them to rewards (B, 1); ``forward``
is ``readout(readout_inputs(...))``. :func:`split_readout_inputs` / :func:`collate_readout_inputs`
trim them to each text's length and pad them back, identically for the cache and the backbone.

The pooled vector goes through a readout: linear (``mlp_hidden=0``) or a one-hidden-layer MLP.
Position ids are computed from the attention mask, so left padding does not shift positions of
backbones with absolute position embeddings (BERT/MiniLM); backbones that take no position ids or
token type ids (T5) get none.

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

from ..config import default_of
from ..errors import PipelineError
from ..models import join_text
from .config import HEAD_NAMES as HEADS
from .config import LAYER_HEADS, READOUT_STACKS, RMConfig, check_head, head_stack


@strict
class RewardModelConfig(PreTrainedConfig):
    """Configuration of :class:`RewardModel`.

    Args:
        backbone_config: the backbone's config as a dict (``config.to_dict()``, with ``model_type``).
        head: readout head, one of :data:`HEADS` (checked against the backbone by
            :func:`~rlhf_pipeline.reward.config.check_head`).
        attention_layers: ``attention`` / ``layer_attention`` / ``first_token_attention``: read the last
            N hidden-state layers (clipped to the number the stack has, embeddings included).
        readout_stack: encoder-decoder backbones: the stack ``first_token_attention`` reads
            (``encoder`` or ``decoder``); see :func:`~rlhf_pipeline.reward.config.head_stack`.
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
    readout_stack: str = "encoder"
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
        if self.readout_stack not in READOUT_STACKS:
            raise PipelineError(f"reward model readout_stack {self.readout_stack!r}: must be one of "
                                f"{list(READOUT_STACKS)}")
        if self.attention_layers < 1:
            raise PipelineError(f"reward model attention_layers={self.attention_layers}: must be >= 1")
        if self.mlp_hidden < 0:
            raise PipelineError(f"reward model mlp_hidden={self.mlp_hidden}: must be >= 0")
        if self.backbone_config:
            check_head(self.head, self.backbone_config, self.readout_stack)

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


def first_token_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Hidden state of each row's first non-padding token (left or right padding). (B,T,H)->(B,H)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    first = torch.where(mask.bool(), positions, mask.shape[1]).min(dim=1).values.clamp(max=mask.shape[1] - 1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), first]


def masked_mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the hidden states over non-padding tokens. (B,T,H)->(B,H)."""
    m = mask.bool().unsqueeze(-1)
    total = hidden.masked_fill(~m, 0.0).sum(dim=1)
    return total / m.sum(dim=1).clamp(min=1).to(hidden.dtype)


def masked_attention_weights(hidden: torch.Tensor, mask: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Attention weights of one query over tokens: softmax_t(h_t . q / sqrt(H)) over tokens with mask 1;
    padding gets exactly 0 (an all-padding row: all 0). (B,T,H), (B,T), (H,) -> (B,T)."""
    m = mask.bool()
    hidden = hidden.masked_fill(~m.unsqueeze(-1), 0.0)  # padded states may be NaN/garbage
    scores = (hidden @ query) / math.sqrt(hidden.shape[-1])  # (B,T)
    scores = scores.masked_fill(~m, float("-inf"))
    return torch.softmax(scores, dim=1).nan_to_num(0.0)


def masked_attention_pool(hidden: torch.Tensor, mask: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Softmax attention pooling over tokens with one query vector; padding gets zero weight.

    weights_t = softmax_t(h_t . q / sqrt(H)) over tokens with mask 1; returns sum_t weights_t h_t.
    (B,T,H), (B,T), (H,) -> (B,H).
    """
    weights = masked_attention_weights(hidden, mask, query)
    return torch.einsum("bt,bth->bh", weights, hidden.masked_fill(~mask.bool().unsqueeze(-1), 0.0))


def layer_attention_pool(hidden: torch.Tensor, mask: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """Masked mean over tokens per layer, then attention pooling across layers with one query.

    m_l = masked mean of layer l; w = softmax_l(m_l . q / sqrt(H)); returns sum_l w_l m_l.
    (B,L,T,H), (B,T), (H,) -> (B,H). With T = 1 (one gathered position per layer) it is attention
    over the layers' states at that position (``first_token_attention``).
    """
    b, n_layers, t, h = hidden.shape
    means = masked_mean_pool(hidden.reshape(b * n_layers, t, h), mask.repeat_interleave(n_layers, dim=0))
    means = means.reshape(b, n_layers, h)
    return masked_attention_pool(means, torch.ones(b, n_layers, dtype=mask.dtype, device=mask.device), query)


class AttentionPooling(nn.Module):
    """``attention`` head: attention pooling over tokens per layer (one learned query each), then a
    learned softmax weighting over the layers."""

    def __init__(self, hidden_size: int, n_layers: int):
        super().__init__()
        self.queries = nn.Parameter(torch.zeros(n_layers, hidden_size))  # zeros = mean pooling at init
        self.layer_logits = nn.Parameter(torch.zeros(n_layers))  # zeros = equal layer weights

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``hidden``: the last n_layers hidden states (B,L,T,H); ``mask`` (B,T). Returns (B,H)."""
        pooled = torch.stack(
            [masked_attention_pool(hidden[:, i], mask, q) for i, q in enumerate(self.queries)], dim=1
        )  # (B,L,H)
        layer_weights = torch.softmax(self.layer_logits, dim=0)  # (L,)
        return torch.einsum("l,blh->bh", layer_weights, pooled)


class LayerAttentionPooling(nn.Module):
    """``layer_attention`` / ``first_token_attention`` heads: :func:`layer_attention_pool` with one
    learned query (zeros at init: the plain mean over layers)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``hidden`` (B,L,T,H), ``mask`` (B,T) -> (B,H)."""
        return layer_attention_pool(hidden, mask, self.query)


# ---------------------------------------------------------------------------------------------
# Readout inputs: trimmed per text (the frozen-backbone feature cache) and padded back.
# ---------------------------------------------------------------------------------------------


def split_readout_inputs(inputs: dict[str, torch.Tensor], dtype: torch.dtype | None = None) -> list[torch.Tensor]:
    """Each row's readout inputs trimmed to its non-padding positions: a list of B tensors (L, n_i, H),
    fresh copies (``dtype``: stored as; default unchanged). Inverse: :func:`collate_readout_inputs`."""
    hidden, mask = inputs["hidden_states"], inputs["attention_mask"].bool()
    return [hidden[i][:, mask[i]].to(dtype or hidden.dtype).contiguous().clone() for i in range(hidden.shape[0])]


def collate_readout_inputs(items: Sequence[torch.Tensor], dtype: torch.dtype | None = None,
                           device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """Readout inputs of texts stored as (L, n_i, H), right-padded with zeros to the longest:
    ``{"hidden_states": (B, L, T, H), "attention_mask": (B, T)}`` (int64 mask)."""
    if not items:
        raise PipelineError("collate_readout_inputs: no items")
    n_layers, _, h = items[0].shape
    t = max(x.shape[1] for x in items)
    dtype = dtype or items[0].dtype
    hidden = torch.zeros(len(items), n_layers, t, h, dtype=dtype, device=device)
    mask = torch.zeros(len(items), t, dtype=torch.long, device=device)
    for i, x in enumerate(items):
        hidden[i, :, : x.shape[1]] = x.to(device=device, dtype=dtype)
        mask[i, : x.shape[1]] = 1
    return {"hidden_states": hidden, "attention_mask": mask}


def _hidden_size(config: PreTrainedConfig) -> int:
    text = config.get_text_config()
    for name in ("hidden_size", "d_model", "n_embd", "dim"):
        if getattr(text, name, None):
            return int(getattr(text, name))
    raise PipelineError(f"backbone {type(config).__name__}: cannot find its hidden size")


def _num_layers(config: PreTrainedConfig, stack: str = "backbone") -> int:
    text = config.get_text_config()
    names = ("num_hidden_layers", "num_layers", "n_layer")
    if stack == "decoder":
        names = ("num_decoder_layers", "decoder_layers", *names)
    for name in names:
        if getattr(text, name, None):
            return int(getattr(text, name))
    return 1


def _as_base_model(backbone: PreTrainedModel) -> PreTrainedModel:
    """The bare model of a built one: a causal LM's base model; an encoder-decoder with a head (e.g.
    ``T5ForConditionalGeneration``) becomes the class ``AutoModel`` builds (``T5Model``) holding its
    weights (copied; the LM head dropped)."""
    base = getattr(backbone, "base_model", backbone)  # e.g. LlamaForCausalLM -> LlamaModel
    if not getattr(base.config, "is_encoder_decoder", False):
        return base
    bare = AutoModel.from_config(base.config)
    if type(bare) is type(base):
        return base
    missing, _ = bare.load_state_dict(base.state_dict(), strict=False)
    if missing:
        raise PipelineError(f"reward model backbone {type(base).__name__}: no weights for {missing[:3]} "
                            f"of {type(bare).__name__}")
    param = next(base.parameters())
    return bare.to(device=param.device, dtype=param.dtype)


class RewardModel(PreTrainedModel):
    """Backbone + readout head; ``forward`` returns ``SequenceClassifierOutput(logits=(B, 1))``."""

    config_class = RewardModelConfig
    base_model_prefix = "backbone"
    supports_gradient_checkpointing = False
    _supports_sdpa = True

    def __init__(self, config: RewardModelConfig, backbone: PreTrainedModel | None = None):
        super().__init__(config)
        self.backbone = backbone if backbone is not None else AutoModel.from_config(config.make_backbone_config())
        bcfg = self.backbone.config
        hidden = _hidden_size(bcfg)
        self.stack = head_stack(config.head, config.backbone_config or bcfg.to_dict(), config.readout_stack)
        self.n_pool_layers = 1
        if config.head in LAYER_HEADS:
            self.n_pool_layers = min(config.attention_layers, _num_layers(bcfg, self.stack) + 1)
        if config.head == "attention":
            self.pooler = AttentionPooling(hidden, self.n_pool_layers)
        elif config.head in ("layer_attention", "first_token_attention"):
            self.pooler = LayerAttentionPooling(hidden)
        if config.mlp_hidden > 0:
            self.score = nn.Sequential(
                nn.Linear(hidden, config.mlp_hidden), nn.GELU(), nn.Linear(config.mlp_hidden, 1)
            )
        else:
            self.score = nn.Linear(hidden, 1)
        runner = self.backbone.get_encoder() if self.stack == "encoder" else self.backbone
        fwd = inspect.signature(runner.forward).parameters
        self._takes_position_ids = "position_ids" in fwd
        self._takes_token_type_ids = "token_type_ids" in fwd
        self._takes_use_cache = "use_cache" in fwd
        self._decoder_start = getattr(bcfg, "decoder_start_token_id", None)
        self.post_init()
        if config.freeze_backbone:
            self.backbone.requires_grad_(False)

    @torch.no_grad()
    def _init_weights(self, module):
        if isinstance(module, AttentionPooling):
            module.queries.zero_()
            module.layer_logits.zero_()
        elif isinstance(module, LayerAttentionPooling):
            module.query.zero_()
        elif isinstance(module, nn.Linear):
            std = 1.0 / math.sqrt(module.in_features)
            module.weight.normal_(0.0, std)
            if module.bias is not None:
                module.bias.zero_()

    @classmethod
    def from_backbone(
        cls,
        backbone: str | PreTrainedModel,
        head: str = default_of(RMConfig, "head"),
        attention_layers: int = default_of(RMConfig, "attention_layers"),
        mlp_hidden: int = 0,
        freeze_backbone: bool = default_of(RMConfig, "freeze_backbone"),
        readout_stack: str = default_of(RMConfig, "readout_stack"),
        **backbone_kwargs: Any,
    ) -> RewardModel:
        """A reward model around ``backbone``: a hub id, a local path (e.g. the SFT policy's dir:
        its base model is used, its LM head dropped) or an already-built model (used, not copied;
        a causal LM contributes its base model, an encoder-decoder with an LM head its encoder and
        decoder, copied into the bare model). The head is freshly initialised (seed with
        ``transformers.set_seed`` first); a head that does not apply to the backbone raises
        PipelineError (:func:`~rlhf_pipeline.reward.config.check_head`)."""
        if isinstance(backbone, str):
            try:
                backbone = AutoModel.from_pretrained(backbone, **backbone_kwargs)
            except OSError as e:
                raise PipelineError(f"reward model backbone {backbone!r}: cannot be loaded ({e})") from None
        else:
            backbone = _as_base_model(backbone)
        bcfg = backbone.config.to_dict()
        config = RewardModelConfig(
            backbone_config=bcfg,
            head=head,
            attention_layers=attention_layers,
            readout_stack=readout_stack,
            mlp_hidden=mlp_hidden,
            freeze_backbone=freeze_backbone,
            pad_token_id=backbone.config.get_text_config().pad_token_id,
        )
        return cls(config, backbone=backbone)

    def _stack_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                      token_type_ids: torch.Tensor | None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The last ``n_pool_layers`` hidden states (each (B,T,H)) of the stack the head reads, and
        that stack's mask (the decoder's: ones (B,1))."""
        all_layers = self.n_pool_layers > 1
        kw: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if self._takes_position_ids:
            kw["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        if token_type_ids is not None and self._takes_token_type_ids:
            kw["token_type_ids"] = token_type_ids
        if self._takes_use_cache:
            kw["use_cache"] = False
        if self.stack == "decoder":
            if self._decoder_start is None:
                raise PipelineError("reward model backbone: config has no decoder_start_token_id")
            start = torch.full((input_ids.shape[0], 1), self._decoder_start, dtype=input_ids.dtype,
                               device=input_ids.device)
            out = self.backbone(**kw, decoder_input_ids=start, output_hidden_states=all_layers, return_dict=True)
            states = out.decoder_hidden_states if all_layers else (out.last_hidden_state,)
            return list(states[-self.n_pool_layers:]), torch.ones_like(attention_mask[:, :1])
        runner = self.backbone.get_encoder() if self.stack == "encoder" else self.backbone
        out = runner(**kw, output_hidden_states=all_layers, return_dict=True)
        states = out.hidden_states if all_layers else (out.last_hidden_state,)
        return list(states[-self.n_pool_layers:]), attention_mask

    def readout_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Run the backbone; return exactly what the head reads (see the module docstring):
        ``{"hidden_states": (B, L, T, H), "attention_mask": (B, T)}``, padded positions zeroed."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        layers, mask = self._stack_states(input_ids, attention_mask, token_type_ids)
        head = self.config.head
        if head in ("last_token", "decoder_output"):
            hidden = last_token_pool(layers[-1], mask)[:, None, None]  # (B,1,1,H)
        elif head == "first_token_attention":
            hidden = torch.stack([first_token_pool(h, mask) for h in layers], dim=1)[:, :, None]  # (B,L,1,H)
        else:
            hidden = torch.stack(layers, dim=1).masked_fill(~mask.bool()[:, None, :, None], 0.0)  # (B,L,T,H)
            return {"hidden_states": hidden, "attention_mask": mask}
        return {"hidden_states": hidden, "attention_mask": torch.ones_like(mask[:, :1])}

    def pool(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The pooled (B, H) vector the score layer maps to a reward, from :meth:`readout_inputs`."""
        hidden = inputs["hidden_states"].to(self.score_dtype)
        mask = inputs["attention_mask"]
        if self.config.head in ("attention", "layer_attention", "first_token_attention"):
            return self.pooler(hidden, mask)
        return masked_mean_pool(hidden[:, -1], mask)  # mean; one position for last_token/decoder_output

    def readout(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Rewards (B, 1) from :meth:`readout_inputs` (live or cached)."""
        return self.score(self.pool(inputs))

    def pooled_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The head's input: the pooled (B, H) vector the readout maps to a reward."""
        return self.pool(self.readout_inputs(input_ids, attention_mask, token_type_ids))

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        """Rewards as ``logits`` (B, 1). Other keyword arguments (e.g. ``use_cache`` from trainers)
        are ignored."""
        return SequenceClassifierOutput(logits=self.readout(self.readout_inputs(input_ids, attention_mask,
                                                                                 token_type_ids)))

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
def score_token_ids(model, tokenizer, ids: Sequence[list[int]], batch_size: int,
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
