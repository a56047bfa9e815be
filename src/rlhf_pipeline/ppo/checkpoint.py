"""Resumable checkpoints: atomic step directories, the last ``keep`` kept, corrupt ones skipped.

Layout of ``ckpt_dir/step{N:06d}/``: one ``{name}.pt`` per saved object, copies of output files
(train log, eval samples) under ``files/``, and ``manifest.json`` (step and every file's size),
written last. A checkpoint is first written to a hidden temporary directory and renamed into place; the
temporary directories of a killed run are removed by the next save (:func:`rlhf_pipeline.io.remove_stale_staging`).
A full disk ends the run with one line naming the checkpoint (:class:`~rlhf_pipeline.errors.DiskFull`), leaving the
checkpoints before it, so the rerun resumes from the last complete one.

A PPO run's checkpoint (:func:`save_run`, :func:`resume_run`): the trainable weights of the policy and the
value model, the optimizer, the LR schedule, ``trainer_state`` (KL controller, train-log rows, config, the
reward's state) and every process's RNG state, with the eval files and the hooks' ``checkpoint_files``.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import PipelineError
from ..io import atomic_dir, disk_full_as_error, remove_stale_staging

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
# Keys that may change between a checkpoint and its resumption (they do not change training).
RESUMABLE_CHANGES = {"eval_interval", "eval_batch_size", "checkpoint_interval", "log_with", "trajectory_chunk_steps",
                     "logprobs_from_sampling", "vllm", "accelerate_config"}


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and, if present, CUDA) RNG states."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states captured by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def step_dir(ckpt_dir: str | os.PathLike, step: int) -> Path:
    return Path(ckpt_dir) / f"step{step:06d}"


def save_checkpoint(ckpt_dir: str | os.PathLike, step: int, objects: dict[str, Any],
                    files: dict[str, str | os.PathLike] | None = None, keep: int = 2,
                    links: dict[str, str | os.PathLike] | None = None) -> Path:
    """Save ``objects`` (torch.save each) and copies of ``files`` as ``step{step:06d}``; prune.

    ``files`` maps a name to a file or directory to copy; missing ones are skipped. ``links``: the
    same, for files that are never changed once written (e.g. trajectory chunks): hard-linked where
    the file system allows, so a checkpoint costs no copy of a growing log.
    """
    ckpt_dir = Path(ckpt_dir)
    final = step_dir(ckpt_dir, step)
    remove_stale_staging(ckpt_dir, r"step\d+")  # a killed run's, of whichever step it was saving
    with disk_full_as_error(final, resumes=True), atomic_dir(final) as tmp:  # appears whole or not at all
        for name, obj in objects.items():
            torch.save(obj, tmp / f"{name}.pt")
        for name, src in (files or {}).items():
            copy_output(src, tmp / "files" / name)
        for name, src in (links or {}).items():
            copy_output(src, tmp / "files" / name, link=True)
        sizes = {str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps({"step": step, "sizes": sizes}, indent=1))
    for old in list_checkpoints(ckpt_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def copy_output(src: str | os.PathLike, dst: str | os.PathLike, link: bool = False) -> None:
    """Copy the file or directory ``src`` to ``dst`` (hard links with ``link``, copies where linking
    fails, e.g. across file systems); hidden temporary files are skipped; a missing ``src`` is a no-op."""
    src, dst = Path(src), Path(dst)
    copy = _link_or_copy if link else shutil.copy2
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=copy, ignore=shutil.ignore_patterns(".*"), dirs_exist_ok=True)
    elif src.is_file():
        dst.parent.mkdir(parents=True, exist_ok=True)
        copy(src, dst)


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def list_checkpoints(ckpt_dir: str | os.PathLike) -> list[Path]:
    """Checkpoint directories, oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    return sorted(p for p in ckpt_dir.glob("step[0-9]*") if p.is_dir())


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load every object of one checkpoint; raises if any file is missing, truncated or unreadable.

    Returns ``{"step": int, "dir": Path, name: object, ...}``.
    """
    path = Path(path)
    manifest = json.loads((path / MANIFEST).read_text())
    for rel, size in manifest["sizes"].items():
        actual = (path / rel).stat().st_size
        if actual != size:
            raise ValueError(f"{path / rel}: {actual} bytes, manifest says {size}")
    out: dict[str, Any] = {"step": int(manifest["step"]), "dir": path}
    for f in sorted(path.glob("*.pt")):
        out[f.stem] = torch.load(f, map_location="cpu", weights_only=False)  # our own files
    return out


def load_latest_checkpoint(ckpt_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The newest checkpoint that loads; invalid ones are skipped with a warning. None if none."""
    for path in reversed(list_checkpoints(ckpt_dir)):
        try:
            return load_checkpoint(path)
        except Exception as e:
            warnings.warn(f"skipping invalid checkpoint {path}: {type(e).__name__}: {e}", stacklevel=2)
    return None


# ---- a PPO run's checkpoints ----------------------------------------------------------------------

