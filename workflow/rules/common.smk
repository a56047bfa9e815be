# Helpers shared by the rule files (typed config, config sections as params, per-stage code hashes,
# resources, the paths rules hand to each other, the container image). No training logic here.

import hashlib
import json
import re
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake_interface_executor_plugins.settings import DeploymentMethod

from rlhf_pipeline.codegraph import stage_hashes
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import model_ref
from rlhf_pipeline.workflow_config import (
    apply_hub_mode,
    interpreter_first_on_path,
    resolve_config,
)

# The config is built here, in explicit layers (workflow_config.config_layers): with no --configfile, the
# embedded demo (config/config.yaml); else the given files, each after the bases it names (`base:`), then
# --config. An experiment never stands on the demo unless it names it. What no layer sets takes its
# dataclass default (the one definition of every setting). Every key of every section, the cross-field
# rules and every configured model path are checked here, before any job is planned: one line naming the
# key and what is allowed. `python -m rlhf_pipeline config` prints the same resolution, value by value.
try:
    CFG, _, _ = resolve_config(workflow.config_settings.configfiles, workflow.config_settings.config, workflow.basedir)
except PipelineError as e:
    raise WorkflowError(str(e)) from None
config.clear()
config.update(CFG.to_dict())  # every value resolved, defaults filled in from the dataclasses
apply_hub_mode(CFG)  # hub_offline: HF_HUB_OFFLINE=1 here and in every job started from here

SRC = Path(workflow.basedir) / "src" / "rlhf_pipeline"


def deploys_with(*methods):
    """True when this run deploys software with any of ``methods`` (``--sdm``)."""
    return bool(set(methods) & set(workflow.deployment_settings.deployment_method))


# Rules run `python -m rlhf_pipeline <stage>`: outside a container, the interpreter running Snakemake
# (the project's venv, activated or not); inside one (--sdm apptainer/conda), the image's / env's own.
if not deploys_with(DeploymentMethod.APPTAINER, DeploymentMethod.CONDA):
    interpreter_first_on_path()

# Each stage's package source, from the import graph of its CLI handler cmd_<stage>
# (rlhf_pipeline/codegraph.py): every module it imports, transitively, plus the handler's own text.
# Its hash is a rule param, so editing code a stage runs marks that stage (and what depends on it)
# stale; Snakemake alone only tracks params, inputs and shell. A new module is covered by importing it.
try:
    STAGE_HASHES = stage_hashes(SRC)
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


def dataset_section(wildcards):
    """The dataset section for the dataset named by the output path."""
    return as_json({**config["dataset"], "name": wildcards.dataset})


def _per_attempt(base):
    """base on the 1st attempt, 2*base on the 2nd, ... (the SLURM profile retries failed jobs)."""
    return lambda wildcards, attempt: base * attempt


def _configured_resources(rule_name):
    """config.resources.default updated by config.resources.<rule> (unset values inherit)."""
    res = {}
    for entry in ("default", rule_name):
        res.update({k: v for k, v in config["resources"].get(entry, {}).items() if v not in (None, 0, "")})
    return res


def resources(rule_name):
    """Cluster resources for a rule; memory and time grow with the retry attempt."""
    res = _configured_resources(rule_name)
    return {k: _per_attempt(v) if k in ("mem_mb", "runtime") else v for k, v in res.items()}


def threads(rule_name):
    return _configured_resources(rule_name).get("cpus_per_task", 1)


# --- paths rules hand to each other -------------------------------------------------------------

DATASET = config["dataset"]["name"]


def data_file(split):
    return f"results/data/{DATASET}/{split}.jsonl"


TRAINED_GOLD_RM = "results/gold_rm/model"


def gold_rm_input():
    """The gold RM as an input: the trained one, or a configured local directory; [] for a hub id."""
    path = config["gold_rm"]["path"]
    if path is None:
        return [TRAINED_GOLD_RM]
    ref = model_ref(path)
    return [ref.path] if ref.local else []


