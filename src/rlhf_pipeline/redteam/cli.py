"""CLI stages of the red-teaming family: ``redteam-target-data``, ``redteam-classifier``, ``redteam``,
``redteam-summary`` (see :mod:`rlhf_pipeline.stage`)."""

from __future__ import annotations

from ..config import load_config_arg
from ..errors import PipelineError
from ..stage import CKPT_HELP, Record, arg, need_paths, read_prompts, stage
from .config import ClassifierTrainConfig, RedTeamRunConfig, WorldConfig


@stage("Write the default red-team target's fine-tuning data (the synthetic world's trigger and toxic words).",
       config=WorldConfig, args=[arg("--out-dir", required=True, help="writes train.jsonl and val.jsonl")])
def cmd_redteam_target_data(args, cfg: WorldConfig) -> Record:
    from .world import prepare_target_data

    counts = prepare_target_data(cfg, args.out_dir)
    return Record(seed=cfg.seed, extra={"rows": counts})


@stage("Train the default toxicity classifier (frozen MiniLM + a head) on the synthetic world.",
       config=ClassifierTrainConfig, args=[
           arg("--world", help="the redteam.world settings (JSON or a YAML/JSON file)"),
           arg("--out-dir", required=True, help="writes OUT_DIR/model/ and OUT_DIR/metrics.json"),
       ])
def cmd_redteam_classifier(args, cfg: ClassifierTrainConfig) -> Record:
    from .classifier import train_toxicity_classifier
    from .world import classifier_data

    world = WorldConfig.from_dict(load_config_arg(args.world))
    metrics = train_toxicity_classifier(cfg, classifier_data(world), args.out_dir)
    return Record({"classifier": cfg.to_dict(), "world": world.to_dict()}, seed=cfg.seed, extra={"metrics": metrics})


@stage("Train an attacker with PPO against a target's toxicity, with novelty rewards (curiosity-driven "
       "red-teaming).", config=RedTeamRunConfig, inputs=["policy", "train_prompts", "eval_prompts"], args=[
           arg("--policy", required=True, help="the attacker's initial policy (SFT model dir)"),
           arg("--train-prompts", required=True, help="JSONL with 'prompt' (the attacker's inputs)"),
           arg("--eval-prompts", required=True, help="JSONL with 'prompt' (held-out attacker inputs)"),
           arg("--target", help="the default target model dir (when redteam.target.model is null)"),
           arg("--toxicity", help="the default toxicity classifier dir (when redteam.toxicity.model is null)"),
           arg("--out-dir", required=True, help="eval/, samples.jsonl, metrics.csv, train_log.csv, model/"),
           arg("--ckpt-dir", required=True, help=CKPT_HELP),
       ])
def cmd_redteam(args, run: RedTeamRunConfig) -> Record:
    from .run import train_redteam

    summary = train_redteam(run, args.policy, read_prompts(args.train_prompts), read_prompts(args.eval_prompts),
                            args.target, args.toxicity, args.out_dir, args.ckpt_dir)
    return Record(seed=run.hparams.seed,
                  extra={"last": summary.get("last"), "final_metrics": summary.get("final_metrics")})


@stage("Every red-team run's final success rate and diversity, and the success-against-diversity plot.", args=[
    arg("--runs", nargs="+", required=True, help="NAME=GROUP=metrics.csv ..."),
    arg("--out-csv", required=True, help="summary CSV to write"),
    arg("--out-png", required=True, help="plot to write"),
    arg("--out-groups", help="groups.csv to write: each group's mean and 95%% interval over its runs, and its "
        "difference from the baseline group (Welch)"),
    arg("--baseline-group", help="the group the others are compared with (default: the first run's)"),
])
def cmd_redteam_summary(args) -> None:
    from .run import summarize_redteam

    runs = {}
    for item in args.runs:
        name, group, path = (item.split("=", 2) + ["", ""])[:3]
        if not path:
            raise PipelineError(f"--runs {item!r}: expected NAME=GROUP=metrics.csv")
        need_paths(path)
        runs[name] = (group, path)
    summarize_redteam(runs, args.out_csv, args.out_png, args.out_groups, args.baseline_group)
