"""Preemption for the stages built on Hugging Face's ``Trainer`` (SFT, proxy RMs), and the signal
handling PPO shares with them.

The Trainer does the checkpointing itself: ``output_dir=ckpt_dir``, ``save_strategy="steps"``,
``save_total_limit=2`` (:func:`checkpoint_args`), and ``trainer.train(resume_from_checkpoint=...)``
restores weights, optimizer, scheduler, RNG states and the position in the data. This module adds
what the Trainer lacks:

- **A completion marker.** The Trainer writes ``checkpoint-N/`` file by file, so a job killed while
  saving leaves a half-written directory that ``get_last_checkpoint`` would happily return. A
  callback writes ``checkpoint-N/checkpoint_complete.json`` (the size of every file) after the
  Trainer has finished the checkpoint; :func:`latest_valid_checkpoint` resumes only from a
  directory whose marker matches its files and whose state files load. Invalid ones are skipped
  with a warning naming them, and removed.
- **Stop on SIGTERM/SIGUSR1.** The signal sets a flag (:func:`stop_on_signals`); at the end of the
  current optimizer step the Trainer saves a checkpoint and stops; the stage then raises
  :class:`Preempted` (exit code 128 + signal, 143 for SIGTERM) WITHOUT writing its declared outputs,
  so SLURM/Snakemake retry the job and the next attempt resumes. A signal that arrives after the
  last step does not stop the stage: training is complete and its outputs are written.
- **A full disk fails in one line.** A checkpoint save that runs out of space removes its partial
  ``checkpoint-N`` and raises :class:`~rlhf_pipeline.errors.DiskFull` naming it (the rerun resumes from
  the last complete checkpoint); the final outputs are written through :func:`rlhf_pipeline.io.atomic_dir`,
  which does the same for them and removes the staging directory a killed attempt left.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import DiskFull
from .io import atomic_dir, atomic_file, disk_full_as_error, write_json

log = logging.getLogger(__name__)

MARKER = "checkpoint_complete.json"
PREFIX = "checkpoint-"
SAVE_FRACTION = 0.1
"""Default checkpoint interval: a tenth of the run (the Trainer reads ``save_steps < 1`` as a
fraction of its total optimizer steps), i.e. about ten checkpoints per run."""
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors",
                "pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin")
STATE_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


# ---- signals (shared with PPO) ------------------------------------------------------------------

class StopFlag:
    """Set by the signal handler: the number of the last signal received, 0 if none."""

    signum: int = 0


class Preempted(SystemExit):
    """A stage stopped by SIGTERM/SIGUSR1 after checkpointing; the exit code is 128 + signum."""

    def __init__(self, signum: int, message: str):
        super().__init__(128 + signum)
        self.signum, self.message = signum, message

    def __str__(self) -> str:
        return self.message


@contextmanager
def stop_on_signals(signals=(signal.SIGTERM, signal.SIGUSR1)):
    """While active, SIGTERM/SIGUSR1 only set ``flag.signum``; the previous handlers come back after.

    Outside the main thread (where handlers cannot be installed) the flag simply never gets set.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag.signum = signum
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


# ---- Trainer arguments and callbacks ------------------------------------------------------------

def trainer_args(ckpt_dir: str | Path | None, scratch_dir: str | Path, seed: int) -> dict[str, Any]:
    """The ``TrainingArguments`` keywords every TRL trainer of the project shares: resumable checkpoints
    (:func:`checkpoint_args`), the seed of init and data order, no trackers, no loader workers, progress bars."""
    return {**checkpoint_args(ckpt_dir, scratch_dir), "seed": seed, "data_seed": seed, "report_to": [],
            "dataloader_num_workers": 0, "disable_tqdm": False}


def checkpoint_args(ckpt_dir: str | Path | None, scratch_dir: str | Path,
                    save_steps: float = SAVE_FRACTION) -> dict[str, Any]:
    """``TrainingArguments`` keywords for resumable checkpoints in ``ckpt_dir``.

    ``save_steps``: an optimizer-step interval, or (< 1) a fraction of the run. Without a
    ``ckpt_dir`` nothing is checkpointed and the Trainer writes only to ``scratch_dir``.
    """
    if ckpt_dir is None:
        return {"output_dir": str(scratch_dir), "save_strategy": "no"}
    return {"output_dir": str(ckpt_dir), "save_strategy": "steps", "save_steps": save_steps,
            "save_total_limit": 2}