def save_run(run, step: int) -> None:
    """Checkpoint ``run`` (a :class:`~rlhf_pipeline.ppo.run.RunState`) after ``step``; the hooks make their logs
    durable first."""
    from accelerate.utils import gather_object

    acc = run.acc
    rng = gather_object([rng_state()]) if acc.num_processes > 1 else [rng_state()]
    if acc.is_main_process:
        objects = {
            "policy": _trainable_state(acc.unwrap_model(run.policy)),
            "value": _trainable_state(acc.unwrap_model(run.value_model)),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "trainer_state": {"kl_controller": run.kl_ctl.state_dict(), "log_rows": run.rows,
                              "config": run.cfg.to_dict(),
                              **({"reward_state": run.reward_fn.state_dict()}
                                 if hasattr(run.reward_fn, "state_dict") else {})},
            "rng": rng,
        }
        for hook in run.hooks:  # durable before the checkpoint that a resume would start from
            hook.on_checkpoint(step)
        files, links = {"eval": run.out_dir / "eval"}, {}
        for hook in run.hooks:
            (links if getattr(hook, "files_immutable", False) else files).update(
                hook.checkpoint_files() if hasattr(hook, "checkpoint_files") else {})
        save_checkpoint(run.ckpt_dir, step, objects, files=files, links=links)
    acc.wait_for_everyone()


def resume_run(run) -> int | None:
    """Start ``run`` afresh or from the newest valid checkpoint in its ``ckpt_dir`` (made with the same config but
    :data:`RESUMABLE_CHANGES`): eval files of an earlier attempt go, the checkpoint's state and files come back,
    and every hook's ``on_resume`` drops what was logged after it. Returns the checkpoint's step, None if none."""
    acc = run.acc
    if acc.is_main_process:
        for old in (run.out_dir / "eval").glob("step*.jsonl"):
            old.unlink()
    start = load_latest_checkpoint(run.ckpt_dir)
    if start is not None:
        _restore_run(run, start)
    if acc.is_main_process:
        for hook in run.hooks:
            if start is not None:  # the hook's outputs as they were at the checkpoint
                restore_hook_files(hook, start["dir"])
            hook.on_resume(0 if start is None else start["step"])
    return None if start is None else start["step"]


def _restore_run(run, start: dict[str, Any]) -> None:
    """Load a checkpoint (:func:`load_checkpoint`) into ``run``: weights, optimizer, schedule, KL controller,
    reward state, train-log rows, eval files and this process's RNG state."""
    acc, state = run.acc, start["trainer_state"]
    check_same_config(run.cfg, state["config"], start["dir"])
    _load_trainable(acc.unwrap_model(run.policy), start["policy"])
    _load_trainable(acc.unwrap_model(run.value_model), start["value"])
    run.optimizer.load_state_dict(start["optimizer"])
    run.scheduler.load_state_dict(start["scheduler"])
    run.kl_ctl.load_state_dict(state["kl_controller"])
    if hasattr(run.reward_fn, "load_state_dict") and "reward_state" in state:
        run.reward_fn.load_state_dict(state["reward_state"])
    run.rows = state["log_rows"]
    if acc.is_main_process and (start["dir"] / "files" / "eval").is_dir():
        shutil.copytree(start["dir"] / "files" / "eval", run.out_dir / "eval", dirs_exist_ok=True)
    set_rng_state(start["rng"][acc.process_index])
    log.info("resuming PPO from %s", start["dir"])


def restore_hook_files(hook, ckpt_path: Path) -> None:
    """Put back a hook's ``checkpoint_files`` as the checkpoint ``ckpt_path`` saved them (files logged after
    the checkpoint are dropped). Hooks without such files, or a checkpoint without them, are left alone."""
    for name, path in (hook.checkpoint_files() if hasattr(hook, "checkpoint_files") else {}).items():
        saved = ckpt_path / "files" / name
        if not saved.exists():
            continue
        path = Path(path)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        copy_output(saved, path, link=getattr(hook, "files_immutable", False))


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _load_trainable(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    expected = {n for n, p in model.named_parameters() if p.requires_grad}
    if set(state) != expected:
        raise PipelineError(f"checkpoint does not match the model: {len(set(state) ^ expected)} "
                            "parameter names differ")
    model.load_state_dict(state, strict=False)


def check_same_config(cfg, saved: dict[str, Any], where: Path) -> None:
    """PipelineError unless ``cfg`` (a PPOConfig) equals the config checkpoint ``where`` was made with, but
    :data:`RESUMABLE_CHANGES` (PPO's and the TRL optimisers' checkpoints alike)."""
    now = cfg.to_dict()
    changed = sorted(k for k in set(now) | set(saved)
                     if k not in RESUMABLE_CHANGES and now.get(k) != saved.get(k))
    if changed:
        raise PipelineError(f"{where}: checkpoint was made with a different ppo config (keys {changed}); "
                            f"restore those values or delete {where.parent} to start afresh")
