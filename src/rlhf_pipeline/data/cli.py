"""CLI stage of the data family: ``prepare-data`` (see :mod:`rlhf_pipeline.stage`)."""

from __future__ import annotations

from ..config import default_of
from ..stage import Record, arg, stage
from ..workflow_config import WorkflowConfig
from .config import DatasetConfig


@stage("Write {train,val,test}.jsonl of a registered dataset.", config=DatasetConfig, args=[
    arg("--seed", type=int, default=default_of(WorkflowConfig, "seed"),
        help="seed of the synthetic generator / split shuffles (default: %(default)s)"),
    arg("--out-dir", required=True, help="directory for the split files"),
])
def cmd_prepare_data(args, cfg: DatasetConfig) -> Record:
    from .prepare import prepare_dataset

    counts = prepare_dataset(cfg, args.out_dir, seed=args.seed)
    return Record(seed=args.seed, extra={"rows": counts})
