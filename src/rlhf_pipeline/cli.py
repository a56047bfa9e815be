"""``python -m rlhf_pipeline <stage>``: one subcommand per workflow stage.

Each subcommand parses its arguments, builds the stage's typed config from ``--config`` (a JSON
object or a YAML/JSON file holding that config section), checks its inputs, calls one library
function and writes a provenance manifest. Bad input ends with one line on stderr and exit code 2,
before any compute starts. Heavy libraries are imported inside the handlers so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import load_config_arg
from .errors import PipelineError


def _need_paths(*paths: str | Path) -> None:
    for p in paths:
        if not Path(p).exists():
            raise PipelineError(f"{p}: input does not exist")


def _manifest(args, stage: str, config: dict, seed: int | None = None, extra: dict | None = None):
    if getattr(args, "manifest", None):
        from .provenance import write_manifest

        write_manifest(args.manifest, stage, config, seed=seed, extra=extra)


# --- handlers ---------------------------------------------------------------------------------

def cmd_prepare_data(args) -> None:
    from .data import DatasetConfig, prepare_dataset

    raw = load_config_arg(args.config)
    cfg = DatasetConfig.from_dict(raw)
    counts = prepare_dataset(cfg, args.out_dir, seed=args.seed)
    _manifest(args, "prepare-data", raw, seed=args.seed, extra={"rows": counts})


def cmd_sft(args) -> None:
    from .sft import SFTConfig, train_sft

    raw = load_config_arg(args.config)
    cfg = SFTConfig.from_dict(raw)
    _need_paths(args.train, args.val)
    metrics = train_sft(cfg, args.tokenizer, args.train, args.val, args.out)
    _manifest(args, "sft", {**raw, "tokenizer": args.tokenizer}, seed=cfg.seed, extra={"metrics": metrics})


def cmd_gold_rm_train(args) -> None:
    from .data.synthetic import sample_scored_responses
    from .reward.gold import GoldRMConfig, train_gold_rm

    raw = load_config_arg(args.config)
    cfg = GoldRMConfig.from_dict(raw)
    if cfg.path is not None:
        raise PipelineError(f"gold_rm.path is set ({cfg.path}): an existing gold RM is used and none is trained")
    rows = sample_scored_responses(cfg.n_samples, seed=cfg.seed)
    metrics = train_gold_rm(cfg, rows, args.out_dir)
    _manifest(args, "gold-rm-train", raw, seed=cfg.seed, extra={"metrics": metrics})


def cmd_label_preferences(args) -> None:
    from .preferences import PreferencesConfig, label_preferences

    raw = load_config_arg(args.config)
    cfg = PreferencesConfig.from_dict(raw)
    _need_paths(args.policy, args.train_prompts, args.val_prompts)
    if not Path(args.gold_rm).exists() and not _looks_like_hub_id(args.gold_rm):
        raise PipelineError(f"gold RM path {args.gold_rm} does not exist (gold_rm.path)")
    stats = label_preferences(cfg, args.policy, args.gold_rm, args.train_prompts, args.val_prompts,
                              args.out_train, args.out_val, is_alpacafarm_rm=args.is_alpacafarm_rm)
    _manifest(args, "label-preferences", raw, seed=cfg.seed, extra={"stats": stats})


def cmd_rm_train(args) -> None:
    from .reward.train import RMConfig, train_reward_model

    raw = load_config_arg(args.config)
    cfg = RMConfig.from_dict(raw)
    _need_paths(args.prefs_train, args.prefs_val, args.sft_model)
    metrics = train_reward_model(cfg, args.seed, args.prefs_train, args.prefs_val, args.sft_model, args.out_dir)
    _manifest(args, "rm-train", raw, seed=args.seed, extra={"metrics": metrics})


def cmd_rm_summary(args) -> None:
    from .reward.summary import summarize_rms

    _need_paths(*args.metrics)
    summarize_rms(args.metrics, args.out_csv, args.out_png)


def _looks_like_hub_id(s: str) -> bool:
    return s.count("/") == 1 and not s.startswith((".", "/")) and not Path(s).parent.exists()


# --- parser -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rlhf_pipeline", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="stage", required=True, metavar="<stage>")

    def stage(name: str, fn, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        return sp

    def config_arg(sp, section: str):
        sp.add_argument("--config", help=f"the '{section}' config section: a JSON object or a YAML/JSON file "
                        "(omitted keys take their documented defaults)")
        sp.add_argument("--manifest", help="write a provenance manifest (JSON) here")

    sp = stage("prepare-data", cmd_prepare_data, "Write {train,val,test}.jsonl of a registered dataset.")
    config_arg(sp, "dataset")
    sp.add_argument("--seed", type=int, default=0, help="seed of the synthetic generator / split shuffles")
    sp.add_argument("--out-dir", required=True, help="directory for the split files")

    sp = stage("sft", cmd_sft, "Supervised fine-tuning of the policy (TRL SFTTrainer).")
    config_arg(sp, "sft")
    sp.add_argument("--tokenizer", default="minilm", help="hub id, local path, or 'minilm' (default)")
    sp.add_argument("--train", required=True, help="train split JSONL (prompt, response)")
    sp.add_argument("--val", required=True, help="val split JSONL (prompt, response)")
    sp.add_argument("--out", required=True, help="output model directory")

    sp = stage("gold-rm-train", cmd_gold_rm_train,
               "Train the embedded default's gold RM on the synthetic world's hidden quality.")
    config_arg(sp, "gold_rm")
    sp.add_argument("--out-dir", required=True, help="writes OUT_DIR/model/ and OUT_DIR/metrics.json")

    sp = stage("label-preferences", cmd_label_preferences,
               "Sample response pairs from the SFT policy and label them with the gold RM (+ label noise).")
    config_arg(sp, "preferences")
    sp.add_argument("--policy", required=True, help="SFT model directory")
    sp.add_argument("--gold-rm", required=True, help="gold RM directory or hub id")
    sp.add_argument("--is-alpacafarm-rm", action="store_true", help="format inputs for AlpacaFarm RMs")
    sp.add_argument("--train-prompts", required=True, help="JSONL with a 'prompt' field")
    sp.add_argument("--val-prompts", required=True, help="JSONL with a 'prompt' field")
    sp.add_argument("--out-train", required=True)
    sp.add_argument("--out-val", required=True)

    sp = stage("rm-train", cmd_rm_train, "Train one proxy reward model (TRL RewardTrainer).")
    config_arg(sp, "rm")
    sp.add_argument("--seed", type=int, required=True, help="member seed")
    sp.add_argument("--prefs-train", required=True)
    sp.add_argument("--prefs-val", required=True)
    sp.add_argument("--sft-model", required=True, help="SFT model dir (backbone when rm.init is 'sft')")
    sp.add_argument("--out-dir", required=True, help="writes OUT_DIR/model/ and OUT_DIR/metrics.json")

    sp = stage("rm-summary", cmd_rm_summary, "One row per proxy RM member, and a plot.")
    sp.add_argument("--metrics", nargs="+", required=True, help="members' metrics.json files")
    sp.add_argument("--out-csv", required=True)
    sp.add_argument("--out-png", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.fn(args)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
