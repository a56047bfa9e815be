# Helpers shared by the rule files: config validation, config sections as rule params, per-stage
# code hashes, resources and the paths rules hand to each other. No training logic here.

import hashlib
import json
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from rlhf_pipeline.config import validate_config
from rlhf_pipeline.errors import PipelineError

# Snakemake merges --configfile/--config into config/config.yaml key by key. For the named PPO runs
# that would mix the default's runs into an experiment's own set, so a command-line config that
# defines `ppo.runs` replaces the default's runs instead (every other key merges as usual).
_cli_runs = (workflow.config_settings.overwrite_config or {}).get("ppo", {}).get("runs")
if _cli_runs is not None:
    config["ppo"]["runs"] = _cli_runs

try:  # one line naming the key and the allowed values, before any job is planned
    validate_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
except PipelineError as e:
    raise WorkflowError(str(e)) from None
validate(config, schema="../schemas/config.schema.yaml")  # fills in schema defaults

SRC = Path(workflow.basedir) / "src" / "rlhf_pipeline"

from snakemake_interface_executor_plugins.settings import DeploymentMethod


def deploys_with(*methods):
    """True when this run deploys software with any of ``methods`` (``--sdm``)."""
    return bool(set(methods) & set(workflow.deployment_settings.deployment_method))


# Jobs run the CLI with the interpreter that runs Snakemake (the project's venv), so no PATH or
# PYTHONPATH set-up is needed; inside a container (--sdm apptainer/conda) the image's `python`.
CLI = ("python -m rlhf_pipeline" if deploys_with(DeploymentMethod.APPTAINER, DeploymentMethod.CONDA)
       else f"{sys.executable} -m rlhf_pipeline")

# The package source each stage runs. Its hash is a rule param, so editing a stage's own code marks
# that stage (and what depends on it) stale; Snakemake alone only tracks params, inputs and shell.
# Shared plumbing (cli.py, io.py, config.py, errors.py, provenance.py) is deliberately left out, so
# touching it does not invalidate every result.
STAGE_CODE = {
    "prepare_data": ["data"],
    "sft": ["sft.py", "models"],
    "gold_rm_train": ["reward/gold.py", "reward/config.py", "reward/heads.py", "data/synthetic.py", "models"],
    "label_preferences": ["preferences.py", "models", "reward/gold.py", "reward/heads.py"],
    "rm_train": ["reward/train.py", "reward/config.py", "reward/heads.py", "models"],
    "rm_summary": ["reward/summary.py"],
    "ppo": ["ppo", "reward/ensemble.py", "reward/heads.py", "runs.py", "models"],
    "gold_eval": ["evaluation/gold_eval.py", "evaluation/plots.py", "reward/gold.py", "reward/heads.py"],
    "bon_sample": ["evaluation/bon.py", "reward/ensemble.py", "reward/gold.py", "reward/heads.py", "models"],
    "bon": ["evaluation/bon.py", "reward/ensemble.py", "runs.py"],
    "plots": ["evaluation/plots.py"],
}


def code_hash(stage):
    """sha256 over the stage's source files (path + content), short."""
    h = hashlib.sha256()
    for entry in STAGE_CODE[stage]:
        p = SRC / entry
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(SRC)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def section(name, exclude=()):
    """A config section as compact JSON: the stage's --config, and a tracked rule param."""
    value = {k: v for k, v in config[name].items() if k not in exclude}
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def dataset_section(wildcards):
    """The dataset section for the dataset named by the output path."""
    return json.dumps({**config["dataset"], "name": wildcards.dataset}, sort_keys=True)


def _per_attempt(base):
    """base on the 1st attempt, 2*base on the 2nd, ... (the SLURM profile retries failed jobs)."""
    return lambda wildcards, attempt: base * attempt


def _configured_resources(rule_name):
    res = dict(config["resources"].get("default", {}))
    res.update(config["resources"].get(rule_name, {}))
    return {k: v for k, v in res.items() if v not in (None, 0, "")}


def resources(rule_name):
    """Cluster resources for a rule: config.resources.default updated by config.resources.<rule>;
    memory and time grow with the retry attempt."""
    res = _configured_resources(rule_name)
    return {k: _per_attempt(v) if k in ("mem_mb", "runtime") else v for k, v in res.items()}


