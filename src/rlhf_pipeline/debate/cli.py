"""CLI stages of the debate family: ``debate-data``, ``debate-human``, ``debate-chunk``, ``debate-summary``,
``debate-rejudge``, ``debate-sft``, ``debate-pairs``, ``debate-dpo``, ``debate-ppo``, ``debate-strength`` (see
:mod:`rlhf_pipeline.stage`)."""

from __future__ import annotations

from ..config import default_of
from ..errors import PipelineError
from ..sft import SFTConfig
from ..stage import CKPT_HELP, Record, arg, stage
from .config import (
    DebateDatasetConfig,
    DebatePPORun,
    DebateTrainingConfig,
    DPOSettings,
    HumanDebatesConfig,
    ModelConfig,
    PairSettings,
    TournamentConfig,
    TournamentRun,
)

SUMMARY_ARGS = [
    arg("--transcripts", nargs="+", required=True, help="transcripts chunk*.jsonl files"),
    arg("--out-dir", required=True, help="writes rounds.csv, ratings.csv, judge.csv and the plots"),
    arg("--bootstrap", type=int, required=True, help="bootstrap resamples over questions (the tournament's "
        "bootstrap)"),
    arg("--seed", type=int, required=True, help="bootstrap seed (the tournament's seed)"),
]
"""What debate-summary and debate-rejudge read and write."""

TRAINING_ARGS = [
    arg("--transcripts", nargs="+", required=True, help="transcripts chunk*.jsonl files"),
    arg("--questions", required=True, help="the questions JSONL the tournament debated"),
    arg("--prompts", required=True, help="prompts file (debate.prompts)"),
    arg("--prompt", required=True, help="the prompt set the trained debater speaks with"),
    arg("--simultaneous", choices=("true", "false"), required=True,
        help="whether the tournament's debates were simultaneous (what each speaker saw)"),
]
"""The tournament whose speeches debate-sft and debate-pairs train on."""


@stage("Write the debate questions {train,val,test}.jsonl (synthetic or QuALITY).", config=DebateDatasetConfig,
       args=[arg("--out-dir", required=True, help="directory for the split files")])
def cmd_debate_data(args, cfg: DebateDatasetConfig) -> Record:
    from .data import prepare_debate_data

    counts = prepare_debate_data(cfg, args.out_dir)
    return Record(seed=cfg.seed, extra={"rows": counts})


@stage("Convert the published human debates (Michael et al. 2023) into the questions and transcripts of tournament "
       "human.", config=HumanDebatesConfig, args=[
           arg("--quote-fuzzy-threshold", type=float, required=True, help="quotes are verified as in tournaments "
               "(debate.quote_fuzzy_threshold)"),
           arg("--questions", required=True, help="questions JSONL to write (one per kept debate)"),
           arg("--out", required=True, help="transcripts JSONL to write (one round per kept debate)"),
       ])
def cmd_debate_human(args, cfg: HumanDebatesConfig) -> Record:
    from .human import convert_human_debates

    counts = convert_human_debates(cfg, args.questions, args.out, args.quote_fuzzy_threshold)
    return Record(seed=cfg.seed, extra=counts)


@stage("Play one chunk of a tournament's rounds; resumes a stopped chunk without replaying finished rounds.",
       config=TournamentRun, args=[
           arg("--chunk", type=int, required=True, help="which chunk (0-based, < the tournament's n_chunks)"),
           arg("--questions", required=True, help="debate questions JSONL (debate-data output)"),
           arg("--out", required=True, help="transcripts JSONL to write (one round per line)"),
           arg("--state-dir", required=True, help="where finished rounds are appended while the chunk runs "
               "(outside declared outputs); a rerun resumes from it"),
       ])
