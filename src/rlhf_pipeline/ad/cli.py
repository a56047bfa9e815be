"""CLI stages of the algorithm-distillation family: ``ad-data``, ``ad-lm``, ``ad-eval``, ``ad-rl``
(see :mod:`rlhf_pipeline.stage`)."""

from __future__ import annotations

from pathlib import Path

from ..config import default_of
from ..errors import PipelineError
from ..reward.config import check_gold_rm
from ..stage import ALPACAFARM_HELP, CKPT_HELP, Record, arg, named_args, stage
from ..workflow_config import GoldEvalConfig
from .config import ADSection


@stage("Algorithm distillation: learning-history contexts (language format) from PPO runs' trajectories: "
       "train/heldout/expert.jsonl, report.csv and the AD models' tokenizer/.", config=ADSection, args=[
           arg("--histories", nargs="+", required=True, help="NAME=TRAJECTORIES_DIR ... (one per history)"),
           arg("--heldout", nargs="*", default=[], help="names of held-out histories (evaluation only)"),
           arg("--tokenizer", required=True, help="the policy directory whose tokenizer the contexts use, or "
               "'world' (one made from the training histories' episodes)"),
           arg("--out-dir", required=True, help="writes train.jsonl, heldout.jsonl, expert.jsonl, report.csv, "
               "tokenizer/"),
       ])
def cmd_ad_data(args, ad: ADSection) -> Record:
    from .data import write_contexts

    report = write_contexts(ad, named_args(args.histories, "--histories", "NAME=DIR"), args.heldout, args.tokenizer,
                            args.out_dir)
    return Record(extra={"report": report})


@stage("Train the language-format algorithm-distillation model (TRL SFTTrainer) on contexts.", config=ADSection,
       inputs=["tokenizer", "contexts"], args=[
           arg("--contexts", required=True, help="contexts JSONL from ad-data (train.jsonl or expert.jsonl)"),
           arg("--tokenizer", required=True, help="the tokenizer directory ad-data wrote (its tokenizer/)"),
           arg("--out-dir", required=True, help="the model directory to write"),
           arg("--ckpt-dir", help=CKPT_HELP),
       ])
def cmd_ad_lm(args, ad: ADSection) -> Record:
    from .lm import train_ad_lm

    metrics = train_ad_lm(ad.lm, ad.format.context_length, args.tokenizer, args.contexts, args.out_dir, args.ckpt_dir)
    return Record(seed=ad.lm.seed, extra={"metrics": metrics})


@stage("Evaluate an algorithm-distillation model on held-out histories: reward prediction, action log-likelihood, "
       "and the in-context improvement test with its controls.", config=ADSection,
       inputs=["lm", "expert", "prompts"], args=[
           arg("--lm", required=True, help="the AD model directory"),
           arg("--expert", required=True, help="the expert-distillation model directory (control)"),
           arg("--heldout", nargs="+", required=True, help="NAME=TRAJECTORIES_DIR ... of held-out histories"),
           arg("--rm-dirs", nargs="+", required=True, help="SEED=RM_DIR ... of the proxy RM members"),
           arg("--gold-rm", required=True, help="gold RM (directory or hub id)"),
           arg("--is-alpacafarm-rm", action="store_true", help=ALPACAFARM_HELP),
           arg("--prompts", required=True, help="JSONL with 'prompt': the held-out prompts of the in-context test"),
           arg("--batch-size", type=int, default=default_of(GoldEvalConfig, "batch_size"),
               help="texts per reward-model forward pass (default: %(default)s, gold_eval.batch_size)"),
           arg("--out-dir", required=True, help="writes metrics.csv, incontext.csv, incontext.png"),
       ])
def cmd_ad_eval(args, ad: ADSection) -> Record:
    from .evaluate import evaluate_ad

    check_gold_rm("--gold-rm", args.gold_rm)
    rms = {int(k): v for k, v in named_args(args.rm_dirs, "--rm-dirs", "SEED=DIR").items()}
    heldout = named_args(args.heldout, "--heldout", "NAME=DIR")
    metrics = evaluate_ad(ad, args.lm, args.expert, heldout, rms, args.gold_rm, args.prompts, args.out_dir,
                          is_alpacafarm_rm=args.is_alpacafarm_rm, batch_size=args.batch_size)
    return Record(seed=ad.eval.seed, extra={"metrics": metrics})


def _histories(items: list[str], flag: str) -> list:
    """``NAME=DIR`` arguments as loaded learning histories (PipelineError naming the bad one)."""
    from .data import load_history

    return [load_history(name, path) for name, path in named_args(items, flag, "NAME=DIR").items()]


@stage("Train the RL-format algorithm-distillation model (action and reward heads) on learning histories, and "
       "evaluate it on held-out ones with and without the history.", config=ADSection, args=[
           arg("--histories", nargs="+", required=True, help="training histories: NAME=TRAJECTORY_DIR ..."),
           arg("--heldout", nargs="+", required=True, help="held-out histories: NAME=TRAJECTORY_DIR ..."),
           arg("--tokenizer", required=True, help="the tokenizer of the policy that wrote the histories (its "
               "model directory: the token ids in the trajectories are its)"),
           arg("--out-dir", required=True, help="writes model/, train_log.csv, train_report.csv, "
               "eval_episodes.csv, metrics.png, metrics.csv"),
           arg("--ckpt-dir", help=CKPT_HELP),
       ])
def cmd_ad_rl(args, cfg: ADSection) -> Record:
    from ..models import load_tokenizer
    from .rl import MODEL_DIR, evaluate_rl, plot_by_position, train_rl, write_metrics

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
    return Record({"rl": cfg.rl.to_dict(), "format": cfg.format.to_dict(), "eval": cfg.eval.to_dict(),
                   "tokenizer": args.tokenizer, "histories": args.histories, "heldout": args.heldout},
                  seed=cfg.rl.seed, extra={"train": summary})
