"""The language-format algorithm-distillation model: a from-scratch tiny Llama on the tokenizer ``ad-data``
wrote (the policy's, or with ``tokenizer: world`` one made from the histories' episodes), trained with TRL's
``SFTTrainer`` on learning-history contexts (plain language-model loss over the whole context: prompts,
completions and rewards). The expert-distillation control is the same model
trained on contexts of final-policy episodes only (:func:`rlhf_pipeline.ad.data.language_contexts`)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ..io import read_jsonl
from ..models import load_causal_lm, load_tokenizer
from ..trainer_checkpoints import save_trained, train_resumable
from ..trl_args import training_args
from .config import ADModelConfig


def train_ad_lm(cfg: ADModelConfig, context_length: int, tokenizer_dir: str, contexts_path: str | Path,
                out_dir: str | Path, ckpt_dir: str | Path | None = None) -> dict[str, Any]:
    """Train on the ``text`` rows of ``contexts_path``; save model + tokenizer + ``ad_metrics.json`` in
    ``out_dir``. Checkpoints, SIGTERM and resume as in SFT (:mod:`rlhf_pipeline.trainer_checkpoints`)."""
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    rows = read_jsonl(contexts_path, required=["text"])
    if not rows:
        raise PipelineError(f"{contexts_path}: no contexts to train on (see the ad-data report)")
    tok = load_tokenizer(tokenizer_dir, padding_side="right")
    set_seed(cfg.seed)
    model = load_causal_lm(None, tok, tiny=cfg.tiny.to_dict(), seed=cfg.seed)
    model.config.pad_token_id = tok.pad_token_id
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="ad_lm_") as scratch:
        args = TRLSFTConfig(**training_args(cfg, ckpt_dir, scratch), max_length=context_length + 2,  # + BOS/EOS
                            dataset_text_field="text", packing=False, warmup_steps=0.05, logging_steps=10)
        trainer = SFTTrainer(model=model, args=args, processing_class=tok,
                             train_dataset=Dataset.from_list([{"text": r["text"]} for r in rows]))
        t0 = time.time()
        result, resumed_from = train_resumable(trainer, ckpt_dir, "AD LM")
    model = trainer.model
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    tok.padding_side = "left"
    metrics = {"train_loss": result.training_loss, "n_contexts": len(rows), "runtime_s": round(time.time() - t0, 1),
               "n_parameters": sum(p.numel() for p in model.parameters()),
               "resumed_from": None if resumed_from is None else resumed_from.name, "config": cfg.to_dict()}
    save_trained(trainer, model, tok, out_dir, metrics, "ad_metrics.json", ckpt_dir)
    return metrics
