"""CLI stages of the evaluation family: ``gold-eval``, ``bon-sample``, ``bon``, ``plot-overoptimization``,
``aggregate-replicates``, ``fit-curves``, ``rm-diversity`` (see :mod:`rlhf_pipeline.stage`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..config import default_of, load_config_arg
from ..errors import PipelineError
from ..reward.config import check_gold_rm
from ..runs import Ensemble
from ..stage import ALPACAFARM_HELP, MANIFEST_HELP, Record, arg, named_args, named_lists, need_paths, stage
from ..workflow_config import GoldEvalConfig
from .config import BestOfNConfig


@stage("Score a PPO eval directory (complete or from a stopped run) with the gold RM.", args=[
    arg("eval_dir", help="directory of step*.jsonl files"),
    arg("gold_rm", help="gold RM directory or hub id"),
    arg("--batch-size", type=int, default=default_of(GoldEvalConfig, "batch_size"),
        help="texts per gold-RM forward pass (default: %(default)s, gold_eval.batch_size)"),
    arg("--is-alpacafarm-rm", action="store_true", help=ALPACAFARM_HELP),
    arg("--out", help="CSV path (default: EVAL_DIR/../gold_eval.csv)"),
    arg("--plot", help="also write the gold/proxy-vs-KL PNG here"),
    arg("--scored-dir", help="also write per-sample gold scores here"),
    arg("--manifest", help=MANIFEST_HELP),
])
def cmd_gold_eval(args) -> Record:
    from ..reward.gold import gold_scorer
    from .gold_eval import gold_eval
    from .plots import plot_gold_vs_kl

    eval_dir = Path(args.eval_dir)
    if not eval_dir.is_dir():
        raise PipelineError(f"{eval_dir}: eval directory does not exist")
    out = Path(args.out) if args.out else eval_dir.parent / "gold_eval.csv"
    scorer = gold_scorer(args.gold_rm, is_alpacafarm_rm=args.is_alpacafarm_rm, batch_size=args.batch_size)
    df = gold_eval(eval_dir, scorer, out_csv=out, scored_dir=args.scored_dir)
    if args.plot:
        plot_gold_vs_kl(df, args.plot, title=f"{eval_dir.parent.name}: proxy and gold reward vs KL")
    return Record({"gold_rm": args.gold_rm, "batch_size": args.batch_size, "is_alpacafarm_rm": args.is_alpacafarm_rm})


@stage("Sample N responses per prompt from the SFT policy; score them with every proxy RM and the gold RM.",
       config=BestOfNConfig, inputs=["policy", "prompts", "rm_dirs"], args=[
           arg("--policy", required=True, help="policy to sample from (SFT model dir)"),
           arg("--rm-dirs", nargs="+", required=True, help="proxy RM model dirs"),
           arg("--member-ids", nargs="+", type=int, required=True, help="RM seed of each --rm-dirs entry"),
           arg("--gold-rm", required=True, help="gold RM directory or hub id"),
           arg("--is-alpacafarm-rm", action="store_true", help=ALPACAFARM_HELP),
           arg("--prompts", required=True, help="JSONL with 'prompt' (held-out prompts)"),
           arg("--out", required=True, help="samples JSONL to write"),
       ])
def cmd_bon_sample(args, cfg: BestOfNConfig) -> Record:
    from .bon import sample_for_bon

    check_gold_rm("--gold-rm", args.gold_rm)
    sample_for_bon(cfg, args.policy, args.rm_dirs, args.member_ids,
                   args.gold_rm, args.prompts, args.out, is_alpacafarm_rm=args.is_alpacafarm_rm)
    return Record(seed=cfg.seed)


@stage("Best-of-n curve (unbiased estimator) for one objective over RM members.", args=[
    arg("--samples", required=True, help="bon-sample output"),
    arg("--ensemble", required=True, help="the run's members and objective: a JSON object or YAML/JSON file with "
        + ", ".join(f.name for f in dataclasses.fields(Ensemble)) + " (see the ppo stage)"),
    arg("--ns", nargs="+", type=int, required=True, help="values of n"),
    arg("--no-standardize", action="store_true", help="combine raw member scores (no z-scoring)"),
    arg("--out", required=True, help="bon.csv to write"),
])
def cmd_bon(args) -> None:
    from ..io import read_jsonl
    from .bon import best_of_n

    ens = Ensemble.from_dict(load_config_arg(args.ensemble), "--ensemble")
    first = read_jsonl(args.samples, required=["member_ids"])[:1]
    ids = first[0]["member_ids"] if first else []
    missing = [m for m in ens.rm_seeds if m not in ids]
    if missing:
        raise PipelineError(f"{args.samples}: RM member(s) {missing} were not scored (scored: {ids})")
    best_of_n(args.samples, ens.objective, ens.uwo_weight, args.ns, args.out,
              standardize=not args.no_standardize, members=[ids.index(m) for m in ens.rm_seeds])


@stage("All runs on one figure: gold (and proxy) reward vs KL, best-of-n alongside.", args=[
    arg("--gold-evals", nargs="*", help="RUN=gold_eval.csv ..."),
    arg("--bons", nargs="*", help="RUN=bon.csv ..."),
    arg("--fits", help="fits.csv (fit-curves): draw each run's fitted curve"),
    arg("--diversity", help="diversity.csv (rm-diversity): add a panel of the ensemble diagnostics"),
    arg("--groups", nargs="*", help="RUN,RUN,... runs drawn together, one row of panels per group (default: all "
        "in one row)"),
    arg("--optimizers", nargs="*", help="RUN=OPTIMIZER ... each run's optimiser, named in its label (default ppo)"),
    arg("--out", required=True, help="PNG to write"),
])
def cmd_plot_overoptimization(args) -> None:
    import pandas as pd

    from .plots import plot_overoptimization

    def named(items, flag):
        paths = named_args(items, flag)
        need_paths(*paths.values())
        return {name: pd.read_csv(path) for name, path in paths.items()}

    fits = diversity = None
    if args.fits:
        need_paths(args.fits)
        fits = pd.read_csv(args.fits)
    if args.diversity:
        need_paths(args.diversity)
        diversity = pd.read_csv(args.diversity)
    groups = [g.split(",") for g in args.groups or []]
    plot_overoptimization(named(args.gold_evals, "--gold-evals"), named(args.bons, "--bons"), args.out, fits=fits,
                          diversity=diversity, groups=groups or None,
                          optimizers=named_args(args.optimizers or [], "--optimizers"))


@stage("Mean and 95%% interval per eval step over a run's replicates (PPO seeds): aggregate.csv.",
       inputs=["gold_evals"], args=[
           arg("--gold-evals", nargs="+", required=True, help="every replicate's gold_eval.csv"),
           arg("--out", required=True, help="aggregate.csv to write"),
       ])
def cmd_aggregate_replicates(args) -> None:
    import pandas as pd

    from ..io import write_csv
    from .replicates import aggregate_replicates

    df = aggregate_replicates([pd.read_csv(p) for p in args.gold_evals], names=args.gold_evals)
    write_csv(df, args.out)


@stage("Fit Gao et al. 2022's forms to every run's gold curve against sqrt(KL) (fits.csv), and compare every run "
       "with a baseline run at equal KL (equal_kl.csv).", args=[
           arg("--runs", nargs="*", help="RUN=gold_eval.csv[,gold_eval.csv...] (the run's replicates)"),
           arg("--bons", nargs="*", help="RUN=bon.csv ..."),
           arg("--out", required=True, help="fits.csv to write"),
           arg("--baseline", help="run the others are compared with at equal KL (one of the --runs names)"),
           arg("--compare", nargs="*", help="RUN=BASELINE[,BASELINE...]: exactly these comparisons instead of "
               "every run against --baseline (ppo.runs.<run>.compare_with)"),
           arg("--equal-kl", help="equal_kl.csv to write: gold at common sqrt(KL) values, each run minus the "
               "baseline, with 95%% intervals"),
       ])
def cmd_fit_curves(args) -> None:
    import pandas as pd

    from ..io import write_csv
    from .equal_kl import equal_kl_table
    from .fits import fit_table

    rl = {name: [pd.read_csv(p) for p in paths] for name, paths in named_lists(args.runs, "--runs").items()}
    bon = {name: pd.read_csv(paths[0]) for name, paths in named_lists(args.bons, "--bons").items()}
    compare = {name: runs.split(",")
               for name, runs in named_args(args.compare, "--compare", "RUN=RUN[,RUN...]").items()}
    if args.equal_kl and not (args.baseline or compare):
        raise PipelineError("fit-curves: --equal-kl needs --baseline RUN (one of the --runs names) or "
                            "--compare")
    # checked before anything is written
    equal = equal_kl_table(rl, args.baseline, compare=compare or None) if args.equal_kl else None
    write_csv(fit_table(rl, bon), args.out)
    if equal is not None:
        write_csv(equal, args.equal_kl)


@stage("Ensemble diversity: members' error correlations on held-out pairs, and disagreement vs proxy error on PPO "
       "samples: diversity.csv.", args=[
           arg("--rm-dirs", nargs="+", required=True, help="every proxy RM member's model dir"),
           arg("--member-ids", nargs="+", type=int, required=True, help="RM seed of each --rm-dirs entry"),
           arg("--pairs", required=True, help="held-out preference pairs JSONL (label-preferences output)"),
           arg("--groups", nargs="*", help="NAME=SEED,SEED,... member groups to average over (e.g. a run's)"),
           arg("--runs", nargs="*", help="RUN=EVAL_DIR[,EVAL_DIR...] ensemble runs' PPO eval dirs"),
           arg("--gold-rm", help="gold RM directory or hub id (needed with --runs)"),
           arg("--is-alpacafarm-rm", action="store_true", help=ALPACAFARM_HELP),
           arg("--batch-size", type=int, default=default_of(GoldEvalConfig, "batch_size"),
               help="texts per forward pass (default: %(default)s, gold_eval.batch_size)"),
           arg("--out", required=True, help="diversity.csv to write"),
       ])
def cmd_rm_diversity(args) -> None:
    from ..io import write_csv
    from ..reward.gold import gold_scorer
    from .diversity import diversity_table

    if len(args.rm_dirs) != len(args.member_ids):
        raise PipelineError(f"--member-ids: {len(args.member_ids)} ids for {len(args.rm_dirs)} --rm-dirs")
    need_paths(args.pairs, *args.rm_dirs)
    runs = named_lists(args.runs, "--runs")
    groups = {name: [int(s) for s in seeds.split(",")]
              for name, seeds in named_args(args.groups, "--groups", "NAME=SEED[,SEED...]").items()}
    scorer = gold_scorer(args.gold_rm, is_alpacafarm_rm=args.is_alpacafarm_rm, batch_size=args.batch_size) \
        if runs else None
    df = diversity_table(args.rm_dirs, args.member_ids, args.pairs, runs, scorer, groups=groups,
                         batch_size=args.batch_size)
    write_csv(df, args.out)
