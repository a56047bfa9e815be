"""AlpacaFarm's reward models (e.g. the recovered ``reward-model-human``), loaded without AlpacaFarm installed.

What AlpacaFarm writes (tatsu-lab/alpaca_farm: ``src/alpaca_farm/models/reward_model.py`` and
``pretrained_models/recover_model_weights.py``, transformers pinned to 4.29.2):

- ``config.json``: a ``RewardConfig`` (``model_type: "reward_model"``) that records only
  ``backbone_model_name_or_path``: the SFT model (``sft10k``) the backbone was built from. The Llama
  architecture is not in it; AlpacaFarm's ``RewardModel.__init__`` loads the backbone from that path
  (``LlamaForCausalLM.from_pretrained``). The recovery script passes ``--path-to-sft10k`` (default
  ``<models-save-dir>/sft10k``), so the recovered ``sft10k`` directory normally sits next to the reward model.
- weights: ``backbone_model.*`` (a whole ``LlamaForCausalLM``: ``backbone_model.model.*`` and
  ``backbone_model.lm_head.weight``) and ``reward_head.weight`` / ``reward_head.bias`` (``nn.Linear(hidden, 1)``),
  written by ``save_pretrained`` (transformers 4.29: sharded ``pytorch_model-*.bin`` + index; newer
  versions write safetensors; both load here).
- tokenizer files from the weight-diff repository (Llama tokenizer with a ``[PAD]`` token).

Scoring (``RewardModel.forward``): ``backbone_model.model(input_ids, attention_mask)`` (no position ids), the
last hidden state at position ``-1`` of the padded batch, then ``reward_head`` (bias included). AlpacaFarm
tokenizes LEFT-padded (``padding_side="left"`` when training and scoring), so position -1 is each text's last
token; texts carry the tokenizer's BOS and no EOS (``end_sequence_with_eos`` defaults to False).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoConfig, LlamaConfig, LlamaForCausalLM, PreTrainedConfig, PreTrainedModel
from transformers.utils.generic import ModelOutput

from ..errors import PipelineError
from ..models import model_ref

MODEL_TYPE = "reward_model"
"""``model_type`` of AlpacaFarm's ``RewardConfig``."""

_UNUSED_MISSING = ("backbone_model.lm_head.",)
"""Weights scoring never reads: their absence is no error."""
_IGNORED_UNEXPECTED = ("rotary_emb.inv_freq",)
"""Buffers transformers 4.29 saved with Llama checkpoints; recomputed from the config today."""


@strict
class AlpacaFarmRewardConfig(PreTrainedConfig):
    """AlpacaFarm's ``RewardConfig`` plus the backbone's Llama config (``backbone_config``, resolved by
    :func:`backbone_config` from ``backbone_model_name_or_path``; not part of AlpacaFarm's file)."""

    model_type = MODEL_TYPE

    backbone_model_name_or_path: str | None = None
    backbone_config: dict | None = None


@dataclass
class AlpacaFarmRewardOutput(ModelOutput):
    rewards: torch.Tensor | None = None


class AlpacaFarmRewardModel(PreTrainedModel):
    """AlpacaFarm's ``RewardModel``: ``backbone_model`` (``LlamaForCausalLM``) + ``reward_head`` (Linear, bias);
    ``forward`` returns ``rewards`` (B,) read at position -1 (inputs must be left-padded)."""

    config_class = AlpacaFarmRewardConfig
    base_model_prefix = "backbone_model"
    _no_split_modules: ClassVar[list[str]] = ["LlamaDecoderLayer"]
    _supports_sdpa = True
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"rotary_emb\.inv_freq"]

    def __init__(self, config: AlpacaFarmRewardConfig):
        super().__init__(config)
        if not config.backbone_config:
            raise PipelineError("AlpacaFarm reward model config has no backbone_config (use load_alpacafarm_rm)")
        self.backbone_model = LlamaForCausalLM(LlamaConfig(**config.backbone_config))
        self.reward_head = nn.Linear(self.backbone_model.config.hidden_size, 1)
        self.post_init()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                **kwargs) -> AlpacaFarmRewardOutput:
        outputs = self.backbone_model.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        last = outputs.last_hidden_state[:, -1, :]
        return AlpacaFarmRewardOutput(rewards=self.reward_head(last).squeeze(-1))


def read_config(path: str | os.PathLike) -> dict | None:
    """``path``'s config.json as a dict when it is AlpacaFarm's ``RewardConfig`` (model_type ``reward_model``),
    else None (no file, unreadable, or another model type)."""
    cfg = Path(path) / "config.json"
    try:
        obj = json.loads(cfg.read_text())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) and obj.get("model_type") == MODEL_TYPE else None


def is_alpacafarm_rm(path: str | os.PathLike) -> bool:
    """True when ``path`` is a local directory holding an AlpacaFarm ``RewardModel`` (see :func:`read_config`)."""
    return read_config(path) is not None


