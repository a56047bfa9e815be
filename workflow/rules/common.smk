# Shared by every family's rules and getters: the typed config, per-stage code hashes, config sections as params,
# cluster resources and the one function that keys checkpoint directories. No training logic; family getters: getters/.

import functools
import hashlib
import json
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.iocontainers import Wildcards
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from rlhf_pipeline.codegraph import stage_hashes
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.planning import parameters, presign, presign_rules, producing_rules
from rlhf_pipeline.workflow_config import apply_job_environment, interpreter_first_on_path, resolve_config

# The config, in explicit layers (workflow_config.config_layers): with no --configfile, the embedded demo
# (config/config.yaml); else the given files, each after the bases it names (`base:`), then --config. What no
# layer sets takes its dataclass default (the one definition of every setting). Every key, the cross-field
# rules and every configured model path are checked here, before any job is planned: one line naming the key
# and what is allowed. `python -m rlhf_pipeline config` prints the same resolution, value by value.
try:
    CFG, _, _ = resolve_config(workflow.config_settings.configfiles, workflow.config_settings.config, workflow.basedir)
    apply_job_environment(CFG)  # for jobs: HF_HUB_OFFLINE=1 (hub_offline); base_url credentials (clients.py)
except PipelineError as e:
    raise WorkflowError(str(e)) from None
config.clear()
config.update(CFG.to_dict())  # every value resolved, defaults filled in from the dataclasses


def deploys_with(*methods):
    """True when this run deploys software with any of ``methods`` (``--sdm``)."""
    return bool(set(methods) & set(workflow.deployment_settings.deployment_method))


# Rules run `python -m rlhf_pipeline <stage>`: outside a container, the interpreter running Snakemake
# (the project's venv, activated or not); inside one (--sdm apptainer/conda), the image's / env's own.
if not deploys_with(DeploymentMethod.APPTAINER, DeploymentMethod.CONDA):
    interpreter_first_on_path()

# Each stage's package source, from the import graph of its CLI handler (rlhf_pipeline/codegraph.py): every
# module it imports, transitively, plus the handler's own text. Its hash is a rule param, so editing code a
# stage runs marks that stage (and what depends on it) stale; Snakemake alone only tracks params, inputs
# and shell. A new module is covered by importing it. Kept in .snakemake/ under a key of every source file's text.
try:
    STAGE_HASHES = stage_hashes(Path(workflow.basedir, "src", "rlhf_pipeline"), cache_dir=".snakemake/rlhf_pipeline")
except ValueError as e:  # a broken intra-package import, or a renamed excluded file
    raise WorkflowError(f"stage code hashes: {e}") from None


def code_hash(stage):
    """Short hash of the package source the stage runs (see rlhf_pipeline.codegraph)."""
    return STAGE_HASHES[stage]


def as_json(value):
    """Compact, key-sorted JSON: a stage's --config, and a tracked rule param."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def section(name, exclude=()):
    """A config section as compact JSON (without the ``exclude`` keys)."""
    return as_json({k: v for k, v in config[name].items() if k not in exclude})


def _configured_resources(rule_name):
    """config.resources.default updated by config.resources.<rule> (unset values inherit)."""
    res = {}
    for entry in ("default", rule_name):
        res.update({k: v for k, v in config["resources"].get(entry, {}).items() if v not in (None, 0, "")})
    return res


def resources(rule_name):
    """Cluster resources for a rule; memory and time grow with the retry attempt (the SLURM profile retries
    failed jobs: base on the 1st attempt, 2*base on the 2nd, ...)."""
    res = _configured_resources(rule_name)
    grow = lambda base: presign(lambda wildcards, attempt: base * attempt)
    return {k: grow(v) if k in ("mem_mb", "runtime") else v for k, v in res.items()}


def threads(rule_name):
    return _configured_resources(rule_name).get("cpus_per_task", 1)


# --- resumable checkpoints: one key for every checkpoint directory --------------------------------
# A training job keeps resumable checkpoints under config `checkpoint_dir`, outside its declared outputs
# (Snakemake deletes those before a job starts), in a directory named by a hash of everything that shapes
# what it trains: its params (its settings and stage code hash) and the params of every job upstream of
# it. Those jobs come from the rules themselves, not from a copy of their graph: each input of a job is
# traced to the job that writes it, whose inputs are traced in turn. A rerun after any such change starts
# afresh instead of resuming from a stale checkpoint. The image a job runs in is software, not data: left out.


@functools.cache  # once per file and per job: every PPO run reads the same SFT policy, data, ...
def _producers(path):
    """(rule, wildcard items) of the job that writes ``path`` as Snakemake picks it (a rule whose output has
    no wildcards before rules with them); [] for a file no rule writes."""
    found = producing_rules(workflow.rules, path)
    return [(r, tuple(r.get_wildcards(path).items())) for r in [r for r in found if not r.has_wildcards()] or found]


_JOBS, _UP = {}, {}  # (rule, wildcard items) -> _job's result, upstream_jobs' {key: job}: once per job, not per ask


def _job(of, items, files=None):
    """The job of ``of`` (a rule) for wildcard ``items``: (its rule's name, wildcards, params but the checkpoint
    directory), and its inputs. ``files``: its input and output where Snakemake has expanded them already."""
    if (of, items) not in _JOBS:
        wildcards = dict(items)
        files = files or {"input": of.expand_input(wildcards)[0], "output": of.expand_output(wildcards)[0]}
        settings = {}  # what Snakemake passes: a literal (or a pattern the wildcards fill), a function's value
        for name, param in of.params.items():
            if callable(param) and param is not checkpoint_dir:
                wanted = parameters(param)
                param = param(Wildcards(fromdict=wildcards), **{k: v for k, v in files.items() if k in wanted})
            if param is not checkpoint_dir:
                settings[name] = param
        inputs = [f for f in files["input"] if f != of.container_img]  # the image: software, not data
        _JOBS[of, items] = [of.name, dict(sorted(wildcards.items())), settings], inputs
    return _JOBS[of, items]


def upstream_jobs(of, wildcards):
    """(rule name, wildcards, params) of every job whose results the job of rule ``of`` reads, transitively."""
    items = tuple(wildcards.items())
    if (of, items) not in _UP:  # a source file (a prompt file, a local model) has no producer: no job, no settings
        _UP[of, items] = up = {}
        for found in [found for path in _job(of, items)[1] for found in _producers(path)]:
            upstream_jobs(found[0], dict(found[1]))  # its own upstream, into _UP
            up.update(_UP[found])
            up[json.dumps(_job(*found)[0][:2], sort_keys=True)] = _job(*found)[0]
    return [_UP[of, items][k] for k in sorted(_UP[of, items])]


@functools.cache
def _checkpoint_dir(output):
    of, items = _producers(output)[0]
    key = json.dumps([_job(of, items)[0], upstream_jobs(of, dict(items))], sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return str(Path(config["checkpoint_dir"], of.name, *(str(v) for _, v in items), digest))


def checkpoint_dir(wildcards, input, output):
    """A training rule's param ``ckpt`` (``state`` of debate_chunk): where its job keeps what lets a stopped
    run resume, ``{checkpoint_dir}/{rule}/{wildcard values}/{hash}`` (see above for what the hash covers)."""
    _job(*_producers(output[0])[0], files={"input": input, "output": output})  # not expanded a second time
    return _checkpoint_dir(output[0])
