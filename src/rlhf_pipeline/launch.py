"""Multi-GPU launch: a training stage started on an allocation with several GPUs re-executes itself
under ``accelerate launch``, one process per GPU.

Snakemake runs every stage as one plain ``python -m rlhf_pipeline <stage> ...`` command, whatever
the allocation. :func:`maybe_relaunch` (called first thing in ``cli.main``) turns that command, for
the data-parallel stages in :data:`DISTRIBUTED_STAGES`, into::

    python -m accelerate.commands.launch --multi_gpu --num_processes N --num_machines 1 \\
        --mixed_precision no --dynamo_backend no --main_process_port 0 -m rlhf_pipeline <stage> ...

by ``os.execvp``, so the job's process (and the signals SLURM sends it) becomes the launcher's.
The workers it starts carry ``LOCAL_RANK``/``RANK``/``WORLD_SIZE`` and so do not relaunch again.
``--mixed_precision no``: the stage's own config (``bf16``) decides precision, not the launcher.
``--main_process_port 0``: a free port, so two jobs on one node do not collide.

GPU count, first source that is set wins (documented order):

1. ``CUDA_VISIBLE_DEVICES``: the devices this process may use (SLURM sets it for a GPU allocation;
   a user's narrower setting is respected). An empty value means none.
2. ``SLURM_GPUS_ON_NODE``: GPUs SLURM allocated to the job on this node.
3. ``torch.cuda.device_count()``.

Set ``RLHF_PIPELINE_NO_RELAUNCH=1`` to run a stage as a single process regardless.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence

DISTRIBUTED_STAGES = frozenset({"sft", "rm-train", "ppo"})
"""CLI stages that train data-parallel (TRL trainers and the PPO trainer are accelerate-aware)."""

WORKER_ENV = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID")
"""Variables that torchrun / accelerate set in the processes they launch."""

OPT_OUT_ENV = "RLHF_PIPELINE_NO_RELAUNCH"


def _count_visible_devices(value: str) -> int:
    """Devices named by a ``CUDA_VISIBLE_DEVICES`` value: entries up to the first invalid one
    (CUDA ignores the rest; ``-1`` or ``NoDevFiles`` means none)."""
    n = 0
    for entry in (e.strip() for e in value.split(",")):
        if not entry or entry.startswith("-") or entry == "NoDevFiles":
            break
        n += 1
    return n


def gpu_count(env: Mapping[str, str] | None = None,
              device_count: Callable[[], int] | None = None) -> int:
    """Number of GPUs this process may use: CUDA_VISIBLE_DEVICES, else SLURM_GPUS_ON_NODE, else
    ``torch.cuda.device_count()`` (see the module docstring)."""
    env = os.environ if env is None else env
    if "CUDA_VISIBLE_DEVICES" in env:
        return _count_visible_devices(env["CUDA_VISIBLE_DEVICES"])
    slurm = env.get("SLURM_GPUS_ON_NODE", "").strip()
    if slurm.isdigit():
        return int(slurm)
    if device_count is None:
        import torch

        device_count = torch.cuda.device_count
    return int(device_count())


def is_distributed_worker(env: Mapping[str, str] | None = None) -> bool:
    """True inside a process started by accelerate/torchrun (or when relaunching is switched off)."""
    env = os.environ if env is None else env
    return any(k in env for k in WORKER_ENV) or env.get(OPT_OUT_ENV, "") not in ("", "0")


def launch_command(argv: Sequence[str], num_processes: int, python: str | None = None) -> list[str]:
    """The ``accelerate launch`` command that runs ``python -m rlhf_pipeline <argv>`` on
    ``num_processes`` GPUs of this machine."""
    if num_processes < 2:
        raise ValueError(f"num_processes must be at least 2 for a multi-GPU launch, got {num_processes}")
    return [python or sys.executable, "-m", "accelerate.commands.launch",
            "--multi_gpu", "--num_processes", str(num_processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
            "-m", "rlhf_pipeline", *argv]


def relaunch_command(stage: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
                     device_count: Callable[[], int] | None = None) -> list[str] | None:
    """The command to re-execute this stage with, or None to run it here as one process."""
    if stage not in DISTRIBUTED_STAGES or is_distributed_worker(env):
        return None
    n = gpu_count(env, device_count)
    return launch_command(argv, n) if n > 1 else None


def maybe_relaunch(stage: str, argv: Sequence[str]) -> None:
    """Replace this process by an ``accelerate launch`` of the same stage when it should run on
    several GPUs (:func:`relaunch_command`); otherwise return and let the stage run here.

    ``argv``: the CLI arguments after ``python -m rlhf_pipeline`` (``sys.argv[1:]``), stage included.
    """
    cmd = relaunch_command(stage, argv)
    if cmd is None:
        return
    print(f"{stage}: {gpu_count()} GPUs, relaunching as: {' '.join(cmd)}", file=sys.stderr, flush=True)
    os.execvp(cmd[0], cmd)
