"""Typed views of the ``rm:`` and ``gold_rm:`` config sections (keys exactly as in the YAML), and the
pure rules that say which readout head applies to which backbone (no torch: they run at plan time)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import Section, bad, join, setting

HEAD_NAMES = ("last_token", "mean", "attention", "layer_attention", "first_token_attention", "decoder_output")
"""Readout heads of :mod:`rlhf_pipeline.reward.heads` (defined here so configs load without torch)."""
LAYER_HEADS = ("attention", "layer_attention", "first_token_attention")
"""Heads that read the last ``attention_layers`` hidden-state layers (the others read the last layer)."""
READOUT_STACKS = ("encoder", "decoder")
"""Stacks of an encoder-decoder backbone ``first_token_attention`` can read (``rm.readout_stack``)."""
FEATURE_DTYPES = ("float32", "bfloat16", "float16")
"""Storage dtypes of the frozen-backbone feature cache (``rm.feature_dtype``)."""
OBJECTIVES = ("mean", "WCO", "UWO")
"""Ensemble objectives of :mod:`rlhf_pipeline.reward.ensemble`."""
DATA_MODES = ("all", "bootstrap", "disjoint")
"""Which training pairs a member sees (``rm.data``; :func:`rlhf_pipeline.reward.member_data.member_pairs`)."""

ENCODER_ONLY_MODEL_TYPES = frozenset({
    "albert", "big_bird", "bert", "camembert", "canine", "convbert", "data2vec-text", "deberta", "deberta-v2",
    "distilbert", "electra", "ernie", "esm", "flaubert", "fnet", "funnel", "ibert", "layoutlm", "longformer",
    "luke", "megatron-bert", "mobilebert", "modernbert", "mpnet", "mra", "nezha", "nomic_bert", "nystromformer",
    "rembert", "roberta", "roberta-prelayernorm", "roc_bert", "roformer", "splinter", "squeezebert", "xlm",
    "xlm-roberta", "xlm-roberta-xl", "xmod", "yoso",
})
"""``model_type`` of bidirectional encoder-only backbones (BERT-like). Any other backbone that is not
an encoder-decoder counts as decoder-only (causal), as do these with ``is_decoder: true``."""
ENCODER_DECODER_MODEL_TYPES = frozenset({
    "bart", "bigbird_pegasus", "blenderbot", "blenderbot-small", "fsmt", "led", "longt5", "m2m_100", "marian",
    "mbart", "mt5", "nllb-moe", "pegasus", "pegasus_x", "plbart", "prophetnet", "switch_transformers", "t5",
    "umt5",
})
"""``model_type`` of encoder-decoder backbones, for a config.json without ``is_encoder_decoder``."""

_HEADS_FOR = {
    "encoder-decoder": HEAD_NAMES,
    "encoder-only": ("last_token", "mean", "attention", "layer_attention", "first_token_attention"),
    # causal: the first token's state sees no other token, so first_token_attention would score a constant
    "decoder-only": ("last_token", "mean", "attention", "layer_attention"),
}


def backbone_kind(backbone_config: Mapping[str, Any]) -> str:
    """``encoder-decoder``, ``encoder-only`` or ``decoder-only`` from a backbone's config dict (the keys
    of its ``config.json``: ``is_encoder_decoder`` (else known ``model_type``), ``model_type``, ``is_decoder``)."""
    model_type = backbone_config.get("model_type")
    if backbone_config.get("is_encoder_decoder", model_type in ENCODER_DECODER_MODEL_TYPES):
        return "encoder-decoder"
    if model_type in ENCODER_ONLY_MODEL_TYPES and not backbone_config.get("is_decoder"):
        return "encoder-only"
    return "decoder-only"


def heads_for(backbone_config: Mapping[str, Any]) -> tuple[str, ...]:
    """The readout heads that apply to a backbone (see :func:`check_head`)."""
    return _HEADS_FOR[backbone_kind(backbone_config)]


def head_stack(head: str, backbone_config: Mapping[str, Any], readout_stack: str = "encoder") -> str:
    """The stack a head reads: ``decoder`` for ``decoder_output`` and for ``first_token_attention`` with
    ``readout_stack: decoder`` on an encoder-decoder, ``encoder`` for every other head there, and
    ``backbone`` (the one stack) on encoder-only and decoder-only backbones."""
    if backbone_kind(backbone_config) != "encoder-decoder":
        return "backbone"
    if head == "decoder_output" or (head == "first_token_attention" and readout_stack == "decoder"):
        return "decoder"
    return "encoder"


def check_head(head: str, backbone_config: Mapping[str, Any], readout_stack: str = "encoder",
               where: str = "rm") -> None:
    """PipelineError (one line, naming ``<where>.head`` / ``<where>.readout_stack``) unless ``head``
    reads something ``backbone_config`` (a config.json dict) has.

    Rules: ``decoder_output`` needs an encoder-decoder; ``first_token_attention`` needs a bidirectional
    stack or a decoder with its own start token (not a causal decoder-only model); on an
    encoder-decoder, ``readout_stack: decoder`` is for ``first_token_attention`` / ``decoder_output``
    only (the other heads read the encoder), and reading the decoder needs ``decoder_start_token_id``.
    ``readout_stack`` is ignored on backbones with one stack.
    """
    if head not in HEAD_NAMES:
        bad(f"{where}.head", head, f"one of {list(HEAD_NAMES)}")
    if readout_stack not in READOUT_STACKS:
        bad(f"{where}.readout_stack", readout_stack, f"one of {list(READOUT_STACKS)}")
    kind = backbone_kind(backbone_config)
    model_type = backbone_config.get("model_type", "unknown")
    allowed = _HEADS_FOR[kind]
    if head not in allowed:
        bad(f"{where}.head", head, f"a head that applies to a {model_type} backbone ({kind}): {list(allowed)}")
    if kind != "encoder-decoder":
        return
    if readout_stack == "decoder" and head not in ("first_token_attention", "decoder_output"):
        bad(f"{where}.readout_stack", readout_stack, f"'encoder' for head {head!r} on a {model_type} backbone "
            "(only first_token_attention and decoder_output read the decoder stack)")
    if head_stack(head, backbone_config, readout_stack) == "decoder" \
            and backbone_config.get("decoder_start_token_id") is None:
        bad(f"{where}.head", head, f"a head that reads the encoder (the {model_type} backbone's config has no "
            "decoder_start_token_id to start its decoder with)")


@dataclass
class RMMember(Section):
    """One member's own settings (``rm.members.<seed>``); null = the ensemble's (``rm.<key>``)."""

    section = "rm.members.<seed>"

    init: str | None = setting(None, help="This member's backbone (see rm.init).")
    head: str | None = setting(None, choices=HEAD_NAMES, help="This member's readout head.")
    attention_layers: int | None = setting(None, ge=1, help="This member's rm.attention_layers.")
    readout_stack: str | None = setting(None, choices=READOUT_STACKS, help="This member's rm.readout_stack.")
    freeze_backbone: bool | None = setting(None, help="This member's rm.freeze_backbone.")
    data: str | None = setting(None, choices=DATA_MODES, help="This member's rm.data.")
    member_label_noise: float | None = setting(None, ge=0, lt=0.5, help="This member's rm.member_label_noise.")


@dataclass
class RMConfig(Section):
    """Proxy reward-model ensemble (``rm:``): one member per seed, trained with TRL's RewardTrainer
    (or, with ``freeze_backbone``, a head-only loop over cached backbone features)."""

    section = "rm"

    seeds: list[int] = setting(default_factory=lambda: [1, 2, 3], ge=0, min_items=1, unique=True,
                               help="One proxy RM per seed (results/rm/seed{k}/); by default members differ only "
                               "in seed (see rm.data, rm.member_label_noise, rm.members).")
    init: str = setting("sft", help="Backbone: 'sft' (the SFT policy's backbone), 'minilm' (the shipped "
                        "all-MiniLM-L6-v2) or a hub id / local model directory (encoder-only, decoder-only "
                        "or encoder-decoder such as FLAN-T5).")
    head: str = setting("last_token", choices=HEAD_NAMES, help="Readout head: last_token, mean, attention "
                        "(token attention per layer, learned layer weights), layer_attention (masked mean per "
                        "layer, attention over layers), first_token_attention (first token per layer, attention "
                        "over layers; not on decoder-only backbones), decoder_output (encoder-decoder only).")
    attention_layers: int = setting(4, ge=1, help="attention / layer_attention / first_token_attention heads: "
                                    "read the last N hidden-state layers (embeddings count as one; clipped).")
    readout_stack: str = setting("encoder", choices=READOUT_STACKS, help="Encoder-decoder backbones: the stack "
                                 "first_token_attention reads (encoder: first non-padding input token; decoder: "
                                 "the decoder start position). Other heads: fixed; ignored on one-stack backbones.")
    freeze_backbone: bool = setting(False, help="Train only the head, on backbone features computed once per "
                                    "text (a plain PyTorch loop, no checkpoints); false = TRL RewardTrainer.")
    feature_dtype: str = setting("float32", choices=FEATURE_DTYPES, help="freeze_backbone: dtype the cached "
                                 "features are stored in (bfloat16/float16 halve the cache's memory).")
    epochs: float = setting(2, gt=0, help="Passes over the training pairs.")
    learning_rate: float = setting(3.0e-4, gt=0, help="AdamW learning rate (linear decay).")
    batch_size: int = setting(32, ge=1, help="Pairs per optimisation step.")
    max_length: int = setting(64, ge=1, help="Tokens per prompt+response (longer texts are truncated, "
                              "identically at inference).")
    bf16: bool = setting(False, help="Train in bfloat16 mixed precision (GPU only).")
    data: str = setting("all", choices=DATA_MODES, help="Training pairs of each member: all (every member the "
                        "same pairs), bootstrap (n pairs drawn with replacement, seeded by the member's seed) or "
                        "disjoint (a fixed seeded partition of the pairs into one part per disjoint member).")
    member_label_noise: float = setting(0.0, ge=0, lt=0.5, help="Member-specific label noise: each member "
                                        "flips this fraction of its own training pairs (seeded by its seed), on "
                                        "top of preferences.label_noise, which every member shares: 0 = "
                                        "correlated member errors, larger = more idiosyncratic ones.")
    members: dict[str, RMMember] = setting(default_factory=dict, help="Per-member overrides, keyed by seed: "
                                           "heterogeneous ensembles (e.g. one RM per readout head).")

    def check(self, where: str) -> None:
        unknown = sorted(k for k in self.members if not k.isdigit() or int(k) not in self.seeds)
        if unknown:
            bad(join(where, "members"), unknown, f"seeds from rm.seeds {self.seeds}")

    def member(self, seed: int) -> RMConfig:
        """The settings member ``seed`` trains with: the ensemble's, updated by its own. Its ``seeds``
        is ``[seed]``, except with ``data: disjoint``: then every seed whose data is disjoint, in
        rm.seeds order (the member takes part ``seeds.index(seed)`` of ``len(seeds)``)."""
        own = self.members.get(str(seed))
        over = {k: v for k, v in (own.to_dict() if own else {}).items() if v is not None}
        base = {k: v for k, v in self.to_dict().items() if k != "members"}
        seeds = [seed]
        if {**base, **over}["data"] == "disjoint":
            seeds = [s for s in self.seeds if self._own(s, "data") == "disjoint"]
        return RMConfig.from_dict({**base, **over, "seeds": seeds}, f"rm.members.{seed}" if over else "rm")

    def _own(self, seed: int, key: str) -> Any:
        """Member ``seed``'s value of ``key``: its override, else the ensemble's."""
        own = self.members.get(str(seed))
        value = getattr(own, key) if own is not None else None
        return getattr(self, key) if value is None else value


WORLD_GOLD = "world"
"""``gold_rm.path`` value that makes the synthetic world's exact quality the gold reward (no model)."""