def gold_rm_arg(wildcards, input):
    """What the gold-RM CLI argument gets: the input directory, else the configured hub id."""
    gold = [input.gold] if isinstance(input.gold, str) else list(input.gold)
    return gold[0] if gold else config["gold_rm"]["path"]


def alpacafarm_flag():
    return "--is-alpacafarm-rm" if config["gold_rm"]["is_alpacafarm_rm"] else ""


def labels_from_policy():
    """True when preference pairs are SFT samples labelled by the gold RM (not the dataset's own)."""
    return CFG.preferences.source == "policy_samples"


def preference_labellers():
    """What labelling reads besides the data: the SFT policy and the gold RM, or nothing."""
    return ["results/sft/model", *gold_rm_input()] if labels_from_policy() else []


def labeller_args(wildcards, input):
    """--policy / --gold-rm of label-preferences (empty for preferences.source: dataset)."""
    if not labels_from_policy():
        return ""
    policy, *gold = input.labellers
    gold = gold[0] if gold else config["gold_rm"]["path"]  # a hub id is no input
    return f"--policy {policy} --gold-rm {gold} {alpacafarm_flag()}".strip()


def rm_member(wildcards):
    """The RMConfig member ``seed`` trains with (rm, updated by rm.members.<seed>)."""
    return CFG.rm.member(int(wildcards.seed))


def rm_member_config(wildcards):
    """The rm-train stage's --config for one member (a tracked param)."""
    cfg = rm_member(wildcards).to_dict()
    drop = ("members",) if cfg["data"] == "disjoint" else ("seeds", "members")  # disjoint: its partition
    return as_json({k: v for k, v in cfg.items() if k not in drop})


def rm_sft_input(wildcards):
    """The SFT policy, when the member starts from its backbone (init: sft)."""
    return ["results/sft/model"] if rm_member(wildcards).init == "sft" else []


def sft_model_arg(wildcards, input):
    return f"--sft-model {input.sft}" if input.sft else ""


def rm_dirs(seeds):
    """Model directories of the proxy RM members with these seeds."""
    return [f"results/rm/seed{s}/model" for s in seeds]


# --- PPO runs ------------------------------------------------------------------------------------

PPO_RUNS = CFG.ppo.run_names()  # every job: each run's replicates ({run}, {run}_r2, ...)
PPO_BASE_RUNS = list(CFG.ppo.runs)  # the configured runs (best-of-n, aggregates, fits, the figure)


def replicate_gold_evals(run):
    """gold_eval.csv of every replicate of a configured run."""
    return [f"results/ppo/{r}/gold_eval.csv" for r in CFG.ppo.replicate_names(run)]


def replicate_gold_evals_of(wildcards):
    return replicate_gold_evals(wildcards.base)


def ensemble_runs():
    """The configured runs with two or more members (their PPO samples feed the diversity diagnostics)."""
    return [r for r in PPO_BASE_RUNS if len(CFG.ppo.runs[r].rm_seeds) > 1]


def diversity_runs():
    """RUN=EVAL_DIR,... of every ensemble run's replicates (rm-diversity --runs)."""
    return [
        f"{run}={','.join(f'results/ppo/{r}/eval' for r in CFG.ppo.replicate_names(run))}" for run in ensemble_runs()
    ]


def diversity_gold_flag(wildcards, input):
    """rm-diversity's --gold-rm: only when ensemble runs' PPO samples are scored (no gold RM is needed, or
    trained, for the members' error correlations alone)."""
    if not ensemble_runs():
        return ""
    return f"--gold-rm {shlex.quote(gold_rm_arg(wildcards, input))}"


def diversity_groups():
    """Member groups rm-diversity averages over: each ensemble run's members (named by their seeds,
    e.g. 4-5-6), and the members no ensemble run uses when there are two or more (e.g. 1-2-3)."""
    sets = list(dict.fromkeys(tuple(CFG.ppo.runs[r].rm_seeds) for r in ensemble_runs()))
    used = {s for seeds in sets for s in seeds}
    rest = tuple(s for s in config["rm"]["seeds"] if s not in used)
    if len(rest) >= 2:
        sets.append(rest)
    return [f"{'-'.join(map(str, seeds))}={','.join(map(str, seeds))}" for seeds in sets]


