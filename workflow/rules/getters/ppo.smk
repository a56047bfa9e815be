# Getters of ppo.smk's rules (functions only, so `snakemake --lint` keeps rules and functions apart).

import functools
from pathlib import Path

PPO_RUNS = CFG.ppo.run_names()  # every job: each run's replicates ({run}, {run}_r2, ...)
PPO_BASE_RUNS = list(CFG.ppo.runs)  # the configured runs (best-of-n, aggregates, fits, the figure)


@functools.cache  # once per run: the config does not change during a plan, and each job asks several times
def run_config(run):
    """The run's resolved PPORunConfig (src/rlhf_pipeline/runs.py) as its job gets it (shared: read it, never change it)."""
    return CFG.ppo.run_config(run).job_config()


def ppo_rm_dirs(wildcards):
    return rm_dirs(run_config(wildcards.run)["rm_seeds"])


def ppo_run_config(wildcards):
    """The ppo stage's one --config (a tracked param: changing it reruns only this run)."""
    return as_json(run_config(wildcards.run))


def run_dir(wildcards, output):
    """The run's directory (--out-dir): the one its manifest is written to."""
    return str(Path(output.manifest).parent)
