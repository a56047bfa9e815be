# Getters of redteam.smk's rules (functions only, so `snakemake --lint` keeps rules and functions apart).

import shlex

REDTEAM = CFG.redteam
REDTEAM_RUNS = REDTEAM.run_names()
DEFAULT_TARGET = "results/redteam/target/model"
DEFAULT_TOXICITY = "results/redteam/toxicity/model"


def redteam_uses_default_target():
    return REDTEAM.target.backend == "hf" and REDTEAM.target.model is None


def redteam_uses_default_toxicity():
    return REDTEAM.toxicity.backend == "hf" and REDTEAM.toxicity.model is None


def redteam_models():
    """The workflow-made target and classifier a red-team run reads (none when the config names its own)."""
    return {
        "target": [DEFAULT_TARGET] if redteam_uses_default_target() else [],
        "toxicity": [DEFAULT_TOXICITY] if redteam_uses_default_toxicity() else [],
    }


def redteam_model_args(wildcards, input):
    """--target / --toxicity of the redteam stage (the default models when they are inputs)."""
    args = [
        f"--target {input.target[0]}" if input.target else "",
        f"--toxicity {input.toxicity[0]}" if input.toxicity else "",
    ]
    return " ".join(a for a in args if a)


def redteam_run_config(wildcards):
    """The redteam stage's --config (a tracked param: changing it reruns only this run)."""
    return as_json(REDTEAM.run_config(wildcards.redteam_run).to_dict())


def redteam_summary_args():
    """NAME=GROUP=metrics.csv of every run."""
    return [f"{name}={REDTEAM.run_config(name).group}=results/redteam/{name}/metrics.csv" for name in REDTEAM_RUNS]


def redteam_baseline_group_arg():
    """--baseline-group of the summary when redteam.baseline_group is set."""
    group = REDTEAM.baseline_group
    return f"--baseline-group {shlex.quote(group)}" if group else ""