def run_config(run):
    """The run's resolved PPORunConfig (src/rlhf_pipeline/runs.py) as a dict."""
    return CFG.ppo.run_config(run).to_dict()


def ppo_rm_dirs(wildcards):
    return rm_dirs(CFG.ppo.run_config(wildcards.run).rm_seeds)


def ppo_run_config(wildcards):
    """The ppo stage's one --config (a tracked param: changing it reruns only this run)."""
    return as_json(run_config(wildcards.run))


def run_ensemble(wildcards):
    """The run's members and objective (the bon stage's --ensemble): rm_seeds, objective, uwo_weight."""
    run = run_config(wildcards.run)
    return as_json({k: run[k] for k in ("rm_seeds", "objective", "uwo_weight")})


def ppo_checkpoint_dir(wildcards):
    """The PPO run's resumable checkpoints (see checkpoint_dir)."""
    return checkpoint_dir("ppo", wildcards.run, run_config(wildcards.run))


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
    "redteam": ["prepare_data", "sft"],
    "rm_train": ["prepare_data", "sft", "gold_rm_train", "label_preferences"],
    "ppo": ["prepare_data", "sft", "gold_rm_train", "label_preferences", "rm_train"],
    "ad_lm": ["prepare_data", "sft", "gold_rm_train", "label_preferences", "rm_train"],
    "ad_rl": ["prepare_data", "sft", "gold_rm_train", "label_preferences", "rm_train"],
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
    return checkpoint_dir("rm_train", f"seed{wildcards.seed}", [rm_member_config(wildcards), int(wildcards.seed)])


# --- the Apptainer image ------------------------------------------------------------------------
# The Apptainer image the stages run in on a cluster (container.smk builds it).
# Only `--sdm apptainer` runs (the SLURM profile sets it) use the image; elsewhere the `container:`
# directives are ignored, image_input() is empty, and nothing is built. Settings: config `container:`.

IMAGE_DEF = "singularity/rlhf-pipeline.def"
# What goes into the image's environment; editing any of them names a new image. src/ is copied into the
# image too but left out on purpose: runs take the code from the checkout (see the .def's header).
IMAGE_SOURCES = [IMAGE_DEF, "requirements.lock", "pyproject.toml"]
# A CUDA torch install needs far more than a training stage's default; config resources.build_image wins.
IMAGE_BUILD_RESOURCES = {"mem_mb": 16000, "runtime": 120, "cpus_per_task": 4, "disk_mb": 30000}


def container_config():
    return config["container"]


def image_hash():
    """sha256 over the image's sources (path + content), short; it names the image file."""
    h = hashlib.sha256()
    for rel in IMAGE_SOURCES:
        h.update(rel.encode())
        h.update((Path(workflow.basedir) / rel).read_bytes())
    return h.hexdigest()[:12]


BUILT_IMAGE = f"singularity/rlhf-pipeline-{image_hash()}.sif"


def container_image():
    """The image for `container:` directives: config container.image, else the one build_image makes."""
    return container_config()["image"] or BUILT_IMAGE


def uses_apptainer():
    """True when this run deploys software with Apptainer (`--sdm apptainer`, set by the SLURM profile)."""
    return deploys_with(DeploymentMethod.APPTAINER)


def image_input():
    """`[image]` for the input of every containerised rule under --sdm apptainer, else `[]`.

    A rule-built image is no dependency of the rules that name it in `container:` (Snakemake issue 848),
    so each of them lists it as an input too. ancient(): the file name carries the content hash, so its
    modification time says nothing about staleness. Remote URIs are pulled by Snakemake itself.
    """
    image = container_image()
    if not uses_apptainer() or "://" in image:
        return []
    return [ancient(image)]


def image_build_resources():
    """IMAGE_BUILD_RESOURCES updated by config resources.build_image (unset values inherit)."""
    own = config["resources"].get("build_image", {})
    return {**IMAGE_BUILD_RESOURCES, **{k: v for k, v in own.items() if v not in (None, 0, "")}}


