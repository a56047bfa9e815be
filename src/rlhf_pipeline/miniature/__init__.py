"""Every real-scale experiment in miniature: tiny models of the same architecture families and shaped data
files, made here by the project's own code (nothing is downloaded), for the overlays in
``config/experiments/miniature/<experiment>.yaml``.

An overlay names its experiment as its ``base`` and changes sizes only (dotted keys, one leaf each:
model dimensions, rows, steps, lengths, counts, and local paths to the tiny models and data made here; besides
those it may only switch off what needs GPUs, :data:`GPU_ONLY_KEYS`); :func:`overlay_problems` enforces that.
``python -m rlhf_pipeline miniature-assets <experiment>`` writes an experiment's assets under
``results/miniature/<experiment>/`` (the paths its overlay names); experiments on the embedded world need none.
Each experiment with assets has a module here with ``make(out_dir)``.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from ..io import disk_full_as_error

ROOT = Path("results/miniature")
"""Where the assets go, relative to the workflow's working directory (the overlays name paths under it)."""


def has_assets(experiment: str) -> bool:
    """True when ``experiment`` needs tiny models or data files of its own (a module here makes them)."""
    return importlib.util.find_spec(f"{__name__}.{experiment}") is not None


def make_assets(experiment: str, root: str | Path = ROOT) -> Path | None:
    """Write ``experiment``'s tiny models and shaped data under ``root/<experiment>/``; None when it needs none.
    A full disk ends it with one line naming that directory (:func:`rlhf_pipeline.io.disk_full_as_error`); a rerun
    writes every asset again."""
    if not has_assets(experiment):
        return None
    out = Path(root) / experiment
    with disk_full_as_error(out):
        out.mkdir(parents=True, exist_ok=True)
        importlib.import_module(f"{__name__}.{experiment}").make(out)
    return out


OVERLAYS = Path("config/experiments/miniature")
"""The overlays, one per real-scale experiment file (``config/experiments/<name>.yaml``), relative to the root."""

SIZE_KEYS = frozenset({
    # data rows and counts
    "n_train", "n_val", "n_test", "max_rows", "n_samples", "n_prompts", "n_eval_prompts", "ns", "n_stories",
    "questions_per_story", "questions", "max_speeches", "n_target_train", "n_target_val", "n_classifier",
    "episodes", "trials", "n_episodes_heldout", "episodes_per_step", "replicates", "n", "opponent_n", "rounds",
    "n_chunks", "bootstrap", "eval_repeats", "diversity_sample",
    # steps, epochs, batches, intervals
    "epochs", "total_episodes", "ppo_epochs", "batch_size", "mini_batch_size", "eval_batch_size", "reward_batch_size",
    "grad_accum", "eval_interval", "checkpoint_interval",
    # lengths
    "max_length", "max_new_tokens", "max_prompt_length", "context_length",
    # model dimensions (from-scratch tiny models)
    "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "max_position_embeddings",
})
"""What a miniature overlay may change besides locations: sizes, never a method, a flag or a hyperparameter."""

GPU_ONLY_KEYS = {"vllm.enabled": False, "accelerate_config": None}
"""Launch and generation settings that need GPUs (vLLM generation; an accelerate config for DeepSpeed or FSDP):
an overlay may switch them off, to exactly these values, and nothing else. The optimiser, its objective and every
hyperparameter stay the real config's: on CPU the same trainer generates with transformers in one process, as the
real run does per process (keys match by their last dotted parts, e.g. ``ppo.hparams.vllm.enabled``)."""

LOCATION_KEYS = frozenset({"model", "path", "init", "tokenizer", "encoder", "base_url"})
"""Keys naming a model, a tokenizer, a data set or a server; in an overlay their values must be the miniature's
own (under :data:`ROOT`, or a server on this machine)."""

_LOCAL_URL = ("http://127.0.0.1", "http://localhost")


def overlay_problems(overlay: dict, experiment: str) -> list[str]:
    """Why ``overlay`` (a miniature overlay file's mapping) is not a sizes-only miniature of ``experiment``:
    one line per problem; empty when it is one."""
    problems = []
    real = f"config/experiments/{experiment}.yaml"
    bases = overlay.get("base")
    bases = [bases] if isinstance(bases, str) else list(bases or [])
    if real not in bases:
        problems.append(f"base: {bases!r} does not name {real}")
    for key, value in overlay.items():
        if key == "base":
            continue
        leaf = str(key).rsplit(".", 1)[-1]
        if isinstance(value, dict):
            problems.append(f"{key}: give one leaf per key, dotted (e.g. ppo.hparams.total_episodes), not a mapping")
        elif leaf in LOCATION_KEYS:
            ok = isinstance(value, str) and (value.startswith(f"{ROOT.as_posix()}/{experiment}/")
                                             or value.startswith(_LOCAL_URL))
            if not ok:
                problems.append(f"{key}: {value!r} is not a miniature location ({ROOT}/{experiment}/... or a "
                                "server on this machine)")
        elif (off := _gpu_only(str(key))) is not None:
            if value != GPU_ONLY_KEYS[off]:
                problems.append(f"{key}: {value!r}; a miniature may only switch this GPU-only setting off "
                                f"({GPU_ONLY_KEYS[off]!r})")
        elif leaf not in SIZE_KEYS:
            problems.append(f"{key}: not a size ({leaf!r} is not one of the size keys); a miniature changes sizes only")
    return problems


def _gpu_only(key: str) -> str | None:
    """The :data:`GPU_ONLY_KEYS` entry a dotted overlay key ends with, if any."""
    return next((k for k in GPU_ONLY_KEYS if key == k or key.endswith(f".{k}")), None)