def _marker_callback():
    from transformers import TrainerCallback

    class CompletionMarker(TrainerCallback):
        """Writes ``checkpoint-N/checkpoint_complete.json`` once the Trainer has saved ``checkpoint-N``."""

        def on_save(self, args, state, control, **kwargs):
            if args.world_size > 1:  # every process has written its part (e.g. rng_state_{rank}.pth)
                import torch.distributed as dist

                dist.barrier()
            if state.is_world_process_zero:
                path = Path(args.output_dir) / f"{PREFIX}{state.global_step}"
                with checkpoint_write(path):
                    write_marker(path, state.global_step)
            return control

    return CompletionMarker()


def _stop_callback(flag: StopFlag, every: int = 1):
    from transformers import TrainerCallback

    class StopOnSignal(TrainerCallback):
        """After a signal: save and stop at the end of this optimizer step (of the next one whose number is a
        multiple of ``every``); skip end-of-epoch evals."""

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % every:
                return control
            if args.world_size > 1:  # every process stops at the same step, or none does
                import torch
                import torch.distributed as dist

                signum = torch.tensor([flag.signum], device=args.device)
                dist.all_reduce(signum, op=dist.ReduceOp.MAX)
                flag.signum = int(signum.item())
            if flag.signum:
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_epoch_end(self, args, state, control, **kwargs):
            if flag.signum:  # the job is about to be killed: no time for an evaluation pass
                control.should_evaluate = False
            return control

    return StopOnSignal()


def train_resumable(trainer, ckpt_dir: str | Path | None, stage: str, stop_every: int = 1):
    """``trainer.train()``, resumed from the newest valid checkpoint in ``ckpt_dir``; see the module
    docstring. Raises :class:`Preempted` if a signal stopped training before its last step. ``stop_every``: a
    signal stops training only after an optimizer step whose number is a multiple of it (a TRL optimiser's
    steps of generation and updates are never cut).

    Returns ``(TrainOutput, resumed_from)`` where ``resumed_from`` is the checkpoint path or None.
    """
    if ckpt_dir is None:
        return trainer.train(), None
    resume = latest_valid_checkpoint(ckpt_dir)
    if resume is not None:
        log.warning("%s: resuming from %s", stage, resume)
    trainer.add_callback(_marker_callback())
    _fail_saves_on_full_disk(trainer, Path(ckpt_dir))
    with stop_on_signals() as flag:
        stopper = _stop_callback(flag, stop_every)
        trainer.add_callback(stopper)
        try:
            result = trainer.train(resume_from_checkpoint=None if resume is None else str(resume))
        finally:
            trainer.remove_callback(stopper)
    state = trainer.state
    if flag.signum and state.global_step < state.max_steps:
        msg = (f"{stage}: got signal {flag.signum}; checkpointed step {state.global_step}/{state.max_steps} "
               f"in {ckpt_dir}; exiting with {128 + flag.signum} (a rerun resumes from there)")
        log.warning(msg)
        raise Preempted(flag.signum, msg)
    return result, resume


@contextmanager
def checkpoint_write(path: Path):
    """Writing checkpoint ``path`` in place: on a full disk the partial directory goes (it is never resumed
    from, and it holds the space) and :class:`~rlhf_pipeline.errors.DiskFull` names it in one line."""
    try:
        with disk_full_as_error(path, resumes=True):
            yield
    except DiskFull:
        shutil.rmtree(path, ignore_errors=True)
        raise


def _fail_saves_on_full_disk(trainer, ckpt_dir: Path) -> None:
    """Every checkpoint save of ``trainer`` under :func:`checkpoint_write` (the Trainer writes ``checkpoint-N``
    itself, file by file, in its ``_save_checkpoint``; an AttributeError here says a new version renamed it)."""
    save = trainer._save_checkpoint

    def guarded(*args, **kwargs):
        with checkpoint_write(ckpt_dir / f"{PREFIX}{trainer.state.global_step}"):
            return save(*args, **kwargs)
    trainer._save_checkpoint = guarded