# --- debate tournaments --------------------------------------------------------------------------

DEBATE = CFG.debate.with_training()  # plus the tournaments and checkpoint debaters debate.training adds
TRAINING = CFG.debate.training
DEBATE_TOURNAMENTS = list(DEBATE.tournaments)
DEBATE_JUDGES = list(DEBATE.judges)
DEBATE_DATASET = DEBATE.dataset.name


def debate_questions():
    """The dataset split every tournament debates."""
    return f"results/data/debate/{DEBATE_DATASET}/{DEBATE.dataset.split}.jsonl"


def tournament_run(wildcards):
    """The debate-chunk stage's --config: the tournament and only the models it uses (a tracked param)."""
    return as_json(DEBATE.tournament_run(wildcards.tournament).to_dict())


def debate_chunks(wildcards):
    """Every transcript chunk of the tournament."""
    n = DEBATE.tournaments[wildcards.tournament].n_chunks
    return [f"results/debate/{wildcards.tournament}/transcripts/chunk{k}.jsonl" for k in range(n)]


def debate_state_dir(wildcards):
    """Where a chunk appends its finished rounds while it runs (outside declared outputs), keyed by
    everything that shapes the rounds, so a changed setting never resumes stale rounds."""
    settings = [DEBATE.tournament_run(wildcards.tournament).to_dict(), DEBATE.dataset.to_dict()]
    key = json.dumps([settings, code_hash("debate_chunk")], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{config['checkpoint_dir']}/debate/{wildcards.tournament}/{digest}"


def tournament_bootstrap(wildcards):
    return DEBATE.tournaments[wildcards.tournament].bootstrap


def tournament_seed(wildcards):
    return DEBATE.tournaments[wildcards.tournament].seed


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
    if TRAINING.source is None:
        return []
    n = DEBATE.tournaments[TRAINING.source].n_chunks
    return [f"results/debate/{TRAINING.source}/transcripts/chunk{k}.jsonl" for k in range(n)]


def training_simultaneous(tournament):
    return "true" if DEBATE.tournaments[tournament].simultaneous else "false"


def selfplay_chunks(wildcards):
    """Iteration i's self-play transcripts (results/debate/dpo/iter{i}/transcripts/)."""
    name = f"dpo/iter{wildcards.iteration}"
    return [f"results/debate/{name}/transcripts/chunk{k}.jsonl" for k in range(DEBATE.tournaments[name].n_chunks)]


def selfplay_simultaneous(wildcards):
    return training_simultaneous(f"dpo/iter{wildcards.iteration}")


def dpo_start_model(wildcards):
    """Iteration i starts from checkpoint i - 1 (0 = the SFT debater)."""
    return TRAINING.checkpoints()[int(wildcards.iteration) - 1][1]


def dpo_config(wildcards):
    """Iteration i's DPO settings (debate.training.dpo updated by dpo_per_iteration[i]; a tracked param)."""
    return as_json(TRAINING.dpo_for(int(wildcards.iteration)).to_dict())


def _debate_training_ckpt(stage, name, settings):
    key = json.dumps([settings, code_hash(stage)], sort_keys=True, default=str)
    return f"{config['checkpoint_dir']}/{stage}/{name}/{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def _sft_debater_settings():
    source = DEBATE.tournament_run(TRAINING.source).to_dict() if TRAINING.source else None
    return [
        TRAINING.sft.to_dict(),
        TRAINING.tokenizer,
        TRAINING.debater.prompt,
        TRAINING.source_debaters,
        source,
        DEBATE.dataset.to_dict(),
        code_hash("debate_chunk"),
    ]


def debate_sft_checkpoint_dir(wildcards):
    return _debate_training_ckpt("debate_sft", "sft", _sft_debater_settings())


def debate_dpo_checkpoint_dir(wildcards):
    """Keyed by everything that shapes iteration i: the SFT debater and iterations 1..i."""
    i = int(wildcards.iteration)
    upstream = [
        TRAINING.debater.to_dict(),
        TRAINING.pairs.to_dict(),
        TRAINING.selfplay.to_dict(),
        TRAINING.judge,
        DEBATE.judges[TRAINING.judge].to_dict(),
        code_hash("debate_pairs"),
        code_hash("debate_sft"),
    ]
    dpo = [TRAINING.dpo_for(j).to_dict() for j in range(1, i + 1)]
    return _debate_training_ckpt("debate_dpo", f"iter{i}", [_sft_debater_settings(), upstream, dpo])


# --- red-teaming ----------------------------------------------------------------------------------

REDTEAM = CFG.redteam
REDTEAM_RUNS = list(REDTEAM.runs)
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


def redteam_checkpoint_dir(wildcards):
    return checkpoint_dir("redteam", wildcards.redteam_run, REDTEAM.run_config(wildcards.redteam_run).to_dict())


def redteam_summary_args():
    """NAME=GROUP=metrics.csv of every run."""
    return [f"{name}={REDTEAM.runs[name].group or name}=results/redteam/{name}/metrics.csv" for name in REDTEAM_RUNS]


def redteam_target_sft_checkpoint_dir(wildcards):
    """The default target's fine-tuning (the sft stage) keeps its checkpoints apart from the policy's."""
    return checkpoint_dir("sft", "redteam_target", [REDTEAM.target_sft.to_dict(), REDTEAM.world.to_dict()])


# --- algorithm distillation ----------------------------------------------------------------------

AD_HISTORIES = CFG.ad.history_names(PPO_RUNS)  # the named PPO runs, then the sweep's h0 .. h{n-1}
AD_HELDOUT = CFG.ad.heldout_names(PPO_RUNS)
AD_SWEEP = [str(i) for i in range(CFG.ad.histories.n)]


def ad_history_dir(name):
    """A history's run directory: a PPO run's, or results/ad/histories/{i}/ for sweep history h{i}."""
    return f"results/ad/histories/{name[1:]}" if name in [f"h{i}" for i in AD_SWEEP] else f"results/ppo/{name}"


def ad_trajectories(names):
    return [f"{ad_history_dir(name)}/trajectories" for name in names]


def ad_named_trajectories(names):
    """NAME=DIR arguments of the ad stages."""
    return [f"{name}={ad_history_dir(name)}/trajectories" for name in names]


def ad_history_run(wildcards):
    """Sweep history i's resolved PPORunConfig (sampled hyperparameters) as a dict."""
    return CFG.ad.histories.run_config(int(wildcards.i), CFG.ppo).to_dict()


def ad_history_config(wildcards):
    return as_json(ad_history_run(wildcards))


def ad_history_rm_dirs(wildcards):
    return rm_dirs(ad_history_run(wildcards)["rm_seeds"])


def ad_history_checkpoint_dir(wildcards):
    return checkpoint_dir("ppo", f"ad_history{wildcards.i}", ad_history_run(wildcards))


def ad_contexts(wildcards):
    """The contexts an AD language model trains on: lm (the histories), ed (expert distillation)."""
    return {"lm": "results/ad/data/train.jsonl", "ed": "results/ad/data/expert.jsonl"}[wildcards.admodel]


def ad_lm_checkpoint_dir(wildcards):
    """The contexts come from every PPO run and the sweep: the ppo section shapes them too."""
    return checkpoint_dir("ad_lm", wildcards.admodel, [config["ad"], config["ppo"], wildcards.admodel])


def ad_rm_args():
    return [f"{s}=results/rm/seed{s}/model" for s in CFG.rm.seeds]


def ad_config(wildcards):
    """The ad section as JSON (a function: its template's {placeholders} are not Snakemake wildcards)."""
    return section("ad")


AD_TRAIN = [h for h in AD_HISTORIES if h not in AD_HELDOUT]


def ad_rl_config(wildcards):
    """The ad section the ad-rl stage reads (its format, rl and eval settings; a function for the template's
    {placeholders})."""
    return section("ad", exclude=("histories", "runs", "heldout"))


def ad_rl_checkpoint_dir(wildcards):
    return checkpoint_dir("ad_rl", "rl", [config["ad"], config["ppo"], AD_HISTORIES, AD_HELDOUT])
