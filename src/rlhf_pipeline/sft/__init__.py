"""Supervised fine-tuning of the policy with TRL's ``SFTTrainer``.

Input: ``{train,val}.jsonl`` rows with ``prompt`` and ``response`` (dataset prep's row schema).
Output: a Hugging Face model directory (weights + tokenizer) that every later stage starts from.
The default builds a tiny Llama from scratch on a world tokenizer made from the train split (see
:mod:`rlhf_pipeline.models.vocab`); a real config names a hub
model (e.g. ``EleutherAI/pythia-1.4b``) and optionally LoRA, and runs in bf16 on GPUs.
Preemption (checkpoints, SIGTERM/SIGUSR1, resume): :mod:`rlhf_pipeline.trainer_checkpoints`.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Section, bad, setting
from ..errors import PipelineError
from ..io import read_jsonl
from ..models import join_text, load_causal_lm
from ..models.lora import LoraSettings
from ..models.vocab import training_tokenizer
from ..trainer_checkpoints import save_trained, train_resumable
from ..trl_args import training_args


@dataclass
class TinyLlamaConfig(Section):
    """Sizes of the from-scratch Llama policy (``sft.tiny``), used when ``sft.model`` is null."""

    section = "sft.tiny"

    hidden_size: int = setting(128, ge=1, help="Width of the residual stream.")
    intermediate_size: int = setting(256, ge=1, help="Width of the MLP.")
    num_hidden_layers: int = setting(2, ge=1, help="Transformer blocks.")
    num_attention_heads: int = setting(4, ge=1, help="Attention heads (hidden_size must divide by it).")
    num_key_value_heads: int | None = setting(None, ge=1, help="Key/value heads (grouped-query attention); "
                                              "null = num_attention_heads.")
    max_position_embeddings: int = setting(256, ge=1, help="Longest sequence the model can read.")

    def check(self, where: str) -> None:
        if self.hidden_size % self.num_attention_heads:
            bad(f"{where}.num_attention_heads", self.num_attention_heads,
                f"a divisor of hidden_size={self.hidden_size}")
        kv = self.num_key_value_heads
        if kv is not None and self.num_attention_heads % kv:
            bad(f"{where}.num_key_value_heads", kv, f"a divisor of num_attention_heads={self.num_attention_heads}")


@dataclass
class SFTConfig(Section):
    """Settings of the ``sft`` config section."""

    section = "sft"

    model: str | None = setting(None, help="Hub id or local model directory of the base model; null builds a "
                                "tiny Llama from `tiny`.")
    tiny: TinyLlamaConfig = setting(default_factory=TinyLlamaConfig,
                                    help="Sizes of the from-scratch model (ignored when `model` is set).")
    lora: LoraSettings = setting(default_factory=LoraSettings,
                                 help="LoRA adapters (merged into the saved model so later stages load a plain model).")
    epochs: float = setting(3, gt=0, help="Passes over the training split.")
    learning_rate: float = setting(1.0e-3, gt=0, help="Peak learning rate (linear decay).")
    batch_size: int = setting(32, ge=1, help="Per-device batch size.")
    grad_accum: int = setting(1, ge=1, help="Gradient accumulation steps.")
    max_length: int = setting(64, ge=1, help="Truncate prompt+response to this many tokens.")
    bf16: bool = setting(False, help="bf16 mixed precision (GPU only).")
    seed: int = setting(0, help="Seed for model init and data order.")


def _sft_rows(path: str | Path) -> list[dict[str, str]]:
    rows = read_jsonl(path, required=["prompt", "response"])
    if not rows:
        raise PipelineError(f"{path}: empty split; SFT needs rows with 'prompt' and 'response'")
    # The completion carries the separator, so prompt + completion == join_text(prompt, response)
    # and the tokenised prompt is a prefix of the tokenised whole.
    return [{"prompt": r["prompt"], "completion": join_text(r["prompt"], r["response"])[len(r["prompt"]):]}
            for r in rows]


def sft_trainer_config(cfg: SFTConfig, ckpt_dir: str | Path | None, scratch_dir: str | Path) -> Any:
    """TRL's ``SFTConfig`` of an SFT run: :func:`~rlhf_pipeline.trl_args.training_args` of ``cfg``, the loss on
    the completion only, a short warmup, and an eval loss each epoch."""
    from trl import SFTConfig as TRLSFTConfig

    return TRLSFTConfig(**training_args(cfg, ckpt_dir, scratch_dir), per_device_eval_batch_size=cfg.batch_size,
                        warmup_steps=0.05, logging_steps=10, eval_strategy="epoch", completion_only_loss=True)


def train_sft(cfg: SFTConfig, tokenizer_name: str, train_path: str | Path, val_path: str | Path,
              out_dir: str | Path, ckpt_dir: str | Path | None = None) -> dict[str, Any]:
    """Fine-tune (or train from scratch) the policy on demonstrations; save model + tokenizer
    (``tokenizer_name``: see :func:`~rlhf_pipeline.models.vocab.training_tokenizer`; ``'world'`` makes it from
    the train split's prompts and completions).

    With ``ckpt_dir`` (keep it outside the declared outputs) the run checkpoints about ten times,
    resumes from the newest complete checkpoint there, and on SIGTERM/SIGUSR1 checkpoints and
    raises :class:`~rlhf_pipeline.trainer_checkpoints.Preempted` without writing ``out_dir``
    (see :mod:`rlhf_pipeline.trainer_checkpoints`). The checkpoints are deleted once ``out_dir``
    is written. Returns metrics (train/eval loss, runtime), also in ``out_dir/sft_metrics.json``.
    """
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTTrainer

    train_rows, val_rows = _sft_rows(train_path), _sft_rows(val_path)
    tok = training_tokenizer(tokenizer_name, lambda: (r[k] for r in train_rows for k in ("prompt", "completion")),
                             padding_side="right")
    set_seed(cfg.seed)
    model = load_causal_lm(cfg.model, tok, tiny=cfg.tiny.to_dict(), seed=cfg.seed)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="sft_trainer_") as scratch:
        trainer = SFTTrainer(
            model=model,
            args=sft_trainer_config(cfg, ckpt_dir, scratch),
            train_dataset=Dataset.from_list(train_rows),
            eval_dataset=Dataset.from_list(val_rows),
            processing_class=tok,
            peft_config=cfg.lora.peft_config() if cfg.lora.enabled else None,
        )
        t0 = time.time()
        result, resumed_from = train_resumable(trainer, ckpt_dir, "SFT")
        eval_metrics = trainer.evaluate()
    model = trainer.model
    if cfg.lora.enabled:
        model = model.merge_and_unload()
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    tok.padding_side = "left"  # later stages generate with left padding
    metrics = {
        "train_loss": result.training_loss,  # over the steps of this attempt (HF Trainer's convention)
        "eval_loss": eval_metrics.get("eval_loss"),
        "n_train": len(train_rows),
        "n_val": len(val_rows),
        "runtime_s": round(time.time() - t0, 1),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "resumed_from": None if resumed_from is None else resumed_from.name,
        "config": dataclasses.asdict(cfg),
    }
    save_trained(trainer, model, tok, out_dir, metrics, "sft_metrics.json", ckpt_dir)
    return metrics


__all__ = ["LoraSettings", "SFTConfig", "TinyLlamaConfig", "sft_trainer_config", "train_sft"]
