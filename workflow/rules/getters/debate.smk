# Getters of debate.smk's rules (functions only, so `snakemake --lint` keeps rules and functions apart).

import re

from rlhf_pipeline.debate.config import HUMAN, PPO_DIR

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


# --- the PPO debater (debate.training.ppo) --------------------------------------------------------------------


def debate_split(split):
    """A split of the debate dataset (the PPO debater trains on train, is evaluated on val)."""
    return f"results/data/debate/{DEBATE_DATASET}/{split}.jsonl"


def debate_ppo_run():
    """The debate-ppo stage's config; WorkflowError when the PPO debater is not configured."""
    if TRAINING.source is None or not TRAINING.ppo.enabled:
        raise WorkflowError("results/debate/ppo/: set debate.training.source and debate.training.ppo.enabled")
    return CFG.debate.ppo_run()


def debate_ppo_config(wildcards):
    """The PPO debater's run: debate.training.ppo with its judge, opponent and prompts (a tracked param)."""
    return as_json(debate_ppo_run().to_dict())


def debate_ppo_init(wildcards):
    """The checkpoint the PPO debater starts from (debate.training.ppo.init)."""
    debate_ppo_run()
    return dict(TRAINING.checkpoints())[TRAINING.ppo.init]


def debate_ppo_opponent_models(wildcards):
    """The workflow-made model the PPO debater's opponent loads (a checkpoint), if any."""
    opponent = debate_ppo_run().opponent
    model = opponent.model if opponent is not None and opponent.type == "hf" else None
    return [model] if model and model.startswith("results/") else []
