"""``python -m rlhf_pipeline <stage>``: one subcommand per workflow stage.

Each subcommand parses its arguments, builds the stage's typed config from ``--config`` (a JSON
object or a YAML/JSON file holding that config section), checks its inputs, calls one library
function and writes a provenance manifest. Bad input ends with one line on stderr and exit code 2,
before any compute starts. Heavy libraries are imported inside the handlers so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .config import default_of, load_config_arg, settings_help
from .errors import PipelineError
from .launch import maybe_relaunch
from .models import check_model
from .runtime import keep_freed_memory


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

    cfg = DatasetConfig.from_dict(load_config_arg(args.config))
    counts = prepare_dataset(cfg, args.out_dir, seed=args.seed)
    _manifest(args, "prepare-data", cfg.to_dict(), seed=args.seed, extra={"rows": counts})


def cmd_sft(args) -> None:
    from .sft import SFTConfig, train_sft

    cfg = SFTConfig.from_dict(load_config_arg(args.config))
    _need_paths(args.train, args.val)
    metrics = train_sft(cfg, args.tokenizer, args.train, args.val, args.out, ckpt_dir=args.ckpt_dir)
    _manifest(args, "sft", {**cfg.to_dict(), "tokenizer": args.tokenizer}, seed=cfg.seed, extra={"metrics": metrics})


def cmd_gold_rm_train(args) -> None:
    from .data.synthetic import sample_scored_responses
    from .reward.gold import GoldRMConfig, train_gold_rm

    cfg = GoldRMConfig.from_dict(load_config_arg(args.config))
    if cfg.path is not None:
        raise PipelineError(f"gold_rm.path is set ({cfg.path}): an existing gold RM is used and none is trained")
    rows = sample_scored_responses(cfg.n_samples, seed=cfg.seed)
    metrics = train_gold_rm(cfg, rows, args.out_dir)
    _manifest(args, "gold-rm-train", cfg.to_dict(), seed=cfg.seed, extra={"metrics": metrics})


def cmd_label_preferences(args) -> None:
    from .preferences import PreferencesConfig, dataset_preferences, label_preferences

    cfg = PreferencesConfig.from_dict(load_config_arg(args.config))
    _need_paths(args.train_prompts, args.val_prompts)
    if cfg.source == "dataset":
        stats = dataset_preferences(cfg, args.train_prompts, args.val_prompts, args.out_train, args.out_val)
        _manifest(args, "label-preferences", cfg.to_dict(), seed=cfg.seed, extra={"stats": stats})
        return
    if not args.policy or not args.gold_rm:
        raise PipelineError("label-preferences: --policy and --gold-rm are required for preferences.source: "
                            "policy_samples")
    _need_paths(args.policy)
    check_model("--gold-rm", args.gold_rm)
    stats = label_preferences(cfg, args.policy, args.gold_rm, args.train_prompts, args.val_prompts,
                              args.out_train, args.out_val, is_alpacafarm_rm=args.is_alpacafarm_rm)
    _manifest(args, "label-preferences", cfg.to_dict(), seed=cfg.seed, extra={"stats": stats})


def cmd_rm_train(args) -> None:
    from .reward.train import RMConfig, train_reward_model

    cfg = RMConfig.from_dict(load_config_arg(args.config))
    _need_paths(args.prefs_train, args.prefs_val, *([args.sft_model] if args.sft_model else []))
    metrics = train_reward_model(cfg, args.seed, args.prefs_train, args.prefs_val, args.sft_model, args.out_dir,
                                 ckpt_dir=args.ckpt_dir)
    _manifest(args, "rm-train", cfg.to_dict(), seed=args.seed, extra={"metrics": metrics})


def cmd_rm_summary(args) -> None:
    from .reward.summary import summarize_rms

    _need_paths(*args.metrics)
    summarize_rms(args.metrics, args.out_csv, args.out_png)


def _prompts(path, n: int | None = None) -> list[str]:
    from .io import read_jsonl

    prompts = [r["prompt"] for r in read_jsonl(path, required=["prompt"])]
    if not prompts:
        raise PipelineError(f"{path}: no prompts")
    return prompts[:n] if n else prompts


def cmd_ppo(args) -> None:
    from .ppo import train_ppo
    from .reward.ensemble import EnsembleReward
    from .runs import PPORunConfig

    run = PPORunConfig.from_dict(load_config_arg(args.config))
    if len(args.rm_dirs) != len(run.rm_seeds):
        raise PipelineError(f"--rm-dirs: {len(args.rm_dirs)} director(ies) for rm_seeds {run.rm_seeds}; "
                            "give one RM directory per member, in rm_seeds order")
    for d in args.rm_dirs:
        if not Path(d).is_dir():
            raise PipelineError(f"{d}: proxy RM not found (is that RM seed trained?)")
    _need_paths(args.policy, args.train_prompts, args.eval_prompts)
    train_prompts = _prompts(args.train_prompts)
    eval_prompts = _prompts(args.eval_prompts, run.n_eval_prompts)
    reward = EnsembleReward(args.rm_dirs, objective=run.objective, uwo_weight=run.uwo_weight,
                            standardize=run.standardize, batch_size=run.reward_batch_size)
    summary = train_ppo(run.hparams, args.policy, reward, train_prompts, eval_prompts, args.out_dir, args.ckpt_dir,
                        run_info={"reward": {k: v for k, v in run.to_dict().items() if k != "hparams"},
                                  "rm_dirs": list(args.rm_dirs)})
    _manifest(args, "ppo", {**run.to_dict(), "rm_dirs": args.rm_dirs}, seed=run.hparams.seed,
              extra={"last": summary.get("last"), "steps": summary.get("steps")})


def cmd_gold_eval(args) -> None:
    from .evaluation.gold_eval import gold_eval
    from .evaluation.plots import plot_gold_vs_kl
    from .reward.gold import GoldScorer

    eval_dir = Path(args.eval_dir)
    if not eval_dir.is_dir():
        raise PipelineError(f"{eval_dir}: eval directory does not exist")
    out = Path(args.out) if args.out else eval_dir.parent / "gold_eval.csv"
    scorer = GoldScorer(args.gold_rm, is_alpacafarm_rm=args.is_alpacafarm_rm, batch_size=args.batch_size)
    df = gold_eval(eval_dir, scorer, out_csv=out, scored_dir=args.scored_dir)
    if args.plot:
        plot_gold_vs_kl(df, args.plot, title=f"{eval_dir.parent.name}: proxy and gold reward vs KL")
    _manifest(args, "gold-eval", {"gold_rm": args.gold_rm, "batch_size": args.batch_size,
                                  "is_alpacafarm_rm": args.is_alpacafarm_rm})


def cmd_bon_sample(args) -> None:
    from .evaluation.bon import BestOfNConfig, sample_for_bon

    cfg = BestOfNConfig.from_dict(load_config_arg(args.config))
    _need_paths(args.policy, args.prompts, *args.rm_dirs)
    check_model("--gold-rm", args.gold_rm)
    sample_for_bon(cfg, args.policy, args.rm_dirs, args.member_ids,
                   args.gold_rm, args.prompts, args.out, is_alpacafarm_rm=args.is_alpacafarm_rm)
    _manifest(args, "bon-sample", cfg.to_dict(), seed=cfg.seed)


def cmd_bon(args) -> None:
    from .evaluation.bon import best_of_n
    from .io import read_jsonl
    from .runs import Ensemble

    ens = Ensemble.from_dict(load_config_arg(args.ensemble), "--ensemble")
    first = read_jsonl(args.samples, required=["member_ids"])[:1]
    ids = first[0]["member_ids"] if first else []
    missing = [m for m in ens.rm_seeds if m not in ids]
    if missing:
        raise PipelineError(f"{args.samples}: RM member(s) {missing} were not scored (scored: {ids})")
    best_of_n(args.samples, ens.objective, ens.uwo_weight, args.ns, args.out,
              standardize=not args.no_standardize, members=[ids.index(m) for m in ens.rm_seeds])


def cmd_plot_overoptimization(args) -> None:
    import pandas as pd

    from .evaluation.plots import plot_overoptimization

    def named(items, flag):
        paths = _named_args(items, flag)
        _need_paths(*paths.values())
        return {name: pd.read_csv(path) for name, path in paths.items()}

    fits = diversity = None
    if args.fits:
        _need_paths(args.fits)
        fits = pd.read_csv(args.fits)
    if args.diversity:
        _need_paths(args.diversity)
        diversity = pd.read_csv(args.diversity)
    plot_overoptimization(named(args.gold_evals, "--gold-evals"), named(args.bons, "--bons"), args.out, fits=fits,
                          diversity=diversity)


def _named_args(items, flag: str, expected: str = "NAME=PATH") -> dict[str, str]:
    """``NAME=VALUE`` arguments as a dict (PipelineError naming the flag and ``expected`` when one is malformed)."""
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise PipelineError(f"{flag} {item!r}: expected {expected}")
        out[name] = value
    return out


def _named_lists(items, what: str) -> dict[str, list[str]]:
    """``NAME=PATH[,PATH...]`` arguments as ``{name: [paths]}`` (every path must exist)."""
    out = {name: paths.split(",") for name, paths in _named_args(items, what, "NAME=PATH[,PATH...]").items()}
    for paths in out.values():
        _need_paths(*paths)
    return out


def cmd_aggregate_replicates(args) -> None:
    import pandas as pd

    from .evaluation.gold_eval import write_csv
    from .evaluation.replicates import aggregate_replicates

    _need_paths(*args.gold_evals)
    df = aggregate_replicates([pd.read_csv(p) for p in args.gold_evals], names=args.gold_evals)
    write_csv(df, args.out)


def cmd_fit_curves(args) -> None:
    import pandas as pd

    from .evaluation.equal_kl import equal_kl_table
    from .evaluation.fits import fit_table
    from .evaluation.gold_eval import write_csv

    rl = {name: [pd.read_csv(p) for p in paths] for name, paths in _named_lists(args.runs, "--runs").items()}
    bon = {name: pd.read_csv(paths[0]) for name, paths in _named_lists(args.bons, "--bons").items()}
    if args.equal_kl and not args.baseline:
        raise PipelineError("fit-curves: --equal-kl needs --baseline RUN (one of the --runs names)")
    equal = equal_kl_table(rl, args.baseline) if args.equal_kl else None  # checked before anything is written
    write_csv(fit_table(rl, bon), args.out)
    if equal is not None:
        write_csv(equal, args.equal_kl)


def cmd_rm_diversity(args) -> None:
    from .evaluation.diversity import diversity_table
    from .evaluation.gold_eval import write_csv
    from .reward.gold import GoldScorer

    if len(args.rm_dirs) != len(args.member_ids):
        raise PipelineError(f"--member-ids: {len(args.member_ids)} ids for {len(args.rm_dirs)} --rm-dirs")
    _need_paths(args.pairs, *args.rm_dirs)
    runs = _named_lists(args.runs, "--runs")
    groups = {name: [int(s) for s in seeds.split(",")]
              for name, seeds in _named_args(args.groups, "--groups", "NAME=SEED[,SEED...]").items()}
    scorer = GoldScorer(args.gold_rm, is_alpacafarm_rm=args.is_alpacafarm_rm, batch_size=args.batch_size) \
        if runs else None
    df = diversity_table(args.rm_dirs, args.member_ids, args.pairs, runs, scorer, groups=groups,
                         batch_size=args.batch_size)
    write_csv(df, args.out)


def cmd_debate_data(args) -> None:
    from .debate.config import DebateDatasetConfig
    from .debate.data import prepare_debate_data

    cfg = DebateDatasetConfig.from_dict(load_config_arg(args.config))
    counts = prepare_debate_data(cfg, args.out_dir)
    _manifest(args, "debate-data", cfg.to_dict(), seed=cfg.seed, extra={"rows": counts})


def cmd_debate_chunk(args) -> None:
    from .debate.config import TournamentRun
    from .debate.data import load_questions
    from .debate.prompts import load_prompts
    from .debate.tournament import run_chunk

    run = TournamentRun.from_dict(load_config_arg(args.config))
    if not 0 <= args.chunk < run.tournament.n_chunks:
        raise PipelineError(f"--chunk {args.chunk}: expected 0..{run.tournament.n_chunks - 1} "
                            f"(tournament {run.name} has n_chunks={run.tournament.n_chunks})")
    prompts = load_prompts(run.prompts)
    questions = load_questions(args.questions)
    counts = run_chunk(run.name, run.section_view(), questions, args.chunk, args.out, args.state_dir, prompts)
    _manifest(args, "debate-chunk", run.to_dict(), seed=run.tournament.seed, extra={"chunk": args.chunk, **counts})


def cmd_debate_summary(args) -> None:
    from .debate.backends.simple import load_records
    from .debate.ratings import summarize

    _need_paths(*args.transcripts)
    records = [r for path in args.transcripts for r in load_records(path)]
    summarize(records, args.out_dir, args.bootstrap, args.seed)


def cmd_debate_rejudge(args) -> None:
    from .debate.backends.simple import load_records
    from .debate.config import ModelConfig
    from .debate.prompts import load_prompts
    from .debate.rejudge import rejudge

    _need_paths(*args.transcripts)
    cfg = ModelConfig.from_dict(load_config_arg(args.config), f"debate.judges.{args.judge}")
    records = [r for path in args.transcripts for r in load_records(path)]
    rejudge(records, args.judge, cfg, load_prompts(args.prompts), args.out_dir, args.bootstrap, args.seed)
    _manifest(args, "debate-rejudge", cfg.to_dict(), seed=args.seed, extra={"judge": args.judge,
                                                                            "transcripts": args.transcripts})


def _training_inputs(args):
    from .debate.backends.simple import load_records
    from .debate.data import load_questions
    from .debate.prompts import load_prompts

    _need_paths(*args.transcripts)
    records = [r for path in args.transcripts for r in load_records(path)]
    return records, load_questions(args.questions), load_prompts(args.prompts)


def cmd_debate_sft(args) -> None:
    from .debate.training import sft_rows, train_debater_sft
    from .models import load_tokenizer
    from .sft import SFTConfig

    cfg = SFTConfig.from_dict(load_config_arg(args.config), "debate.training.sft")
    records, questions, prompts = _training_inputs(args)
    tok = load_tokenizer(cfg.model or args.tokenizer)
    rows = sft_rows(records, questions, tok, prompts, args.prompt, args.simultaneous == "true", args.debaters,
                    args.max_speeches, seed=cfg.seed)
    metrics = train_debater_sft(cfg, args.tokenizer, rows, args.out, ckpt_dir=args.ckpt_dir)
    _manifest(args, "debate-sft", {**cfg.to_dict(), "tokenizer": args.tokenizer, "prompt": args.prompt,
                                   "debaters": args.debaters, "max_speeches": args.max_speeches}, seed=cfg.seed,
              extra={"metrics": metrics, "transcripts": args.transcripts, "speeches": len(rows)})


def cmd_debate_pairs(args) -> None:
    from .debate.config import PairSettings
    from .debate.training import preference_pairs
    from .io import write_json, write_jsonl
    from .models import load_tokenizer

    cfg = PairSettings.from_dict(load_config_arg(args.config))
    records, questions, prompts = _training_inputs(args)
    pairs, counts = preference_pairs(records, questions, load_tokenizer(args.tokenizer), prompts, args.prompt,
                                     args.simultaneous == "true", cfg, where=" ".join(args.transcripts))
    write_jsonl(args.out, pairs)
    write_json(args.summary, {**counts, "config": cfg.to_dict(), "transcripts": args.transcripts})


def cmd_debate_dpo(args) -> None:
    from .debate.config import DPOSettings
    from .debate.training import read_pairs, train_debater_dpo

    cfg = DPOSettings.from_dict(load_config_arg(args.config))
    _need_paths(args.init, args.pairs)
    metrics = train_debater_dpo(cfg, args.init, read_pairs(args.pairs), args.out, ckpt_dir=args.ckpt_dir)
    _manifest(args, "debate-dpo", {**cfg.to_dict(), "init": args.init}, seed=cfg.seed,
              extra={"metrics": metrics, "pairs": args.pairs})


def cmd_debate_strength(args) -> None:
    import pandas as pd

    from .debate.config import DebateTrainingConfig
    from .debate.ratings import write_csv
    from .debate.training import plot_strength, strength_table

    cfg = DebateTrainingConfig.from_dict(load_config_arg(args.config))
    _need_paths(args.rounds, args.ratings)
    names = [n for n, _ in cfg.checkpoints()]
    n = cfg.strength.best_of_n.n
    bon = {cfg.bon_name(c): (c, n) for c in names} if n > 1 else {}
    table = strength_table(pd.read_csv(args.rounds), pd.read_csv(args.ratings), names, bon)
    write_csv(table, args.out_csv)
    plot_strength(table, args.out_png)


def cmd_redteam_target_data(args) -> None:
    from .redteam.config import WorldConfig
    from .redteam.world import prepare_target_data

    cfg = WorldConfig.from_dict(load_config_arg(args.config))
    counts = prepare_target_data(cfg, args.out_dir)
    _manifest(args, "redteam-target-data", cfg.to_dict(), seed=cfg.seed, extra={"rows": counts})


def cmd_redteam_classifier(args) -> None:
    from .redteam.classifier import train_toxicity_classifier
    from .redteam.config import ClassifierTrainConfig, WorldConfig
    from .redteam.world import classifier_data

    cfg = ClassifierTrainConfig.from_dict(load_config_arg(args.config))
    world = WorldConfig.from_dict(load_config_arg(args.world))
    metrics = train_toxicity_classifier(cfg, classifier_data(world), args.out_dir)
    _manifest(args, "redteam-classifier", {"classifier": cfg.to_dict(), "world": world.to_dict()}, seed=cfg.seed,
              extra={"metrics": metrics})


def cmd_redteam(args) -> None:
    from .redteam.config import RedTeamRunConfig
    from .redteam.run import train_redteam

    run = RedTeamRunConfig.from_dict(load_config_arg(args.config))
    _need_paths(args.policy, args.train_prompts, args.eval_prompts)
    summary = train_redteam(run, args.policy, _prompts(args.train_prompts), _prompts(args.eval_prompts),
                            args.target, args.toxicity, args.out_dir, args.ckpt_dir)
    _manifest(args, "redteam", run.to_dict(), seed=run.hparams.seed,
              extra={"last": summary.get("last"), "final_metrics": summary.get("final_metrics")})


def cmd_redteam_summary(args) -> None:
    from .redteam.run import summarize_redteam

    runs = {}
    for item in args.runs:
        name, group, path = (item.split("=", 2) + ["", ""])[:3]
        if not path:
            raise PipelineError(f"--runs {item!r}: expected NAME=GROUP=metrics.csv")
        _need_paths(path)
        runs[name] = (group, path)
    summarize_redteam(runs, args.out_csv, args.out_png)


def cmd_ad_data(args) -> None:
    from .ad.config import ADSection
    from .ad.data import write_contexts

    ad = ADSection.from_dict(load_config_arg(args.config))
    _need_paths(args.tokenizer)
    report = write_contexts(ad, _named_args(args.histories, "--histories", "NAME=DIR"), args.heldout, args.tokenizer,
                            args.out_dir)
    _manifest(args, "ad-data", ad.to_dict(), extra={"report": report})


def cmd_ad_lm(args) -> None:
    from .ad.config import ADSection
    from .ad.lm import train_ad_lm

    ad = ADSection.from_dict(load_config_arg(args.config))
    _need_paths(args.tokenizer, args.contexts)
    metrics = train_ad_lm(ad.lm, ad.format.context_length, args.tokenizer, args.contexts, args.out_dir, args.ckpt_dir)
    _manifest(args, "ad-lm", ad.to_dict(), seed=ad.lm.seed, extra={"metrics": metrics})


def cmd_ad_eval(args) -> None:
    from .ad.config import ADSection
    from .ad.evaluate import evaluate_ad

    ad = ADSection.from_dict(load_config_arg(args.config))
    _need_paths(args.lm, args.expert, args.prompts)
    check_model("--gold-rm", args.gold_rm)
    rms = {int(k): v for k, v in _named_args(args.rm_dirs, "--rm-dirs", "SEED=DIR").items()}
    heldout = _named_args(args.heldout, "--heldout", "NAME=DIR")
    metrics = evaluate_ad(ad, args.lm, args.expert, heldout, rms, args.gold_rm, args.prompts, args.out_dir,
                          is_alpacafarm_rm=args.is_alpacafarm_rm, batch_size=args.batch_size)
    _manifest(args, "ad-eval", ad.to_dict(), seed=ad.eval.seed, extra={"metrics": metrics})


def _histories(items: list[str], flag: str) -> list:
    """``NAME=DIR`` arguments as loaded learning histories (PipelineError naming the bad one)."""
    from .ad.data import load_history

    return [load_history(name, path) for name, path in _named_args(items, flag, "NAME=DIR").items()]


def cmd_ad_rl(args) -> None:
    from .ad.config import ADSection
    from .ad.rl import MODEL_DIR, evaluate_rl, plot_by_position, train_rl, write_metrics
    from .models import load_tokenizer

    cfg = ADSection.from_dict(load_config_arg(args.config))
    train, heldout = _histories(args.histories, "--histories"), _histories(args.heldout, "--heldout")
    both = sorted({h.name for h in train} & {h.name for h in heldout})
    if both:
        raise PipelineError(f"--heldout: {both} also in --histories; a held-out history must not be trained on")
    tok = load_tokenizer(args.tokenizer)
    out = Path(args.out_dir)
    summary = train_rl(cfg.rl, cfg.format, train, out, tok, ckpt_dir=args.ckpt_dir)
    rows, episodes = evaluate_rl(out / MODEL_DIR, heldout, cfg.format, cfg.eval.n_episodes_heldout,
                                 seed=cfg.eval.seed)
    write_metrics(out / "eval_episodes.csv", episodes)
    plot_by_position(episodes, out / "metrics.png")
    write_metrics(out / "metrics.csv", rows)
    _manifest(args, "ad-rl", {"rl": cfg.rl.to_dict(), "format": cfg.format.to_dict(),
                              "eval": cfg.eval.to_dict(), "tokenizer": args.tokenizer,
                              "histories": args.histories, "heldout": args.heldout},
              seed=cfg.rl.seed, extra={"train": summary})


def cmd_config(args) -> None:
    import yaml

    from .workflow_config import explain_config, resolve_config

    command_line = {}
    if args.config:
        from snakemake.cli import parse_config  # Snakemake's own parser: the same values `snakemake --config` gets

        try:
            command_line = parse_config(args.config)
        except ValueError as e:
            raise PipelineError(f"--config: {e}") from None
    cfg, origins, layers = resolve_config(args.configfile or [], command_line, args.root,
                                          check_paths=not args.no_check_paths)
    if args.yaml:
        sys.stdout.write(yaml.safe_dump(cfg.to_dict(), sort_keys=False, width=120))
    else:
        sys.stdout.write(explain_config(cfg, origins, layers, only=args.only))


def cmd_miniature_assets(args) -> None:
    from .miniature import make_assets

    out = make_assets(args.experiment, args.root)
    print(f"{args.experiment}: " + (f"wrote {out}" if out else "needs no assets (the embedded world)"))


def cmd_schema(args) -> None:
    import yaml

    from .workflow_config import workflow_schema

    text = yaml.safe_dump(workflow_schema(), sort_keys=False, width=120)
    if args.out:
        from .io import atomic_file

        with atomic_file(args.out) as tmp:
            Path(tmp).write_text(text)
    else:
        sys.stdout.write(text)


# --- parser -----------------------------------------------------------------------------------

CKPT_HELP = ("resumable checkpoints (keep outside declared outputs): resume from the newest complete one; "
             "SIGTERM/SIGUSR1 checkpoint and exit 128+signal; deleted on success. Omitted: no checkpoints")
MANIFEST_HELP = "write a provenance manifest (JSON) here"
ALPACAFARM_HELP = "the gold RM is an AlpacaFarm RM: format its inputs with the Alpaca instruction template"


def build_parser() -> argparse.ArgumentParser:
    from .ad.config import ADSection
    from .data.config import DatasetConfig
    from .debate.config import (
        DebateDatasetConfig,
        DebateTrainingConfig,
        DPOSettings,
        ModelConfig,
        PairSettings,
        TournamentRun,
    )
    from .evaluation.config import BestOfNConfig
    from .preferences import PreferencesConfig
    from .redteam.config import ClassifierTrainConfig, RedTeamRunConfig, WorldConfig
    from .reward.config import GoldRMConfig, RMConfig
    from .runs import Ensemble, PPORunConfig
    from .sft import SFTConfig
    from .workflow_config import GoldEvalConfig, WorkflowConfig

    p = argparse.ArgumentParser(prog="python -m rlhf_pipeline", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="stage", required=True, metavar="<stage>")

    def stage(name: str, fn, help: str, config: type | None = None) -> argparse.ArgumentParser:
        """A subcommand; with ``config``, its ``--config`` section's settings are listed under --help."""
        epilog = None
        if config is not None:
            epilog = (f"settings of --config ({config.section}; omitted keys take these defaults):\n"
                      + settings_help(config))
        sp = sub.add_parser(name, help=help, description=help, epilog=epilog,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(fn=fn)
        if config is not None:
            sp.add_argument("--config", help=f"the {config.section} settings (listed below): a JSON object or a "
                            "YAML/JSON file")
            sp.add_argument("--manifest", help=MANIFEST_HELP)
        return sp

    sp = stage("prepare-data", cmd_prepare_data, "Write {train,val,test}.jsonl of a registered dataset.",
               DatasetConfig)
    sp.add_argument("--seed", type=int, default=default_of(WorkflowConfig, "seed"),
                    help="seed of the synthetic generator / split shuffles (default: %(default)s)")
    sp.add_argument("--out-dir", required=True, help="directory for the split files")

    sp = stage("sft", cmd_sft, "Supervised fine-tuning of the policy (TRL SFTTrainer).", SFTConfig)
    sp.add_argument("--tokenizer", default=default_of(WorkflowConfig, "tokenizer"),
                    help="hub id, local path, or 'minilm' (default: %(default)s)")
    sp.add_argument("--train", required=True, help="train split JSONL (prompt, response)")
    sp.add_argument("--val", required=True, help="val split JSONL (prompt, response)")
    sp.add_argument("--out", required=True, help="output model directory")
    sp.add_argument("--ckpt-dir", help=CKPT_HELP)

    sp = stage("gold-rm-train", cmd_gold_rm_train,
               "Train the embedded default's gold RM on the synthetic world's hidden quality.", GoldRMConfig)
    sp.add_argument("--out-dir", required=True, help="writes OUT_DIR/model/ and OUT_DIR/metrics.json")

    sp = stage("label-preferences", cmd_label_preferences,
               "Sample response pairs from the SFT policy and label them with the gold RM (+ label noise).",
               PreferencesConfig)
    sp.add_argument("--policy", help="SFT model directory (source: policy_samples)")
    sp.add_argument("--gold-rm", help="gold RM directory or hub id (source: policy_samples)")
    sp.add_argument("--is-alpacafarm-rm", action="store_true", help=ALPACAFARM_HELP)
    sp.add_argument("--train-prompts", required=True, help="train split JSONL ('prompt'; source: dataset also "
                    "'chosen', 'rejected')")
    sp.add_argument("--val-prompts", required=True, help="val split JSONL (as --train-prompts)")
    sp.add_argument("--out-train", required=True, help="train pairs JSONL to write")
    sp.add_argument("--out-val", required=True, help="held-out pairs JSONL to write")

    sp = stage("rm-train", cmd_rm_train, "Train one proxy reward model (TRL RewardTrainer).", RMConfig)
    sp.add_argument("--seed", type=int, required=True, help="member seed")
    sp.add_argument("--prefs-train", required=True, help="training pairs JSONL (label-preferences output)")
    sp.add_argument("--prefs-val", required=True, help="held-out pairs JSONL (label-preferences output)")
    sp.add_argument("--sft-model", help="SFT model dir (the backbone when rm.init is 'sft')")
    sp.add_argument("--out-dir", required=True, help="writes OUT_DIR/model/ and OUT_DIR/metrics.json")
    sp.add_argument("--ckpt-dir", help=CKPT_HELP)

    sp = stage("rm-summary", cmd_rm_summary, "One row per proxy RM member, and a plot.")
    sp.add_argument("--metrics", nargs="+", required=True, help="members' metrics.json files")
    sp.add_argument("--out-csv", required=True, help="summary CSV to write")
    sp.add_argument("--out-png", required=True, help="summary plot to write")

    sp = stage("ppo", cmd_ppo, "PPO of the SFT policy against one proxy RM or an ensemble objective.", PPORunConfig)
    sp.add_argument("--policy", required=True, help="initial policy (SFT model dir)")
    sp.add_argument("--rm-dirs", nargs="+", required=True, help="proxy RM model dirs, one per rm_seeds entry, in order")
    sp.add_argument("--train-prompts", required=True, help="JSONL with 'prompt' (rollout prompts)")
    sp.add_argument("--eval-prompts", required=True, help="JSONL with 'prompt' (held-out eval prompts)")
    sp.add_argument("--out-dir", required=True, help="eval/, train_log.csv, model/, tb/")
    sp.add_argument("--ckpt-dir", required=True, help=CKPT_HELP)

    sp = stage("gold-eval", cmd_gold_eval,
               "Score a PPO eval directory (complete or from a stopped run) with the gold RM.")
    sp.add_argument("eval_dir", help="directory of step*.jsonl files")
    sp.add_argument("gold_rm", help="gold RM directory or hub id")
    sp.add_argument("--batch-size", type=int, default=default_of(GoldEvalConfig, "batch_size"),
                    help="texts per gold-RM forward pass (default: %(default)s, gold_eval.batch_size)")
    sp.add_argument("--is-alpacafarm-rm", action="store_true", help=ALPACAFARM_HELP)
    sp.add_argument("--out", help="CSV path (default: EVAL_DIR/../gold_eval.csv)")
    sp.add_argument("--plot", help="also write the gold/proxy-vs-KL PNG here")
    sp.add_argument("--scored-dir", help="also write per-sample gold scores here")
    sp.add_argument("--manifest", help=MANIFEST_HELP)

    sp = stage("bon-sample", cmd_bon_sample, "Sample N responses per prompt from the SFT policy; score them with "
               "every proxy RM and the gold RM.", BestOfNConfig)
    sp.add_argument("--policy", required=True, help="policy to sample from (SFT model dir)")
    sp.add_argument("--rm-dirs", nargs="+", required=True, help="proxy RM model dirs")
    sp.add_argument("--member-ids", nargs="+", type=int, required=True, help="RM seed of each --rm-dirs entry")
    sp.add_argument("--gold-rm", required=True, help="gold RM directory or hub id")
    sp.add_argument("--is-alpacafarm-rm", action="store_true", help=ALPACAFARM_HELP)
    sp.add_argument("--prompts", required=True, help="JSONL with 'prompt' (held-out prompts)")
    sp.add_argument("--out", required=True, help="samples JSONL to write")

    sp = stage("bon", cmd_bon, "Best-of-n curve (unbiased estimator) for one objective over RM members.")
    sp.add_argument("--samples", required=True, help="bon-sample output")
    sp.add_argument("--ensemble", required=True, help="the run's members and objective: a JSON object or YAML/JSON "
                    "file with " + ", ".join(f.name for f in dataclasses.fields(Ensemble)) + " (see the ppo stage)")
    sp.add_argument("--ns", nargs="+", type=int, required=True, help="values of n")
    sp.add_argument("--no-standardize", action="store_true", help="combine raw member scores (no z-scoring)")
    sp.add_argument("--out", required=True, help="bon.csv to write")

    sp = stage("plot-overoptimization", cmd_plot_overoptimization,
               "All runs on one figure: gold (and proxy) reward vs KL, best-of-n alongside.")
    sp.add_argument("--gold-evals", nargs="*", help="RUN=gold_eval.csv ...")
    sp.add_argument("--bons", nargs="*", help="RUN=bon.csv ...")
    sp.add_argument("--fits", help="fits.csv (fit-curves): draw each run's fitted curve")
    sp.add_argument("--diversity", help="diversity.csv (rm-diversity): add a panel of the ensemble diagnostics")
    sp.add_argument("--out", required=True, help="PNG to write")

    sp = stage("aggregate-replicates", cmd_aggregate_replicates, "Mean and 95%% interval per eval step over a "
               "run's replicates (PPO seeds): aggregate.csv.")
    sp.add_argument("--gold-evals", nargs="+", required=True, help="every replicate's gold_eval.csv")
    sp.add_argument("--out", required=True, help="aggregate.csv to write")

    sp = stage("fit-curves", cmd_fit_curves, "Fit Gao et al. 2022's forms to every run's gold curve against "
               "sqrt(KL) (fits.csv), and compare every run with a baseline run at equal KL (equal_kl.csv).")
    sp.add_argument("--runs", nargs="*", help="RUN=gold_eval.csv[,gold_eval.csv...] (the run's replicates)")
    sp.add_argument("--bons", nargs="*", help="RUN=bon.csv ...")
    sp.add_argument("--out", required=True, help="fits.csv to write")
    sp.add_argument("--baseline", help="run the others are compared with at equal KL (one of the --runs names)")
    sp.add_argument("--equal-kl", help="equal_kl.csv to write: gold at common sqrt(KL) values, each run minus "
                    "the baseline, with 95%% intervals")

    sp = stage("rm-diversity", cmd_rm_diversity, "Ensemble diversity: members' error correlations on held-out "
               "pairs, and disagreement vs proxy error on PPO samples: diversity.csv.")
    sp.add_argument("--rm-dirs", nargs="+", required=True, help="every proxy RM member's model dir")
    sp.add_argument("--member-ids", nargs="+", type=int, required=True, help="RM seed of each --rm-dirs entry")
    sp.add_argument("--pairs", required=True, help="held-out preference pairs JSONL (label-preferences output)")
    sp.add_argument("--groups", nargs="*", help="NAME=SEED,SEED,... member groups to average over (e.g. a run's)")
    sp.add_argument("--runs", nargs="*", help="RUN=EVAL_DIR[,EVAL_DIR...] ensemble runs' PPO eval dirs")
    sp.add_argument("--gold-rm", help="gold RM directory or hub id (needed with --runs)")
    sp.add_argument("--is-alpacafarm-rm", action="store_true", help=ALPACAFARM_HELP)
    sp.add_argument("--batch-size", type=int, default=default_of(GoldEvalConfig, "batch_size"),
                    help="texts per forward pass (default: %(default)s, gold_eval.batch_size)")
    sp.add_argument("--out", required=True, help="diversity.csv to write")

    sp = stage("debate-data", cmd_debate_data, "Write the debate questions {train,val,test}.jsonl (synthetic or "
               "QuALITY).", DebateDatasetConfig)
    sp.add_argument("--out-dir", required=True, help="directory for the split files")

    sp = stage("debate-chunk", cmd_debate_chunk, "Play one chunk of a tournament's rounds; resumes a stopped chunk "
               "without replaying finished rounds.", TournamentRun)
    sp.add_argument("--chunk", type=int, required=True, help="which chunk (0-based, < the tournament's n_chunks)")
    sp.add_argument("--questions", required=True, help="debate questions JSONL (debate-data output)")
    sp.add_argument("--out", required=True, help="transcripts JSONL to write (one round per line)")
    sp.add_argument("--state-dir", required=True, help="where finished rounds are appended while the chunk runs "
                    "(outside declared outputs); a rerun resumes from it")

    def summary_args(sp):
        sp.add_argument("--transcripts", nargs="+", required=True, help="transcripts chunk*.jsonl files")
        sp.add_argument("--out-dir", required=True, help="writes rounds.csv, ratings.csv, judge.csv and the plots")
        sp.add_argument("--bootstrap", type=int, required=True, help="bootstrap resamples over questions (the "
                        "tournament's bootstrap)")
        sp.add_argument("--seed", type=int, required=True, help="bootstrap seed (the tournament's seed)")

    sp = stage("debate-summary", cmd_debate_summary, "Merge a tournament's chunks into rounds.csv, ratings.csv "
               "(Bradley-Terry), judge.csv and plots.")
    summary_args(sp)

    sp = stage("debate-rejudge", cmd_debate_rejudge, "Re-judge saved transcripts with another judge (no speech is "
               "generated) and write the same tables.", ModelConfig)
    summary_args(sp)
    sp.add_argument("--judge", required=True, help="the new judge's name (debate.judges key)")
    sp.add_argument("--prompts", required=True, help="prompts file (LM judges; debate.prompts)")

    def training_args(sp):
        sp.add_argument("--transcripts", nargs="+", required=True, help="transcripts chunk*.jsonl files")
        sp.add_argument("--questions", required=True, help="the questions JSONL the tournament debated")
        sp.add_argument("--prompts", required=True, help="prompts file (debate.prompts)")
        sp.add_argument("--prompt", required=True, help="the prompt set the trained debater speaks with")
        sp.add_argument("--simultaneous", choices=("true", "false"), required=True,
                        help="whether the tournament's debates were simultaneous (what each speaker saw)")

    sp = stage("debate-sft", cmd_debate_sft, "Train an LM debater (TRL SFTTrainer) on a tournament's speeches.",
               SFTConfig)
    training_args(sp)
    sp.add_argument("--tokenizer", required=True, help="tokenizer of a from-scratch model (hub id, path, minilm; "
                    "debate.training.tokenizer)")
    sp.add_argument("--debaters", nargs="*", default=[], help="whose speeches (default: every debater's)")
    sp.add_argument("--max-speeches", type=int, help="train on a seeded sample of at most this many speeches")
    sp.add_argument("--out", required=True, help="output model directory")
    sp.add_argument("--ckpt-dir", help=CKPT_HELP)

    sp = stage("debate-pairs", cmd_debate_pairs, "DPO preference pairs from best-of-N alternatives in transcripts.",
               PairSettings)
    training_args(sp)
    sp.add_argument("--tokenizer", required=True, help="the debater's model directory (its tokenizer renders "
                    "prompts)")
    sp.add_argument("--out", required=True, help="pairs JSONL to write")
    sp.add_argument("--summary", required=True, help="counts JSON to write")

    sp = stage("debate-dpo", cmd_debate_dpo, "One DPO iteration of a debater (TRL DPOTrainer).", DPOSettings)
    sp.add_argument("--init", required=True, help="the start (and reference) model directory")
    sp.add_argument("--pairs", required=True, help="pairs JSONL (debate-pairs output)")
    sp.add_argument("--out", required=True, help="output model directory")
    sp.add_argument("--ckpt-dir", help=CKPT_HELP)

    sp = stage("debate-strength", cmd_debate_strength, "Judge accuracy against debater strength from the strength "
               "tournament's rounds.csv and ratings.csv.", DebateTrainingConfig)
    sp.add_argument("--rounds", required=True, help="the strength tournament's rounds.csv")
    sp.add_argument("--ratings", required=True, help="the strength tournament's ratings.csv")
    sp.add_argument("--out-csv", required=True, help="judge_accuracy.csv to write")
    sp.add_argument("--out-png", required=True, help="judge_accuracy.png to write")

    sp = stage("redteam-target-data", cmd_redteam_target_data, "Write the default red-team target's fine-tuning "
               "data (the synthetic world's trigger and toxic words).", WorldConfig)
    sp.add_argument("--out-dir", required=True, help="writes train.jsonl and val.jsonl")

    sp = stage("redteam-classifier", cmd_redteam_classifier, "Train the default toxicity classifier (frozen MiniLM "
               "+ a head) on the synthetic world.", ClassifierTrainConfig)
    sp.add_argument("--world", help="the redteam.world settings (JSON or a YAML/JSON file)")
    sp.add_argument("--out-dir", required=True, help="writes OUT_DIR/model/ and OUT_DIR/metrics.json")

    sp = stage("redteam", cmd_redteam, "Train an attacker with PPO against a target's toxicity, with novelty "
               "rewards (curiosity-driven red-teaming).", RedTeamRunConfig)
    sp.add_argument("--policy", required=True, help="the attacker's initial policy (SFT model dir)")
    sp.add_argument("--train-prompts", required=True, help="JSONL with 'prompt' (the attacker's inputs)")
    sp.add_argument("--eval-prompts", required=True, help="JSONL with 'prompt' (held-out attacker inputs)")
    sp.add_argument("--target", help="the default target model dir (when redteam.target.model is null)")
    sp.add_argument("--toxicity", help="the default toxicity classifier dir (when redteam.toxicity.model is null)")
    sp.add_argument("--out-dir", required=True, help="eval/, samples.jsonl, metrics.csv, train_log.csv, model/")
    sp.add_argument("--ckpt-dir", required=True, help=CKPT_HELP)

    sp = stage("redteam-summary", cmd_redteam_summary, "Every red-team run's final success rate and diversity, and "
               "the success-against-diversity plot.")
    sp.add_argument("--runs", nargs="+", required=True, help="NAME=GROUP=metrics.csv ...")
    sp.add_argument("--out-csv", required=True, help="summary CSV to write")
    sp.add_argument("--out-png", required=True, help="plot to write")

    sp = stage("ad-data", cmd_ad_data, "Algorithm distillation: learning-history contexts (language format) from "
               "PPO runs' trajectories: train/heldout/expert.jsonl and report.csv.", ADSection)
    sp.add_argument("--histories", nargs="+", required=True, help="NAME=TRAJECTORIES_DIR ... (one per history)")
    sp.add_argument("--heldout", nargs="*", default=[], help="names of held-out histories (evaluation only)")
    sp.add_argument("--tokenizer", required=True, help="the policy directory whose tokenizer the contexts use")
    sp.add_argument("--out-dir", required=True, help="writes train.jsonl, heldout.jsonl, expert.jsonl, report.csv")

    sp = stage("ad-lm", cmd_ad_lm, "Train the language-format algorithm-distillation model (TRL SFTTrainer) on "
               "contexts.", ADSection)
    sp.add_argument("--contexts", required=True, help="contexts JSONL from ad-data (train.jsonl or expert.jsonl)")
    sp.add_argument("--tokenizer", required=True, help="the policy directory whose tokenizer the model uses")
    sp.add_argument("--out-dir", required=True, help="the model directory to write")
    sp.add_argument("--ckpt-dir", help=CKPT_HELP)

    sp = stage("ad-eval", cmd_ad_eval, "Evaluate an algorithm-distillation model on held-out histories: reward "
               "prediction, action log-likelihood, and the in-context improvement test with its controls.", ADSection)
    sp.add_argument("--lm", required=True, help="the AD model directory")
    sp.add_argument("--expert", required=True, help="the expert-distillation model directory (control)")
    sp.add_argument("--heldout", nargs="+", required=True, help="NAME=TRAJECTORIES_DIR ... of held-out histories")
    sp.add_argument("--rm-dirs", nargs="+", required=True, help="SEED=RM_DIR ... of the proxy RM members")
    sp.add_argument("--gold-rm", required=True, help="gold RM (directory or hub id)")
    sp.add_argument("--is-alpacafarm-rm", action="store_true", help=ALPACAFARM_HELP)
    sp.add_argument("--prompts", required=True, help="JSONL with 'prompt': the held-out prompts of the in-context test")
    sp.add_argument("--batch-size", type=int, default=default_of(GoldEvalConfig, "batch_size"),
                    help="texts per reward-model forward pass (default: %(default)s, gold_eval.batch_size)")
    sp.add_argument("--out-dir", required=True, help="writes metrics.csv, incontext.csv, incontext.png")

    sp = stage("ad-rl", cmd_ad_rl, "Train the RL-format algorithm-distillation model (action and reward heads) on "
               "learning histories, and evaluate it on held-out ones with and without the history.", ADSection)
    sp.add_argument("--histories", nargs="+", required=True, help="training histories: NAME=TRAJECTORY_DIR ...")
    sp.add_argument("--heldout", nargs="+", required=True, help="held-out histories: NAME=TRAJECTORY_DIR ...")
    sp.add_argument("--tokenizer", default=default_of(WorkflowConfig, "tokenizer"),
                    help="the policy's tokenizer (its model dir; default: %(default)s)")
    sp.add_argument("--out-dir", required=True, help="writes model/, train_log.csv, train_report.csv, "
                    "eval_episodes.csv, metrics.png, metrics.csv")
    sp.add_argument("--ckpt-dir", help=CKPT_HELP)

    sp = stage("config", cmd_config, "Print the fully resolved workflow config of a set of config files, each value "
               "marked with where it came from (default / demo / experiment FILE / command line), as "
               "`snakemake --configfile ... --config ...` would resolve it; checks it as the plan does.")
    sp.add_argument("--configfile", nargs="+", metavar="FILE", help="config files, as given to snakemake (none: "
                    "the embedded demo, config/config.yaml)")
    sp.add_argument("--config", nargs="+", metavar="KEY=VALUE", help="settings as given to snakemake --config")
    sp.add_argument("--only", metavar="KEY", help="only the settings under this key (e.g. ppo.hparams)")
    sp.add_argument("--yaml", action="store_true", help="print the resolved config as one YAML file instead")
    sp.add_argument("--root", default=".", help="the workflow's root directory (where config/config.yaml is)")
    sp.add_argument("--no-check-paths", action="store_true", help="skip the plan-time model and data path checks")

    sp = stage("miniature-assets", cmd_miniature_assets, "Write the tiny models and shaped data files an "
               "experiment's miniature overlay (config/experiments/miniature/EXPERIMENT.yaml) names, under "
               "results/miniature/EXPERIMENT/ (made here; nothing is downloaded).")
    sp.add_argument("experiment", help="the experiment's name (config/experiments/EXPERIMENT.yaml)")
    sp.add_argument("--root", default="results/miniature", help="where the assets go (the overlays name paths "
                    "under results/miniature/, relative to the workflow's working directory)")

    sp = stage("schema", cmd_schema, "Print the workflow config's JSON Schema, generated from the config dataclasses.")
    sp.add_argument("--out", help="write it here instead of stdout (workflow/schemas/config.schema.yaml)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:  # a real command line: multi-GPU training stages relaunch under accelerate
        maybe_relaunch(args.stage, sys.argv[1:])
    keep_freed_memory()
    try:
        args.fn(args)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
