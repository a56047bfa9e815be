"""CLI stages of the SFT family: ``world-tokenizer`` and ``sft`` (see :mod:`rlhf_pipeline.stage`)."""

from __future__ import annotations

from ..config import default_of
from ..models.vocab import WorldTokenizerConfig
from ..stage import CKPT_HELP, Record, arg, stage
from ..workflow_config import WorkflowConfig
from . import SFTConfig


@stage("Make a tokenizer for the synthetic world from the train split's prompts and responses.",
       config=WorldTokenizerConfig, inputs=["train"], args=[
           arg("--train", required=True, help="train split JSONL (prompt, response)"),
           arg("--out", required=True, help="output tokenizer directory"),
       ])
def cmd_world_tokenizer(args, cfg: WorldTokenizerConfig) -> Record:
    from ..io import atomic_dir, read_jsonl
    from ..models.vocab import train_world_tokenizer, world_texts

    with atomic_dir(args.out) as out:
        tok = train_world_tokenizer(world_texts(read_jsonl(args.train, required=["prompt", "response"])), cfg, out)
    return Record(extra={"vocab_size": len(tok)})


@stage("Supervised fine-tuning of the policy (TRL SFTTrainer).", config=SFTConfig, inputs=["train", "val"], args=[
    arg("--tokenizer", default=default_of(WorkflowConfig, "tokenizer"),
        help="hub id, local path (e.g. the world tokenizer's directory), or 'minilm' (default: %(default)s)"),
    arg("--train", required=True, help="train split JSONL (prompt, response)"),
    arg("--val", required=True, help="val split JSONL (prompt, response)"),
    arg("--out", required=True, help="output model directory"),
    arg("--ckpt-dir", help=CKPT_HELP),
])
def cmd_sft(args, cfg: SFTConfig) -> Record:
    from . import train_sft

    metrics = train_sft(cfg, args.tokenizer, args.train, args.val, args.out, ckpt_dir=args.ckpt_dir)
    return Record({**cfg.to_dict(), "tokenizer": args.tokenizer}, seed=cfg.seed, extra={"metrics": metrics})
