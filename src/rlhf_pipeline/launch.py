"""Multi-GPU and multi-node launch: a training stage started on an allocation with GPUs re-executes itself
under ``accelerate launch``, one process per GPU, on one node or on every node of a SLURM job.

Snakemake runs every stage as one plain ``python -m rlhf_pipeline <stage> ...`` command, whatever the
allocation. :func:`maybe_relaunch` (called first thing in ``cli.main``) turns that command, for the
data-parallel stages in :data:`DISTRIBUTED_STAGES`, into one of three launches (:func:`relaunch_command`),
each by ``os.execvp``, so the job's process (and the signals SLURM sends it) becomes the launcher's:

**One node, several GPUs, no accelerate config** (plain data parallel, as before)::

    python -m accelerate.commands.launch --multi_gpu --mixed_precision no --dynamo_backend no \\
        --num_processes G --num_machines 1 --main_process_port 0 -m rlhf_pipeline <stage> ...

``--mixed_precision no``: the stage's own config (``bf16``) decides precision, not the launcher.
``--main_process_port 0``: a free port, so two jobs on one node do not collide.

**One node, with an accelerate config** (``ppo.hparams.accelerate_config``, read from the stage's
``--config``; e.g. ``config/accelerate/deepspeed_zero3.yaml`` or ``fsdp.yaml``)::

    python -m accelerate.commands.launch --config_file <file> --num_processes G --num_machines 1 \\
        --main_process_port 0 -m rlhf_pipeline <stage> ...

The file decides the distributed type (DeepSpeed ZeRO-3, FSDP), its settings and mixed precision (keep the
run's ``bf16`` equal to the file's ``mixed_precision``); the process count always comes from the GPUs here,
never from the file. A config file launches even on one GPU (ZeRO-3 with offload is a one-GPU setting too).

**Several nodes** (a SLURM job with ``--nodes`` N > 1, e.g. config ``resources.ppo.nodes``): two steps.

1. The job's one process (on the first node, where the SLURM executor plugin runs the job's command) starts
   one launcher per node with SLURM::

       srun --overlap --nodes=N --ntasks=N --ntasks-per-node=1 --kill-on-bad-exit=1 [--cpus-per-task=C] \\
           python -m rlhf_pipeline <stage> ...

   ``--overlap``: the plugin runs the job's command inside a one-task ``srun`` step of the allocation; the new
   step shares that node with it. The node count is ``SLURM_JOB_NUM_NODES`` (or ``SLURM_NNODES`` outside a
   step), else the hosts of ``SLURM_JOB_NODELIST`` (what a step's tasks have: the plugin's job step removes the
   job's other variables, and srun sets the list, not the count), else ``scontrol show job $SLURM_JOB_ID``.
   ``srun`` must be on the PATH (see slurm/README.md: multi-node jobs run outside the image).
2. Each of those tasks (a SLURM step with one task per node: ``SLURM_STEP_NUM_NODES`` > 1 tasks, one per
   node) becomes that node's ``accelerate launch``::

       python -m accelerate.commands.launch [--config_file <file> | --multi_gpu ...] \\
           --num_processes N*G --num_machines N --machine_rank $SLURM_PROCID \\
           --main_process_ip <first host of SLURM_STEP_NODELIST> --main_process_port P \\
           --same_network --rdzv_backend static [--deepspeed_multinode_launcher standard] -m rlhf_pipeline ...

   ``P``: ``MASTER_PORT`` if set, else 20000 + the job id modulo 10000 (the same on every node, different for
   two jobs sharing a node). A DeepSpeed config file gets the ``standard`` (torchrun) multi-node launcher: the
   launchers are SLURM's tasks, not pdsh's. The same step is what a hand-written ``sbatch`` script gets from
   ``srun --ntasks-per-node=1 python -m rlhf_pipeline <stage> ...``.

The workers ``accelerate launch`` starts carry ``LOCAL_RANK``/``RANK``/``WORLD_SIZE`` and so do not relaunch.

GPU count per node, first source that is set wins (documented order):

1. ``CUDA_VISIBLE_DEVICES``: the devices this process may use (SLURM sets it for a GPU allocation;
   a user's narrower setting is respected). An empty value means none.
2. ``SLURM_GPUS_ON_NODE``: GPUs SLURM allocated to the job on this node.
3. ``torch.cuda.device_count()``.

No GPU: the stage runs here as one process (an accelerate config is then not used; the stage says so).
Set ``RLHF_PIPELINE_NO_RELAUNCH=1`` to run a stage as a single process regardless.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

DISTRIBUTED_STAGES = frozenset({"sft", "rm-train", "ppo"})
"""CLI stages that train data-parallel (TRL trainers and the PPO trainer are accelerate-aware)."""

WORKER_ENV = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID")
"""Variables that torchrun / accelerate set in the processes they launch."""

OPT_OUT_ENV = "RLHF_PIPELINE_NO_RELAUNCH"

ACCELERATE = ("-m", "accelerate.commands.launch")

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout this package runs from: a relative accelerate config not found in the working directory is
looked up here (``config/accelerate/...``), so ``snakemake --directory elsewhere`` finds the shipped files."""