def backbone_config(path: str | os.PathLike) -> LlamaConfig:
    """The Llama config of the reward model at ``path``'s backbone, from the model its config.json's
    ``backbone_model_name_or_path`` names: that directory as written (absolute or relative to the working
    directory), else the directory of the same name next to ``path`` (where AlpacaFarm's recovery script
    writes ``sft10k``), else a hub id (cache or hub). One PipelineError naming the file otherwise."""

    path = Path(path)
    cfg_file = path / "config.json"
    obj = read_config(path)
    if obj is None:
        raise PipelineError(f"{cfg_file}: not an AlpacaFarm reward model config (model_type {MODEL_TYPE!r})")
    name = obj.get("backbone_model_name_or_path")
    if not name:
        raise PipelineError(f"{cfg_file}: no 'backbone_model_name_or_path' (AlpacaFarm's RewardConfig records the "
                            "backbone there; the Llama architecture comes from that model's config.json)")
    candidates = [Path(name).expanduser(), path.parent / Path(name).name]
    for cand in candidates:
        if (cand / "config.json").is_file():
            return _as_llama(AutoConfig.from_pretrained(str(cand)), cand / "config.json")
    ref = model_ref(name)
    if not ref.local:
        try:
            return _as_llama(AutoConfig.from_pretrained(ref.path), name)
        except (OSError, ValueError):
            pass
    where = " or ".join(str(c / "config.json") for c in dict.fromkeys(candidates))
    raise PipelineError(
        f"{cfg_file}: backbone_model_name_or_path={name!r} is the only record of the gold RM's Llama architecture "
        f"(AlpacaFarm's RewardConfig), and no config.json was found at {where}"
        + ("" if ref.local else " nor on the hub / in the hub cache")
        + ": put the recovered sft10k directory (its config.json suffices) next to the reward model")


def _as_llama(cfg, where) -> LlamaConfig:
    if cfg.model_type != "llama":
        raise PipelineError(f"{where}: the AlpacaFarm reward model's backbone must be a Llama model "
                            f"(AlpacaFarm builds a LlamaForCausalLM), got model_type {cfg.model_type!r}")
    return cfg


def load_alpacafarm_rm(path: str | os.PathLike, **kwargs) -> AlpacaFarmRewardModel:
    """AlpacaFarm's reward model saved at ``path`` (see the module docstring). Loading is transformers'
    ``from_pretrained`` (sharded or not, safetensors or ``.bin``); a missing, misshapen or unknown weight is one
    PipelineError naming the directory. ``kwargs`` go to ``from_pretrained`` (e.g. ``dtype``)."""
    path = Path(path)
    obj = read_config(path) or {}
    llama = backbone_config(path)
    config = AlpacaFarmRewardConfig(backbone_model_name_or_path=obj.get("backbone_model_name_or_path"),
                                    backbone_config=llama.to_dict())
    try:
        model, info = AlpacaFarmRewardModel.from_pretrained(str(path), config=config, output_loading_info=True,
                                                            **kwargs)
    except (OSError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PipelineError(f"AlpacaFarm reward model {path}: weights cannot be loaded ({first})") from None
    missing = [k for k in info.get("missing_keys", []) if not k.startswith(_UNUSED_MISSING)]
    unexpected = [k for k in info.get("unexpected_keys", []) if not k.endswith(_IGNORED_UNEXPECTED)]
    mismatched = [k if isinstance(k, str) else k[0] for k in info.get("mismatched_keys", [])]
    problems = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("misshapen", mismatched)):
        if keys:
            problems.append(f"{len(keys)} {what} (e.g. {sorted(keys)[:3]})")
    if problems:
        raise PipelineError(f"AlpacaFarm reward model {path}: weights do not match AlpacaFarm's RewardModel "
                            f"(backbone_model.* + reward_head.*): {'; '.join(problems)}")
    return model.eval()


def save_alpacafarm_layout(model: LlamaForCausalLM, head: nn.Linear, path: str | os.PathLike,
                           backbone_model_name_or_path: str, max_shard_size: int | str = "10GB") -> None:
    """Write ``model`` (the backbone) and ``head`` at ``path`` as AlpacaFarm's recovery does with transformers
    4.29.2 (``RewardModel.save_pretrained``): config.json (``RewardConfig``: ``model_type``,
    ``backbone_model_name_or_path``, ``architectures``, ``torch_dtype``, ``transformers_version``) and a
    ``pytorch_model*.bin`` state dict (sharded at ``max_shard_size``, with ``pytorch_model.bin.index.json``)
    keyed ``backbone_model.*`` and ``reward_head.*``. Tokenizer files are the caller's."""
    from huggingface_hub import save_torch_state_dict

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {f"backbone_model.{k}": v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    state.update({f"reward_head.{k}": v.detach().contiguous().clone() for k, v in head.state_dict().items()})
    save_torch_state_dict(state, path, filename_pattern="pytorch_model{suffix}.bin", max_shard_size=max_shard_size,
                          safe_serialization=False)
    config = {"architectures": ["RewardModel"], "backbone_model_name_or_path": backbone_model_name_or_path,
              "model_type": MODEL_TYPE, "torch_dtype": "float32", "transformers_version": "4.29.2"}
    (path / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


# AutoConfig (which AutoTokenizer consults) knows the type, so loading the directory's tokenizer does not warn
# about an unknown ``reward_model``.
AutoConfig.register(MODEL_TYPE, AlpacaFarmRewardConfig, exist_ok=True)