def save_trained(trainer, model, tok, out_dir: str | Path, metrics: dict[str, Any], metrics_name: str,
                 ckpt_dir: str | Path | None, model_subdir: str = "") -> None:
    """The end of a Trainer stage: one process (the main one under ``accelerate launch``) writes the model and
    tokenizer to ``out_dir/model_subdir`` and ``metrics`` to ``out_dir/metrics_name`` (all at once: a stopped
    job leaves no partial output), then deletes the checkpoints; every process waits for it. ``trainer`` None:
    no Trainer ran (a single process, or this process's ``RANK``)."""
    main = trainer.is_world_process_zero() if trainer is not None else int(os.environ.get("RANK", "0")) == 0
    if main:
        with atomic_dir(out_dir) as tmp:
            model.save_pretrained(tmp / model_subdir)
            tok.save_pretrained(tmp / model_subdir)
            write_json(tmp / metrics_name, metrics)
        remove_checkpoints(ckpt_dir)
    if trainer is not None:
        trainer.accelerator.wait_for_everyone()


def remove_checkpoints(ckpt_dir: str | Path | None) -> None:
    """Delete the ``checkpoint-N`` directories of a finished stage (its outputs are the record)."""
    if ckpt_dir is None:
        return
    for path in _checkpoint_dirs(Path(ckpt_dir)):
        shutil.rmtree(path, ignore_errors=True)


# ---- validity -----------------------------------------------------------------------------------

def write_marker(path: str | Path, step: int) -> None:
    """Record ``step`` and the size of every file under ``path`` in ``path/checkpoint_complete.json``."""
    path = Path(path)
    sizes = {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*"))
             if p.is_file() and p.name != MARKER}
    with atomic_file(path / MARKER) as tmp:
        Path(tmp).write_text(json.dumps({"step": step, "sizes": sizes}, indent=1))


def check_checkpoint(path: str | Path) -> None:
    """Raise ``ValueError`` (saying why) unless ``path`` is a complete Trainer checkpoint.

    Complete: a marker whose step matches the directory name and whose sizes match the files;
    trainer state, weights, optimizer, scheduler and RNG state present; the state files load.
    """
    import torch
    from safetensors import safe_open

    path = Path(path)
    marker = path / MARKER
    if not marker.is_file():
        raise ValueError(f"no {MARKER} (the save did not finish)")
    try:
        info = json.loads(marker.read_text())
        step, sizes = int(info["step"]), dict(info["sizes"])
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"unreadable {MARKER} ({e})") from None
    if path.name != f"{PREFIX}{step}":
        raise ValueError(f"{MARKER} is for step {step}")
    for rel, size in sizes.items():
        f = path / rel
        if not f.is_file():
            raise ValueError(f"{rel} is missing")
        if f.stat().st_size != size:
            raise ValueError(f"{rel} has {f.stat().st_size} bytes, {MARKER} says {size}")
    missing = [n for n in STATE_FILES if n not in sizes]
    if not any(n in sizes for n in WEIGHT_FILES):
        missing.append("model weights")
    if not any(n.startswith("rng_state") for n in sizes):
        missing.append("rng_state*.pth")
    if missing:
        raise ValueError(f"incomplete: no {', '.join(missing)}")
    if int(json.loads((path / "trainer_state.json").read_text())["global_step"]) != step:
        raise ValueError("trainer_state.json is for another step")
    for rel in sizes:
        f = path / rel
        if f.suffix == ".safetensors":
            with safe_open(str(f), framework="pt"):  # parses the header
                pass
        elif f.suffix in (".pt", ".pth", ".bin"):
            torch.load(f, map_location="cpu", mmap=True, weights_only=False)  # our own files


def latest_valid_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """The newest complete ``checkpoint-N`` in ``ckpt_dir``, or None.

    Newer invalid ones are skipped with a warning naming them and removed, so the Trainer's
    rotation (``save_total_limit``) never keeps them in place of valid ones.
    """
    for path in reversed(_checkpoint_dirs(Path(ckpt_dir))):
        try:
            check_checkpoint(path)
            return path
        except Exception as e:
            warnings.warn(f"skipping invalid checkpoint {path}: {e}; removing it", stacklevel=2)
            shutil.rmtree(path, ignore_errors=True)
    return None


def _checkpoint_dirs(ckpt_dir: Path) -> list[Path]:
    """``checkpoint-N`` directories, oldest (smallest N) first."""
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.glob(f"{PREFIX}*") if p.is_dir() and p.name[len(PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))
