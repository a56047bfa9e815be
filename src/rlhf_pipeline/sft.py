"""Supervised fine-tuning of the policy with TRL's ``SFTTrainer``.

Input: ``{train,val}.jsonl`` rows with ``prompt`` and ``response`` (dataset prep's row schema).
Output: a Hugging Face model directory (weights + tokenizer) that every later stage starts from.
The default builds a tiny Llama from scratch on the MiniLM tokenizer; a real config names a hub
model (e.g. ``EleutherAI/pythia-1.4b``) and optionally LoRA, and runs in bf16 on GPUs.
Preemption (checkpoints, SIGTERM/SIGUSR1, resume): :mod:`rlhf_pipeline.trainer_checkpoints`.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import section_from_dict
from .errors import PipelineError
from .io import atomic_dir, read_jsonl, write_json
from .models import join_text, load_causal_lm, load_tokenizer
from .models.lora import LoraSettings
from .trainer_checkpoints import checkpoint_args, remove_checkpoints, train_resumable


@dataclass
class SFTConfig:
    """Settings of the ``sft`` config section."""

    model: str | None = None
    """Hub id or local path of the base model; ``None`` builds a tiny Llama from ``tiny``."""
    tiny: dict[str, Any] = field(default_factory=lambda: {
        "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4})
    """Llama config overrides for the from-scratch model (ignored when ``model`` is set)."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """LoRA adapters (merged into the saved model so later stages load a plain model)."""
    epochs: float = 3
    """Passes over the training split."""
    learning_rate: float = 1.0e-3
    """Peak learning rate (linear decay)."""
    batch_size: int = 32
    """Per-device batch size."""
    grad_accum: int = 1
    """Gradient accumulation steps."""
    max_length: int = 64
    """Truncate prompt+response to this many tokens."""
    bf16: bool = False
    """bf16 mixed precision (GPU only)."""
    seed: int = 0
    """Seed for model init and data order."""

    def __post_init__(self):
        if isinstance(self.lora, dict):
            self.lora = section_from_dict(LoraSettings, self.lora, "sft.lora")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "SFTConfig":
        return section_from_dict(cls, d, "sft")


def _sft_rows(path: str | Path) -> list[dict[str, str]]:
    rows = read_jsonl(path, required=["prompt", "response"])
    if not rows:
        raise PipelineError(f"{path}: empty split; SFT needs rows with 'prompt' and 'response'")
    # The completion carries the separator, so prompt + completion == join_text(prompt, response)
    # and the tokenised prompt is a prefix of the tokenised whole.
    return [{"prompt": r["prompt"], "completion": join_text(r["prompt"], r["response"])[len(r["prompt"]):]}
            for r in rows]


def train_sft(cfg: SFTConfig, tokenizer_name: str, train_path: str | Path, val_path: str | Path,
              out_dir: str | Path, ckpt_dir: str | Path | None = None) -> dict[str, Any]:
    """Fine-tune (or train from scratch) the policy on demonstrations; save model + tokenizer.

    With ``ckpt_dir`` (keep it outside the declared outputs) the run checkpoints about ten times,
    resumes from the newest complete checkpoint there, and on SIGTERM/SIGUSR1 checkpoints and
    raises :class:`~rlhf_pipeline.trainer_checkpoints.Preempted` without writing ``out_dir``
    (see :mod:`rlhf_pipeline.trainer_checkpoints`). The checkpoints are deleted once ``out_dir``
    is written. Returns metrics (train/eval loss, runtime), also in ``out_dir/sft_metrics.json``.
    """
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    train_rows, val_rows = _sft_rows(train_path), _sft_rows(val_path)
    tok = load_tokenizer(tokenizer_name, padding_side="right")
    set_seed(cfg.seed)
    model = load_causal_lm(cfg.model, tok, tiny=cfg.tiny, seed=cfg.seed)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="sft_trainer_") as scratch:
        args = TRLSFTConfig(
            **checkpoint_args(ckpt_dir, scratch),
            num_train_epochs=cfg.epochs,
            learning_rate=cfg.learning_rate,
            per_device_train_batch_size=cfg.batch_size,
            per_device_eval_batch_size=cfg.batch_size,
            gradient_accumulation_steps=cfg.grad_accum,
            max_length=cfg.max_length,
            bf16=cfg.bf16 and torch.cuda.is_available(),
            seed=cfg.seed,
            data_seed=cfg.seed,
            lr_scheduler_type="linear",
            warmup_steps=0.05,
            logging_steps=10,
            eval_strategy="epoch",
            report_to=[],
            completion_only_loss=True,
            dataloader_num_workers=0,
            disable_tqdm=False,
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
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
    if trainer.is_world_process_zero():  # under `accelerate launch`, one process writes
        with atomic_dir(out_dir) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tok.save_pretrained(tmp)
            write_json(tmp / "sft_metrics.json", metrics)
        remove_checkpoints(ckpt_dir)
    trainer.accelerator.wait_for_everyone()
    return metrics


__all__ = ["LoraSettings", "SFTConfig", "train_sft"]
