"""Multi-GPU launch (src/rlhf_pipeline/launch.py): GPU counting, the relaunch decision, and the
command, checked against accelerate's own `accelerate launch` parser. No GPU needed: the count comes
from the environment, and the end-to-end test fakes two visible devices (the launched workers only
print the CLI's help, so they never touch CUDA)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from accelerate.commands.launch import launch_command_parser

from rlhf_pipeline.launch import DISTRIBUTED_STAGES, gpu_count, is_distributed_worker, launch_command, relaunch_command

ARGV = ["ppo", "--config", '{"rm_seeds": [1], "hparams": {"batch_size": 16}}', "--policy", "results/sft/model",
        "--out-dir", "results/ppo/seed1"]


def no_torch():
    raise AssertionError("torch.cuda.device_count() consulted although the environment says how many GPUs")


@pytest.mark.parametrize("env, expected", [
    ({"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, 4),
    ({"CUDA_VISIBLE_DEVICES": "GPU-5d2c,GPU-77aa"}, 2),       # UUIDs count as devices
    ({"CUDA_VISIBLE_DEVICES": "0,1", "SLURM_GPUS_ON_NODE": "4"}, 2),  # what CUDA will show wins
    ({"CUDA_VISIBLE_DEVICES": ""}, 0),
    ({"CUDA_VISIBLE_DEVICES": "0,-1,2"}, 1),                  # CUDA stops at the first invalid entry
    ({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, 0),
    ({"SLURM_GPUS_ON_NODE": "3"}, 3),
])
def test_gpu_count_from_environment(env, expected):
    assert gpu_count(env, device_count=no_torch) == expected


def test_gpu_count_falls_back_to_torch():
    assert gpu_count({}, device_count=lambda: 8) == 8
    assert gpu_count({"SLURM_GPUS_ON_NODE": ""}, device_count=lambda: 2) == 2
    assert gpu_count({}) == 0  # this machine: CPU torch


def test_worker_detection():
    assert not is_distributed_worker({"SLURM_GPUS_ON_NODE": "4", "ACCELERATE_MIXED_PRECISION": "bf16"})
    for var in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "TORCHELASTIC_RUN_ID"):
        assert is_distributed_worker({var: "0"})
    assert is_distributed_worker({"RLHF_PIPELINE_NO_RELAUNCH": "1"})
    assert not is_distributed_worker({"RLHF_PIPELINE_NO_RELAUNCH": "0"})


@pytest.mark.parametrize("stage, env, relaunch", [
    ("ppo", {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, 4),
    ("sft", {"SLURM_GPUS_ON_NODE": "2"}, 2),
    ("rm-train", {"CUDA_VISIBLE_DEVICES": "0,1"}, 2),
    ("ppo", {"CUDA_VISIBLE_DEVICES": "0"}, None),                         # one GPU: run here
    ("ppo", {"CUDA_VISIBLE_DEVICES": "0,1", "LOCAL_RANK": "1"}, None),    # already a worker
    ("label-preferences", {"CUDA_VISIBLE_DEVICES": "0,1"}, None),         # not data-parallel
    ("gold-eval", {"SLURM_GPUS_ON_NODE": "4"}, None),
])
def test_relaunch_decision(stage, env, relaunch):
    cmd = relaunch_command(stage, [stage, "--x"], env, device_count=no_torch)
    if relaunch is None:
        assert cmd is None
    else:
        assert cmd == launch_command([stage, "--x"], relaunch)


def test_distributed_stages():
    assert {"sft", "rm-train", "ppo"} == DISTRIBUTED_STAGES


def test_command_is_what_accelerate_parses():
    cmd = launch_command(ARGV, 4, python="/venv/bin/python")
    assert cmd[:3] == ["/venv/bin/python", "-m", "accelerate.commands.launch"]
    args = launch_command_parser().parse_args(cmd[3:])
    assert args.multi_gpu and args.num_processes == 4 and args.num_machines == 1
    assert args.module and args.training_script == "rlhf_pipeline"
    assert args.training_script_args == ARGV  # the stage's arguments reach the workers unchanged
    assert args.mixed_precision == "no" and args.dynamo_backend == "no"
    assert args.main_process_port == 0  # accelerate picks a free port
    assert not (args.cpu or args.use_deepspeed or args.use_fsdp)


def test_launch_command_needs_two_processes():
    with pytest.raises(ValueError, match="at least 2"):
        launch_command(ARGV, 1)


DRIVER = "from rlhf_pipeline.launch import maybe_relaunch; maybe_relaunch('ppo', ['--help']); print('NOT RELAUNCHED')"


def run_driver(**env) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_GPUS_ON_NODE",
                                                            "LOCAL_RANK", "RANK", "WORLD_SIZE")} | env
    return subprocess.run([sys.executable, "-c", DRIVER], env=env, capture_output=True, text=True, timeout=120)


def test_maybe_relaunch_execs_accelerate():
    """Two (fake) visible GPUs: the process becomes `accelerate launch`, which starts two workers that
    run the CLI (here its --help) and do not relaunch again (that would never end: the timeout)."""
    run = run_driver(CUDA_VISIBLE_DEVICES="0,1")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "NOT RELAUNCHED" not in run.stdout
    assert "ppo: 2 GPUs, relaunching as:" in run.stderr
    assert run.stdout.count("usage: python -m rlhf_pipeline") == 2


def test_maybe_relaunch_returns_without_gpus():
    run = run_driver(CUDA_VISIBLE_DEVICES="")
    assert run.returncode == 0 and run.stdout.strip() == "NOT RELAUNCHED", run.stderr[-2000:]