def cmd_debate_chunk(args, run: TournamentRun) -> Record:
    from .data import load_questions
    from .prompts import load_prompts
    from .tournament import run_chunk

    if not 0 <= args.chunk < run.tournament.n_chunks:
        raise PipelineError(f"--chunk {args.chunk}: expected 0..{run.tournament.n_chunks - 1} "
                            f"(tournament {run.name} has n_chunks={run.tournament.n_chunks})")
    prompts = load_prompts(run.prompts)
    questions = load_questions(args.questions)
    counts = run_chunk(run.name, run.section_view(), questions, args.chunk, args.out, args.state_dir, prompts)
    return Record(seed=run.tournament.seed, extra={"chunk": args.chunk, **counts})


def _records(transcripts: list[str]) -> list:
    from .backends.simple import load_records

    return [r for path in transcripts for r in load_records(path)]


@stage("Merge a tournament's chunks into rounds.csv, ratings.csv (Bradley-Terry), judge.csv and plots.",
       inputs=["transcripts"], args=SUMMARY_ARGS)
def cmd_debate_summary(args) -> None:
    from .ratings import summarize

    summarize(_records(args.transcripts), args.out_dir, args.bootstrap, args.seed)


@stage("Re-judge saved transcripts with another judge (no speech is generated) and write the same tables.",
       config=ModelConfig, where=lambda args: f"debate.judges.{args.judge}", inputs=["transcripts"], args=[
           *SUMMARY_ARGS,
           arg("--judge", required=True, help="the new judge's name (debate.judges key)"),
           arg("--prompts", required=True, help="prompts file (LM judges; debate.prompts)"),
           arg("--max-failed-share", type=float, default=default_of(TournamentConfig, "max_failed_share"),
               help="fail (writing nothing) when more than this share of the rounds are failed after re-judging "
               "(the tournament's max_failed_share)"),
       ])
def cmd_debate_rejudge(args, cfg: ModelConfig) -> Record:
    from .prompts import load_prompts
    from .rejudge import rejudge

    rejudge(_records(args.transcripts), args.judge, cfg, load_prompts(args.prompts), args.out_dir, args.bootstrap,
            args.seed, args.max_failed_share)
    return Record(cfg.to_dict(), seed=args.seed, extra={"judge": args.judge, "transcripts": args.transcripts})


def _training_inputs(args) -> tuple[list, list, dict]:
    from .data import load_questions
    from .prompts import load_prompts

    return _records(args.transcripts), load_questions(args.questions), load_prompts(args.prompts)


@stage("Train an LM debater (TRL SFTTrainer) on a tournament's speeches.", config=SFTConfig,
       where="debate.training.sft", inputs=["transcripts"], args=[
           *TRAINING_ARGS,
           arg("--tokenizer", required=True, help="tokenizer of a from-scratch model (world, minilm, hub id or "
               "path; debate.training.tokenizer)"),
           arg("--debaters", nargs="*", default=[], help="whose speeches (default: every debater's)"),
           arg("--max-speeches", type=int, help="train on a seeded sample of at most this many speeches"),
           arg("--out", required=True, help="output model directory"),
           arg("--ckpt-dir", help=CKPT_HELP),
       ])
def cmd_debate_sft(args, cfg: SFTConfig) -> Record:
    from ..models import load_tokenizer
    from ..models.vocab import WORLD, train_world_tokenizer
    from .training import sft_rows, train_debater_sft

    records, questions, prompts = _training_inputs(args)
    # A world tokenizer is made from these rows; any world tokenizer (no chat template) renders them alike.
    tok = train_world_tokenizer(()) if (cfg.model or args.tokenizer) == WORLD else load_tokenizer(
        cfg.model or args.tokenizer)
    rows = sft_rows(records, questions, tok, prompts, args.prompt, args.simultaneous == "true", args.debaters,
                    args.max_speeches, seed=cfg.seed)
    metrics = train_debater_sft(cfg, args.tokenizer, rows, args.out, ckpt_dir=args.ckpt_dir)
    return Record({**cfg.to_dict(), "tokenizer": args.tokenizer, "prompt": args.prompt, "debaters": args.debaters,
                   "max_speeches": args.max_speeches}, seed=cfg.seed,
                  extra={"metrics": metrics, "transcripts": args.transcripts, "speeches": len(rows)})