def threads(rule_name):
    return _configured_resources(rule_name).get("cpus_per_task", 1)


# --- paths rules hand to each other -------------------------------------------------------------

DATASET = config["dataset"]["name"]


def data_file(split):
    return f"results/data/{DATASET}/{split}.jsonl"


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def gold_rm_path():
    """The gold RM: trained here (embedded default) or an existing local dir / hub id."""
    path = config["gold_rm"]["path"]
    if path is None:
        return "results/gold_rm/model"
    if not Path(path).exists() and not _HUB_ID.match(path):
        raise WorkflowError(f"gold_rm.path: {path} does not exist (give an existing model directory or a hub id)")
    return path


def gold_rm_input():
    """Inputs that make the gold RM a dependency: only when it is a file the workflow can see."""
    path = gold_rm_path()
    return [path] if (config["gold_rm"]["path"] is None or Path(path).exists()) else []


def rm_dirs(seeds):
    """Model directories of the proxy RM members with these seeds."""
    return [f"results/rm/seed{s}/model" for s in seeds]


# --- PPO runs ------------------------------------------------------------------------------------

from rlhf_pipeline.runs import load_runs

try:
    PPO_RUNS = load_runs(config["ppo"], config["rm"]["seeds"], objective=False)
except PipelineError as e:
    raise WorkflowError(str(e)) from None

wildcard_constraints:
    run="|".join(map(re.escape, PPO_RUNS)) or "^$",


def ppo_rm_dirs(wildcards):
    return rm_dirs(PPO_RUNS[wildcards.run].rm_seeds)


def _ppo_settings(run):
    return PPO_RUNS[run].ppo_settings(config["ppo"]["hparams"])


def ppo_settings(wildcards):
    """The run's PPOConfig as JSON (a tracked param: changing it reruns only this run)."""
    return json.dumps(_ppo_settings(wildcards.run), sort_keys=True, separators=(",", ":"))


def ppo_checkpoint_dir(wildcards):
    """The PPO run's resumable checkpoints (see checkpoint_dir)."""
    run = PPO_RUNS[wildcards.run]
    settings = [_ppo_settings(wildcards.run), run.rm_seeds, run.objective.lower(), run.uwo_weight,
                config["ppo"]["standardize"]]
    return checkpoint_dir("ppo", wildcards.run, settings)


# --- resumable checkpoints -----------------------------------------------------------------------

def _training_settings(stage):
    """The config a stage's result depends on (rm.seeds only says which members exist)."""
    return {
        "prepare_data": [config["dataset"], config["seed"]],
        "sft": [config["sft"], config["tokenizer"]],
        "gold_rm_train": [config["gold_rm"]],
        "label_preferences": [config["preferences"], config["gold_rm"]],
        "rm_train": [{k: v for k, v in config["rm"].items() if k != "seeds"}],
    }[stage]


# The stages whose results a stage trains on.
UPSTREAM = {
    "sft": ["prepare_data"],
    "rm_train": ["prepare_data", "sft", "gold_rm_train", "label_preferences"],
    "ppo": ["prepare_data", "sft", "gold_rm_train", "label_preferences", "rm_train"],
}


def checkpoint_dir(stage, name, settings):
    """Where a training job (``stage``, e.g. ``rm_train``; ``name``, e.g. ``seed1``) keeps resumable
    checkpoints: under config ``checkpoint_dir``, outside the declared outputs (Snakemake deletes
    those before a job starts), in a directory named by a hash of everything that shapes training:
    the job's ``settings``, the stage's code, and the config and code of every stage upstream of it.
    A rerun after any such change starts afresh instead of resuming from a stale checkpoint."""
    upstream = [[_training_settings(u), code_hash(u)] for u in UPSTREAM[stage]]
    key = json.dumps([settings, code_hash(stage), upstream], sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{config['checkpoint_dir']}/{stage}/{name}/{digest}"


def sft_checkpoint_dir(wildcards):
    return checkpoint_dir("sft", "sft", _training_settings("sft"))


def rm_checkpoint_dir(wildcards):
    """One directory per RM member: members train in parallel jobs."""
    return checkpoint_dir("rm_train", f"seed{wildcards.seed}",
                          [_training_settings("rm_train"), int(wildcards.seed)])
