"""CLI stages of the reward family: ``gold-rm-train``, ``label-preferences``, ``rm-train``, ``rm-summary``
(see :mod:`rlhf_pipeline.stage`)."""

from __future__ import annotations

from ..errors import PipelineError
from ..preferences import PreferencesConfig
from ..stage import ALPACAFARM_HELP, CKPT_HELP, Record, arg, need_paths, stage
from .config import GoldRMConfig, RMConfig, check_gold_rm


@stage("Train the embedded default's gold RM on the synthetic world's hidden quality.", config=GoldRMConfig, args=[
    arg("--out-dir", required=True, help="writes OUT_DIR/model/ and OUT_DIR/metrics.json"),
])
def cmd_gold_rm_train(args, cfg: GoldRMConfig) -> Record:
    from ..data.synthetic import sample_scored_responses
    from .gold import train_gold_rm

    if cfg.path is not None:
        raise PipelineError(f"gold_rm.path is set ({cfg.path}): an existing gold RM is used and none is trained")
    rows = sample_scored_responses(cfg.n_samples, seed=cfg.seed)
    metrics = train_gold_rm(cfg, rows, args.out_dir)
    return Record(seed=cfg.seed, extra={"metrics": metrics})


@stage("Sample response pairs from the SFT policy and label them with the gold RM (+ label noise).",
       config=PreferencesConfig, inputs=["train_prompts", "val_prompts"], args=[
           arg("--policy", help="SFT model directory (source: policy_samples)"),
           arg("--gold-rm", help="gold RM directory or hub id (source: policy_samples)"),
           arg("--is-alpacafarm-rm", action="store_true", help=ALPACAFARM_HELP),
           arg("--train-prompts", required=True, help="train split JSONL ('prompt'; source: dataset also "
               "'chosen', 'rejected')"),
           arg("--val-prompts", required=True, help="val split JSONL (as --train-prompts)"),
           arg("--out-train", required=True, help="train pairs JSONL to write"),
           arg("--out-val", required=True, help="held-out pairs JSONL to write"),
       ])
def cmd_label_preferences(args, cfg: PreferencesConfig) -> Record:
    from ..preferences import dataset_preferences, label_preferences

    if cfg.source == "dataset":
        stats = dataset_preferences(cfg, args.train_prompts, args.val_prompts, args.out_train, args.out_val)
        return Record(seed=cfg.seed, extra={"stats": stats})
    if not args.policy or not args.gold_rm:
        raise PipelineError("label-preferences: --policy and --gold-rm are required for preferences.source: "
                            "policy_samples")
    need_paths(args.policy)
    check_gold_rm("--gold-rm", args.gold_rm)
    stats = label_preferences(cfg, args.policy, args.gold_rm, args.train_prompts, args.val_prompts,
                              args.out_train, args.out_val, is_alpacafarm_rm=args.is_alpacafarm_rm)
    return Record(seed=cfg.seed, extra={"stats": stats})


@stage("Train one proxy reward model (TRL RewardTrainer).", config=RMConfig,
       inputs=["prefs_train", "prefs_val", "sft_model"], args=[
           arg("--seed", type=int, required=True, help="member seed"),
           arg("--prefs-train", required=True, help="training pairs JSONL (label-preferences output)"),
           arg("--prefs-val", required=True, help="held-out pairs JSONL (label-preferences output)"),
           arg("--sft-model", help="SFT model dir (the backbone when rm.init is 'sft')"),
           arg("--out-dir", required=True, help="writes OUT_DIR/model/ and OUT_DIR/metrics.json"),
           arg("--ckpt-dir", help=CKPT_HELP),
       ])
def cmd_rm_train(args, cfg: RMConfig) -> Record:
    from .train import train_reward_model

    metrics = train_reward_model(cfg, args.seed, args.prefs_train, args.prefs_val, args.sft_model, args.out_dir,
                                 ckpt_dir=args.ckpt_dir)
    return Record(seed=args.seed, extra={"metrics": metrics})


@stage("One row per proxy RM member, and a plot.", inputs=["metrics"], args=[
    arg("--metrics", nargs="+", required=True, help="members' metrics.json files"),
    arg("--out-csv", required=True, help="summary CSV to write"),
    arg("--out-png", required=True, help="summary plot to write"),
])
def cmd_rm_summary(args) -> None:
    from .summary import summarize_rms

    summarize_rms(args.metrics, args.out_csv, args.out_png)