@stage("DPO preference pairs from best-of-N alternatives in transcripts.", config=PairSettings,
       inputs=["transcripts"], args=[
           *TRAINING_ARGS,
           arg("--tokenizer", required=True, help="the debater's model directory (its tokenizer renders prompts)"),
           arg("--out", required=True, help="pairs JSONL to write"),
           arg("--summary", required=True, help="counts JSON to write"),
       ])
def cmd_debate_pairs(args, cfg: PairSettings) -> None:
    from ..io import write_json, write_jsonl
    from ..models import load_tokenizer
    from .training import preference_pairs

    records, questions, prompts = _training_inputs(args)
    pairs, counts = preference_pairs(records, questions, load_tokenizer(args.tokenizer), prompts, args.prompt,
                                     args.simultaneous == "true", cfg, where=" ".join(args.transcripts))
    write_jsonl(args.out, pairs)
    write_json(args.summary, {**counts, "config": cfg.to_dict(), "transcripts": args.transcripts})


@stage("One DPO iteration of a debater (TRL DPOTrainer).", config=DPOSettings, inputs=["init", "pairs"], args=[
    arg("--init", required=True, help="the start (and reference) model directory"),
    arg("--pairs", required=True, help="pairs JSONL (debate-pairs output)"),
    arg("--out", required=True, help="output model directory"),
    arg("--ckpt-dir", help=CKPT_HELP),
])
def cmd_debate_dpo(args, cfg: DPOSettings) -> Record:
    from .training import read_pairs, train_debater_dpo

    metrics = train_debater_dpo(cfg, args.init, read_pairs(args.pairs), args.out, ckpt_dir=args.ckpt_dir)
    return Record({**cfg.to_dict(), "init": args.init}, seed=cfg.seed, extra={"metrics": metrics, "pairs": args.pairs})


@stage("Train a debater with the project's PPO, the judge's probability for its side as the reward (single "
       "speeches, best-of-N off).", config=DebatePPORun, inputs=["policy", "train", "eval"], args=[
           arg("--policy", required=True, help="the checkpoint PPO starts from (and its KL reference): a model "
               "directory"),
           arg("--train", required=True, help="the dataset's train split (questions JSONL): the training prompts"),
           arg("--eval", required=True, help="the dataset's val split (questions JSONL): the eval prompts"),
           arg("--out-dir", required=True, help="writes model/, train_log.csv, eval/, trajectories/"),
           arg("--ckpt-dir", required=True, help=CKPT_HELP),
       ])
def cmd_debate_ppo(args, run: DebatePPORun) -> Record:
    from .data import load_questions
    from .ppo import train_debater_ppo

    summary = train_debater_ppo(run, args.policy, load_questions(args.train, run.settings.questions),
                                load_questions(args.eval, run.settings.eval_questions), args.out_dir, args.ckpt_dir)
    return Record(seed=run.settings.hparams.seed,
                  extra={"policy": args.policy, "last": summary.get("last"), "prompts": summary["prompts"],
                         "eval_judge_p": summary["eval_judge_p"]})


@stage("Judge accuracy against debater strength from the strength tournament's rounds.csv and ratings.csv.",
       config=DebateTrainingConfig, inputs=["rounds", "ratings"], args=[
           arg("--rounds", required=True, help="the strength tournament's rounds.csv"),
           arg("--ratings", required=True, help="the strength tournament's ratings.csv"),
           arg("--out-csv", required=True, help="judge_accuracy.csv to write"),
           arg("--out-png", required=True, help="judge_accuracy.png to write"),
       ])
def cmd_debate_strength(args, cfg: DebateTrainingConfig) -> None:
    import pandas as pd

    from ..io import write_csv
    from .training import plot_strength, strength_table

    names = [n for n, _ in cfg.checkpoints()]
    n = cfg.strength.best_of_n.n
    bon = {cfg.bon_name(c): (c, n) for c in names} if n > 1 else {}
    table = strength_table(pd.read_csv(args.rounds), pd.read_csv(args.ratings), names, bon, cfg.strength.anchors)
    write_csv(table, args.out_csv)
    plot_strength(table, args.out_png)