def check_gold_rm(what: str, path: str, **kwargs: Any) -> None:
    """:func:`~rlhf_pipeline.models.check_model` of a gold RM (``kwargs`` passed on); ``'world'`` needs none."""
    from ..models import check_model

    if str(path) != WORLD_GOLD:
        check_model(what, str(path), **kwargs)


@dataclass
class GoldRMConfig(Section):
    """Gold reward model (``gold_rm:``): an existing RM, or one trained here on a hidden quality."""

    section = "gold_rm"

    path: str | None = setting(None, help="Existing gold RM (hub id or local model directory); null = train "
                               "one here on the synthetic world (embedded default); 'world' = no model: the "
                               "synthetic world's exact hidden quality, z-scored on the trained gold RM's scale "
                               "(dataset.name synthetic only; a trained gold RM can be fooled by a policy "
                               "optimised against a proxy, this gold cannot).")
    is_alpacafarm_rm: bool = setting(False, help="AlpacaFarm RMs want their own (Alpaca instruction) prompt format.")
    encoder: str = setting("minilm", help="Frozen backbone of the trained gold RM ('minilm' = the shipped "
                           "all-MiniLM-L6-v2, or a local encoder directory / hub id).")
    n_samples: int = setting(4000, ge=1, help="Scored synthetic responses to fit on (10% held out for metrics).")
    epochs: int = setting(30, ge=1, help="Passes of the MLP head over the cached encoder features.")
    learning_rate: float = setting(3.0e-3, gt=0, help="AdamW learning rate of the head.")
    batch_size: int = setting(128, ge=1, help="Examples per head update (also the encoder's batch when caching).")
    seed: int = setting(0, help="Seed of the head's init, the held-out split and the data order.")

    def check(self, where: str) -> None:
        if self.path is not None and not self.path.strip():
            bad(f"{where}.path", self.path, "a model directory, a hub id, or null")