# ---- GPUs --------------------------------------------------------------------------------------------------

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


# ---- SLURM -------------------------------------------------------------------------------------------------

def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    return int(value) if value.isdigit() else None


def first_host(nodelist: str) -> str:
    """The first host of a SLURM host list: ``gpu[007-009,012],cpu1`` -> ``gpu007`` (zero padding kept)."""
    m = re.match(r"\s*([^,\[]+)(?:\[([^\]]+)\])?", nodelist)
    if not m or not m.group(1).strip():
        raise ValueError(f"not a SLURM host list: {nodelist!r}")
    prefix, ranges = m.group(1).strip(), m.group(2)
    return prefix if ranges is None else prefix + ranges.split(",")[0].split("-")[0].strip()


def count_hosts(nodelist: str) -> int:
    """Hosts in a SLURM host list: ``gpu[007-009,012],cpu1`` -> 5 (several bracket groups in one name multiply)."""
    tokens, depth, start = [], 0, 0
    for i, ch in enumerate(nodelist + ","):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            tokens.append(nodelist[start:i].strip())
            start = i + 1
    n = 0
    for token in filter(None, tokens):
        hosts = 1
        for group in re.findall(r"\[([^\]]*)\]", token):
            hosts *= sum(int(b) - int(a) + 1 if "-" in part else 1
                         for part in group.split(",") for a, _, b in [part.strip().partition("-")])
        n += hosts
    return n


def scontrol_nodes(job_id: str) -> int | None:
    """The node count of SLURM job ``job_id`` from ``scontrol show job``; None when scontrol is not here."""
    if shutil.which("scontrol") is None:
        return None
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=60)
    m = re.search(r"\bNumNodes=(\d+)", out.stdout)
    return int(m.group(1)) if out.returncode == 0 and m else None


def job_nodes(env: Mapping[str, str], query: Callable[[str], int | None] = scontrol_nodes) -> int:
    """Nodes of this SLURM job: ``SLURM_JOB_NUM_NODES``; outside a step also ``SLURM_NNODES``; else the hosts of
    ``SLURM_JOB_NODELIST`` (a step's tasks have it, not the counts); else ``query`` (scontrol) for
    ``SLURM_JOB_ID``; 1 outside SLURM."""
    n = _int(env, "SLURM_JOB_NUM_NODES")
    if n is None and "SLURM_STEP_ID" not in env:
        n = _int(env, "SLURM_NNODES")
    if n is None and env.get("SLURM_JOB_NODELIST", "").strip():
        n = count_hosts(env["SLURM_JOB_NODELIST"])
    if n is None and env.get("SLURM_JOB_ID", "").strip():
        n = query(env["SLURM_JOB_ID"].strip())
    return n or 1


def is_node_launcher(env: Mapping[str, str]) -> bool:
    """True in a task of a SLURM step that runs one task on each of several nodes (step 1 of a multi-node
    launch): that node's ``accelerate launch`` is to be started here."""
    nodes = _int(env, "SLURM_STEP_NUM_NODES")
    return bool(nodes and nodes > 1 and _int(env, "SLURM_STEP_NUM_TASKS") == nodes
                and _int(env, "SLURM_PROCID") is not None)


