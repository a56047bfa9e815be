# Getters of debate.smk's rules (functions only, so `snakemake --lint` keeps rules and functions apart).

import re

from rlhf_pipeline.debate.config import HUMAN

DEBATE = CFG.debate.with_training()  # plus the tournaments and checkpoint debaters debate.training adds
TRAINING = CFG.debate.training
DEBATE_TOURNAMENTS = list(DEBATE.tournaments)  # played by debate_chunk
# Every tournament with transcripts: those debate_chunk plays and the published human debates (debate_human,
# debate.human.path set), which debate_summary, debate_rejudge and debate_sft read alike.
TRANSCRIBED = {**DEBATE.tournaments, **DEBATE.human_tournament()}
TRANSCRIBED_NAMES = "|".join(map(re.escape, TRANSCRIBED)) or "^$"
HUMAN_QUESTIONS = f"results/debate/{HUMAN}/questions.jsonl"
DEBATE_JUDGES = list(DEBATE.judges)
DEBATE_DATASET = DEBATE.dataset.name


def debate_questions():
    """The dataset split every tournament debates."""
    return f"results/data/debate/{DEBATE_DATASET}/{DEBATE.dataset.split}.jsonl"


def tournament_run(wildcards):
    """The debate-chunk stage's --config: the tournament and only the models it uses (a tracked param)."""
    return as_json(DEBATE.tournament_run(wildcards.tournament).to_dict())


def tournament_chunks(tournament):
    """Every transcript chunk of the tournament."""
    n = TRANSCRIBED[tournament].n_chunks
    return [f"results/debate/{tournament}/transcripts/chunk{k}.jsonl" for k in range(n)]


def debate_chunks(wildcards):
    return tournament_chunks(wildcards.tournament)


def tournament_bootstrap(wildcards):
    return TRANSCRIBED[wildcards.tournament].bootstrap


def tournament_seed(wildcards):
    return TRANSCRIBED[wildcards.tournament].seed


def tournament_max_failed_share(wildcards):
    return TRANSCRIBED[wildcards.tournament].max_failed_share


def rejudge_config(wildcards):
    """The new judge's ModelConfig (a tracked param)."""
    return as_json(DEBATE.judges[wildcards.judge].to_dict())


def debate_models(wildcards):
    """The model directories produced by rules (results/...) that the tournament's debaters load."""
    run = DEBATE.tournament_run(wildcards.tournament)
    models = [m.model for m in run.debaters.values() if m.type == "hf" and m.model]
    return sorted({m for m in models if m.startswith("results/")})


# --- training debaters (debate.training) ----------------------------------------------------------


def training_source_chunks():
    """The transcripts the SFT debater learns from ([] when debate.training.source is null)."""
    return tournament_chunks(TRAINING.source) if TRAINING.source is not None else []


def training_questions():
    """The questions tournament debate.training.source debated: the human debates' own, else the dataset split."""
    return HUMAN_QUESTIONS if TRAINING.source == HUMAN else debate_questions()


def human_source():
    """The published human debates file (debate.human.path; [] when null: the stage then says so)."""
    return [DEBATE.human.path] if DEBATE.human.path else []


def training_simultaneous(tournament):
    return "true" if TRANSCRIBED[tournament].simultaneous else "false"


def selfplay_chunks(wildcards):
    """Iteration i's self-play transcripts (results/debate/dpo/iter{i}/transcripts/)."""
    return tournament_chunks(f"dpo/iter{wildcards.iteration}")


def selfplay_simultaneous(wildcards):
    return training_simultaneous(f"dpo/iter{wildcards.iteration}")


def dpo_start_model(wildcards):
    """Iteration i starts from checkpoint i - 1 (0 = the SFT debater)."""
    return TRAINING.checkpoints()[int(wildcards.iteration) - 1][1]


def dpo_config(wildcards):
    """Iteration i's DPO settings (debate.training.dpo updated by dpo_per_iteration[i]; a tracked param)."""
    return as_json(TRAINING.dpo_for(int(wildcards.iteration)).to_dict())
