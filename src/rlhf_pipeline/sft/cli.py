"""CLI stage of the SFT family: ``sft`` (see :mod:`rlhf_pipeline.stage`)."""

from __future__ import annotations

from ..config import default_of
from ..stage import CKPT_HELP, Record, arg, stage
from ..workflow_config import WorkflowConfig
from . import SFTConfig


@stage("Supervised fine-tuning of the policy (TRL SFTTrainer).", config=SFTConfig, inputs=["train", "val"], args=[
    arg("--tokenizer", default=default_of(WorkflowConfig, "tokenizer"),
        help="hub id, local path, 'minilm', or 'world' (made from the train split, saved with the model) "
        "(default: %(default)s)"),
    arg("--train", required=True, help="train split JSONL (prompt, response)"),
    arg("--val", required=True, help="val split JSONL (prompt, response)"),
    arg("--out", required=True, help="output model directory"),
    arg("--ckpt-dir", help=CKPT_HELP),
])
def cmd_sft(args, cfg: SFTConfig) -> Record:
    from . import train_sft

    metrics = train_sft(cfg, args.tokenizer, args.train, args.val, args.out, ckpt_dir=args.ckpt_dir)
    return Record({**cfg.to_dict(), "tokenizer": args.tokenizer}, seed=cfg.seed, extra={"metrics": metrics})