def main_process_port(env: Mapping[str, str]) -> int:
    """The rendezvous port of a multi-node launch: ``MASTER_PORT``, else 20000 + job id mod 10000."""
    port = _int(env, "MASTER_PORT")
    if port:
        return port
    return 20000 + (_int(env, "SLURM_JOB_ID") or 0) % 10000


# ---- commands ----------------------------------------------------------------------------------------------

def config_distributed_type(config_file: str | Path) -> str | None:
    """The ``distributed_type`` an accelerate config file names (``DEEPSPEED``, ``FSDP``, ``MULTI_GPU``)."""
    import yaml

    data = yaml.safe_load(Path(config_file).read_text()) or {}
    return data.get("distributed_type") if isinstance(data, dict) else None


def launch_command(argv: Sequence[str], num_processes: int, python: str | None = None, *,
                   config_file: str | None = None, num_machines: int = 1, machine_rank: int = 0,
                   main_process_ip: str | None = None, main_process_port: int = 0,
                   deepspeed: bool = False) -> list[str]:
    """The ``accelerate launch`` command that runs ``python -m rlhf_pipeline <argv>`` with ``num_processes``
    processes in all (over ``num_machines`` nodes, this one being ``machine_rank``); with ``config_file`` the
    distributed type and precision are the file's. ``deepspeed``: the file is a DeepSpeed one (multi-node:
    the ``standard`` launcher)."""
    if config_file is None and num_processes < 2:
        raise ValueError(f"num_processes must be at least 2 for a multi-GPU launch, got {num_processes}")
    if num_processes < 1 or num_processes % num_machines:
        raise ValueError(f"num_processes {num_processes} does not split over {num_machines} machines")
    cmd = [python or sys.executable, *ACCELERATE]
    if config_file is not None:
        cmd += ["--config_file", str(config_file)]
    else:
        cmd += ["--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd += ["--num_processes", str(num_processes), "--num_machines", str(num_machines)]
    if num_machines > 1:
        if not main_process_ip:
            raise ValueError("a multi-node launch needs the main process's host (main_process_ip)")
        cmd += ["--machine_rank", str(machine_rank), "--main_process_ip", main_process_ip,
                "--same_network", "--rdzv_backend", "static"]
        if deepspeed:
            cmd += ["--deepspeed_multinode_launcher", "standard"]
    cmd += ["--main_process_port", str(main_process_port), "-m", "rlhf_pipeline", *argv]
    return cmd


def node_launchers_command(argv: Sequence[str], nodes: int, env: Mapping[str, str],
                           python: str | None = None) -> list[str]:
    """Step 1 of a multi-node launch: ``srun`` starting ``python -m rlhf_pipeline <argv>`` once per node."""
    # `--opt=value` throughout: srun's --kill-on-bad-exit takes an optional value, so `--kill-on-bad-exit 1` would
    # make "1" the command to run
    cmd = ["srun", "--overlap", f"--nodes={nodes}", f"--ntasks={nodes}", "--ntasks-per-node=1", "--kill-on-bad-exit=1"]
    cpus = _int(env, "SLURM_CPUS_PER_TASK")
    if cpus:
        cmd.append(f"--cpus-per-task={cpus}")
    return [*cmd, python or sys.executable, "-m", "rlhf_pipeline", *argv]


def resolve_config_file(path: str | None) -> str | None:
    """An accelerate config path as the launcher gets it: as given when it exists (relative to the working
    directory), else the checkout's file of that relative name; a missing file is a one-line error."""
    if path is None:
        return None
    if Path(path).is_file():
        return path
    shipped = REPO_ROOT / path
    if not Path(path).is_absolute() and shipped.is_file():
        return str(shipped)
    from .errors import PipelineError

    raise PipelineError(f"accelerate_config: {path} does not exist (a path relative to the working directory, "
                        "or a file of this checkout such as config/accelerate/deepspeed_zero3.yaml)")


def relaunch_command(stage: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
                     device_count: Callable[[], int] | None = None, accelerate_config: str | None = None,
                     nodes_query: Callable[[str], int | None] = scontrol_nodes,
                     python: str | None = None) -> list[str] | None:
    """The command to re-execute this stage with, or None to run it here as one process (module docstring).
    ``accelerate_config``: the stage's accelerate config file, already resolved (:func:`resolve_config_file`)."""
    env = os.environ if env is None else env
    if stage not in DISTRIBUTED_STAGES or is_distributed_worker(env):
        return None
    from .errors import PipelineError

    gpus = gpu_count(env, device_count)
    if gpus < 1 and is_node_launcher(env):  # each node would run the whole stage on its own
        raise PipelineError(f"{stage}: a SLURM step with one task per node, but no GPU on this node; a multi-node "
                            "launch needs GPUs (resources gres: gpu:<per node>)")
    if gpus < 1:
        return None
    deepspeed = accelerate_config is not None and config_distributed_type(accelerate_config) == "DEEPSPEED"
    if is_node_launcher(env):
        nodes = _int(env, "SLURM_STEP_NUM_NODES")
        hosts = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
        if not hosts:
            raise PipelineError(f"{stage}: a SLURM step with one task per node, but no SLURM_STEP_NODELIST")
        return launch_command(argv, nodes * gpus, python, config_file=accelerate_config, num_machines=nodes,
                              machine_rank=_int(env, "SLURM_PROCID"), main_process_ip=first_host(hosts),
                              main_process_port=main_process_port(env), deepspeed=deepspeed)
    nodes = job_nodes(env, nodes_query)
    if nodes > 1 and nodes > (_int(env, "SLURM_STEP_NUM_NODES") or 1):
        return node_launchers_command(argv, nodes, env, python)
    if accelerate_config is None and gpus < 2:
        return None
    return launch_command(argv, gpus, python, config_file=accelerate_config)


def stage_accelerate_config(declared: Any, args: Any) -> str | None:
    """The accelerate config a parsed stage command names: its typed ``--config``'s
    ``hparams.accelerate_config`` (``ppo.hparams.accelerate_config`` and each run's override; the one
    definition of that setting), None for stages without one. A ``--config`` that does not parse gives None:
    the stage then runs here and reports it in one line."""
    from .config import load_config_arg
    from .errors import PipelineError

    section = getattr(declared, "config", None)
    if (getattr(declared, "name", None) not in DISTRIBUTED_STAGES or section is None or args.config is None
            or is_distributed_worker()):  # a launched worker: already launched
        return None
    where = getattr(declared, "where", None)
    try:
        cfg = section.from_dict(load_config_arg(args.config), where(args) if callable(where) else where)
    except (PipelineError, TypeError, ValueError):
        return None
    return getattr(getattr(cfg, "hparams", None), "accelerate_config", None)


def maybe_relaunch(stage: str, argv: Sequence[str], accelerate_config: str | None = None) -> None:
    """Replace this process by the launch :func:`relaunch_command` gives (``accelerate launch`` on this node,
    or ``srun`` starting one launcher per node); otherwise return and let the stage run here.

    ``argv``: the CLI arguments after ``python -m rlhf_pipeline`` (``sys.argv[1:]``), stage included.
    ``accelerate_config``: the stage's accelerate config file (:func:`stage_accelerate_config`), if any.
    Raises :class:`~rlhf_pipeline.errors.PipelineError` for a missing config file or a multi-node job
    without ``srun``.
    """
    from .errors import PipelineError

    if stage not in DISTRIBUTED_STAGES or is_distributed_worker():
        return
    config_file = resolve_config_file(accelerate_config)
    cmd = relaunch_command(stage, argv, accelerate_config=config_file)
    if cmd is None:
        if config_file is not None and gpu_count() < 1:
            print(f"{stage}: no GPU, accelerate config {accelerate_config} not used: one process",
                  file=sys.stderr, flush=True)
        return
    if cmd[0] == "srun" and shutil.which("srun") is None:
        raise PipelineError(f"{stage}: a multi-node SLURM job, but srun is not on the PATH here (inside the "
                            "Apptainer image it is absent: run multi-node jobs with --sdm env-modules, "
                            "slurm/README.md)")
    what = "one launcher per node" if cmd[0] == "srun" else f"{gpu_count()} GPUs on this node"
    print(f"{stage}: {what}, relaunching as: {' '.join(cmd)}", file=sys.stderr, flush=True)
    os.execvp(cmd[0], cmd)
