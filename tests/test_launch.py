"""Multi-GPU and multi-node launch (src/rlhf_pipeline/launch.py): GPU counting, the relaunch decision, and the
commands (one node with and without an accelerate config file; several nodes of a SLURM job from SLURM's
variables), checked against accelerate's own `accelerate launch` parser and validation. No GPU needed: the count
comes from the environment, and the end-to-end tests fake visible devices (the launched workers only print the
CLI's help, so they never touch CUDA); two "nodes" are two launchers on this machine."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from slurm_harness import slurm_cluster  # noqa: F401  (fixture)

from rlhf_pipeline.cli import build_parser
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.launch import (
    DISTRIBUTED_STAGES,
    count_hosts,
    first_host,
    gpu_count,
    is_distributed_worker,
    is_node_launcher,
    job_nodes,
    launch_command,
    main_process_port,
    relaunch_command,
    resolve_config_file,
    stage_accelerate_config,
)

ROOT = Path(__file__).resolve().parents[1]
ZERO3 = "config/accelerate/deepspeed_zero3.yaml"
FSDP = "config/accelerate/fsdp.yaml"

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
    assert "ppo: 2 GPUs on this node, relaunching as:" in run.stderr
    assert run.stdout.count("usage: python -m rlhf_pipeline") == 2


def test_maybe_relaunch_returns_without_gpus():
    run = run_driver(CUDA_VISIBLE_DEVICES="")
    assert run.returncode == 0 and run.stdout.strip() == "NOT RELAUNCHED", run.stderr[-2000:]


# ---- an accelerate config file (DeepSpeed ZeRO-3, FSDP) ----------------------------------------------------

def accelerate_args(cmd: list[str]):
    """What `accelerate launch` makes of ``cmd``: its parser, then its own validation (which merges the config
    file under the command line's values)."""
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    args = launch_command_parser().parse_args(cmd[3:])
    validated = _validate_launch_command(args)
    return validated[0] if isinstance(validated, tuple) else args


def never(job_id):
    raise AssertionError("scontrol consulted although the environment says how many nodes")


@pytest.mark.parametrize("config, deepspeed, fsdp", [(ZERO3, True, False), (FSDP, False, True)])
def test_single_node_command_with_a_config_file(config, deepspeed, fsdp):
    """The file decides the method and precision; the process count is the GPUs', never the file's."""
    cmd = relaunch_command("ppo", ARGV, {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, no_torch, accelerate_config=config,
                           nodes_query=never)
    assert cmd == launch_command(ARGV, 4, config_file=config)
    assert "--multi_gpu" not in cmd and "--mixed_precision" not in cmd  # not overriding the file
    args = accelerate_args(cmd)
    assert args.config_file == config and args.num_processes == 4 and args.num_machines == 1
    assert args.use_deepspeed == deepspeed and args.use_fsdp == fsdp and args.mixed_precision == "bf16"
    assert args.main_process_port == 0 and args.module and args.training_script_args == ARGV
    if deepspeed:
        assert args.zero_stage == 3 and args.deepspeed_multinode_launcher == "standard"


def test_without_a_config_file_single_node_is_plain_data_parallel():
    args = accelerate_args(relaunch_command("ppo", ARGV, {"CUDA_VISIBLE_DEVICES": "0,1"}, no_torch))
    assert args.multi_gpu and args.num_processes == 2 and not (args.use_deepspeed or args.use_fsdp)
    assert args.mixed_precision == "no"


def test_a_config_file_launches_on_one_gpu_but_not_without_one():
    one = relaunch_command("ppo", ARGV, {"CUDA_VISIBLE_DEVICES": "0"}, no_torch, accelerate_config=ZERO3,
                           nodes_query=never)
    assert one == launch_command(ARGV, 1, config_file=ZERO3)
    assert relaunch_command("ppo", ARGV, {"CUDA_VISIBLE_DEVICES": ""}, no_torch, accelerate_config=ZERO3) is None
    assert relaunch_command("ppo", ARGV, {"CUDA_VISIBLE_DEVICES": "0", "LOCAL_RANK": "0"}, no_torch,
                            accelerate_config=ZERO3) is None  # a worker


def test_the_stage_config_names_the_accelerate_config():
    """One definition: ppo.hparams.accelerate_config (here a run's, in the ppo stage's --config)."""
    def parsed(stage, config):
        extra = ["--policy", "p", "--rm-dirs", "r", "--train-prompts", "t", "--eval-prompts", "e", "--out-dir", "o",
                 "--ckpt-dir", "c"]
        return build_parser().parse_args([stage, "--config", config, *extra])

    run = json.dumps({"rm_seeds": [1], "optimizer": "grpo", "hparams": {"accelerate_config": ZERO3}})
    args = parsed("ppo", run)
    assert stage_accelerate_config(args.declared_stage, args) == ZERO3
    args = parsed("ppo", '{"rm_seeds": [1]}')
    assert stage_accelerate_config(args.declared_stage, args) is None
    args = parsed("ppo", '{"rm_seeds": [1], "hparams": {"no_such_setting": 1}}')
    assert stage_accelerate_config(args.declared_stage, args) is None  # the stage reports it, in one process
    args = parsed("ppo", run)
    other = dataclasses.replace(args.declared_stage, name="label-preferences")
    assert stage_accelerate_config(other, args) is None  # only the distributed stages are launched


def test_config_file_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # e.g. snakemake --directory elsewhere: the checkout's file
    assert resolve_config_file(ZERO3) == str(ROOT / ZERO3)
    (tmp_path / "mine.yaml").write_text("distributed_type: FSDP\n")
    assert resolve_config_file("mine.yaml") == "mine.yaml" and resolve_config_file(None) is None
    with pytest.raises(PipelineError, match="accelerate_config: config/accelerate/nope.yaml does not exist"):
        resolve_config_file("config/accelerate/nope.yaml")


# ---- several nodes of a SLURM job ---------------------------------------------------------------------------

JOB = {"SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "gpu[007-008]", "SLURM_CLUSTER_NAME": "c"}
JOB_PROCESS = {**JOB, "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_NODES": "1", "SLURM_STEP_NUM_TASKS": "1",
               "SLURM_NNODES": "1", "SLURM_PROCID": "0", "SLURM_STEP_NODELIST": "gpu007", "SLURM_CPUS_PER_TASK": "32",
               "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
"""The job's one process as the SLURM executor plugin runs it: a one-task step (`srun -n1`) on the first node,
after its job step removed the job's SLURM variables but its id. These are the variables such a step had on the
test cluster (SLURM 22.05): the job's node list, not its node count."""


def node_task(rank: int) -> dict[str, str]:
    """A task of the one-task-per-node step the job's process starts (what srun sets in it)."""
    return {**JOB, "SLURM_STEP_ID": "1", "SLURM_STEP_NUM_NODES": "2", "SLURM_STEP_NUM_TASKS": "2",
            "SLURM_NNODES": "2", "SLURM_PROCID": str(rank), "SLURM_NODEID": str(rank),
            "SLURM_STEP_NODELIST": "gpu[007-008]", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}


def test_the_jobs_process_starts_one_launcher_per_node():
    cmd = relaunch_command("ppo", ARGV, JOB_PROCESS, no_torch, accelerate_config=ZERO3, nodes_query=never,
                           python="/venv/bin/python")
    assert cmd == ["srun", "--overlap", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
                   "--cpus-per-task=32", "/venv/bin/python", "-m", "rlhf_pipeline", *ARGV]
    # without a config file too: multi-node plain data parallel
    assert relaunch_command("sft", ["sft"], JOB_PROCESS, no_torch, nodes_query=never)[0] == "srun"
    # a batch script of a plain sbatch job (no step): the same
    batch = {"SLURM_JOB_ID": "4242", "SLURM_NNODES": "3", "CUDA_VISIBLE_DEVICES": "0"}
    assert relaunch_command("ppo", ARGV, batch, no_torch, nodes_query=never)[:3] == ["srun", "--overlap", "--nodes=3"]
    # a one-node job: the plain one-node launch
    one = {**JOB_PROCESS, "SLURM_JOB_NODELIST": "gpu007"}
    assert relaunch_command("ppo", ARGV, one, no_torch, nodes_query=never) == launch_command(ARGV, 4)


def test_node_count_from_scontrol_without_a_node_list():
    """Only SLURM_JOB_ID (e.g. the job's command run outside a step by a plugin that removes the rest): the count
    is asked of scontrol."""
    stripped = {"SLURM_JOB_ID": "4242", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    asked = []
    cmd = relaunch_command("ppo", ARGV, stripped, no_torch, nodes_query=lambda j: asked.append(j) or 2)
    assert asked == ["4242"] and cmd[0] == "srun"
    one = relaunch_command("ppo", ARGV, stripped, no_torch, nodes_query=lambda j: None)  # no scontrol: one node
    assert one == launch_command(ARGV, 4)
    assert job_nodes({}, never) == 1  # not a SLURM job: never asks


@pytest.mark.parametrize("config", [ZERO3, FSDP, None])
def test_each_node_runs_accelerate_with_its_rank(config):
    cmds = [relaunch_command("ppo", ARGV, node_task(rank), no_torch, accelerate_config=config, nodes_query=never)
            for rank in (0, 1)]
    for rank, cmd in enumerate(cmds):
        assert is_node_launcher(node_task(rank))
        args = accelerate_args(cmd)
        assert args.num_processes == 8 and args.num_machines == 2 and args.machine_rank == rank
        assert args.main_process_ip == "gpu007" and args.main_process_port == 20000 + 4242
        assert args.same_network and args.rdzv_backend == "static"
        assert args.training_script_args == ARGV
        if config is None:
            assert args.multi_gpu and args.mixed_precision == "no"
        else:
            assert args.config_file == config and args.mixed_precision == "bf16"
        if config == ZERO3:  # torchrun on each node, started by SLURM: never pdsh
            assert args.use_deepspeed and args.deepspeed_multinode_launcher == "standard"
    assert [c for c in cmds[0] if c != "0"] == [c for c in cmds[1] if c != "1"]  # the rank is all that differs


def test_a_node_launcher_without_gpus_stops():
    with pytest.raises(PipelineError, match="no GPU on this node"):
        relaunch_command("ppo", ARGV, {**node_task(0), "CUDA_VISIBLE_DEVICES": ""}, no_torch, nodes_query=never)


def test_slurm_host_lists_and_ports():
    assert first_host("gpu[007-009,012],cpu1") == "gpu007"
    lists = ("gpu[007-009,012],cpu1", "vm", "n[01-16]", "a[1-2]-b[1-3]", "x,y")
    assert [count_hosts(h) for h in lists] == [5, 1, 16, 6, 2]
    assert first_host("node17") == "node17" and first_host("a[1-2],b3") == "a1" and first_host("x-y[10]") == "x-y10"
    with pytest.raises(ValueError):
        first_host("")
    assert main_process_port({"MASTER_PORT": "29555", "SLURM_JOB_ID": "1"}) == 29555
    assert main_process_port({"SLURM_JOB_ID": "123456"}) == 23456
    assert not is_node_launcher({"SLURM_STEP_NUM_NODES": "2", "SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "0"})


def test_scontrol_is_read(tmp_path, monkeypatch):
    from rlhf_pipeline.launch import scontrol_nodes

    fake = tmp_path / "scontrol"
    fake.write_text("#!/bin/sh\necho 'JobId=4242 JobName=rlhf NumNodes=3 NumCPUs=96 NumTasks=3 CPUs/Task=32'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert scontrol_nodes("4242") == 3


# ---- end to end: the launches really start (fake GPUs; the workers print the CLI's help) --------------------

CONFIG_DRIVER = ("import sys; from rlhf_pipeline.launch import maybe_relaunch; "
                 "maybe_relaunch('ppo', ['--help'], sys.argv[1] if len(sys.argv) > 1 else None); "
                 "print('NOT RELAUNCHED')")
CLEAN = ("CUDA_VISIBLE_DEVICES", "SLURM_GPUS_ON_NODE", "LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_PORT")


def driver(env: dict[str, str], *args: str, popen: bool = False):
    env = {k: v for k, v in os.environ.items() if k not in CLEAN and not k.startswith("SLURM_")} | env
    cmd = [sys.executable, "-c", CONFIG_DRIVER, *args]
    if popen:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def test_fsdp_config_file_launch_starts_the_workers():
    run = driver({"CUDA_VISIBLE_DEVICES": "0,1"}, FSDP)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ppo: 2 GPUs on this node, relaunching as:" in run.stderr and f"--config_file {FSDP}" in run.stderr
    assert run.stdout.count("usage: python -m rlhf_pipeline") == 2 and "NOT RELAUNCHED" not in run.stdout


def test_config_file_without_gpus_runs_here_and_says_so():
    run = driver({"CUDA_VISIBLE_DEVICES": ""}, ZERO3)
    assert run.returncode == 0 and run.stdout.strip() == "NOT RELAUNCHED", run.stderr[-2000:]
    assert f"no GPU, accelerate config {ZERO3} not used" in run.stderr


def test_two_nodes_rendezvous(tmp_path):
    """Two node launchers (SLURM's tasks of the one-per-node step, here both on this machine) join one static
    rendezvous at the first host, one worker each: world size 2."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    node = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "1", "SLURM_STEP_NUM_NODES": "2", "SLURM_STEP_NUM_TASKS": "2",
            "SLURM_STEP_NODELIST": "localhost", "MASTER_PORT": port, "CUDA_VISIBLE_DEVICES": "0"}
    procs = [driver({**node, "SLURM_PROCID": str(rank)}, popen=True) for rank in (0, 1)]
    outs = [p.communicate(timeout=180) for p in procs]
    for rank, (p, (out, err)) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, err[-2000:]
        assert "--num_machines 2" in err and f"--machine_rank {rank}" in err and f"--main_process_port {port}" in err
        assert out.count("usage: python -m rlhf_pipeline") == 1 and "NOT RELAUNCHED" not in out


def test_multi_node_without_srun_is_one_line(tmp_path):
    """The job's process of a 2-node job where srun is absent (e.g. inside the Apptainer image)."""
    (tmp_path / "python").symlink_to(sys.executable)
    env = {"PATH": str(tmp_path), "SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": "2", "CUDA_VISIBLE_DEVICES": "0"}
    run = driver(env)
    assert run.returncode != 0 and "srun is not on the PATH" in run.stderr


def test_multi_node_execs_srun(tmp_path):
    fake = tmp_path / "srun"
    fake.write_text('#!/bin/sh\necho "srun $*"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", "SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": "2",
           "SLURM_CPUS_PER_TASK": "8", "CUDA_VISIBLE_DEVICES": "0,1"}
    run = driver(env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ppo: one launcher per node, relaunching as: srun" in run.stderr
    assert run.stdout.startswith("srun --overlap --nodes=2 --ntasks=2 --ntasks-per-node=1 --kill-on-bad-exit=1 "
                                 f"--cpus-per-task=8 {sys.executable} -m rlhf_pipeline --help")


# ---- on the one-node test cluster (pytest -m slurm) ----------------------------------------------------------

PLUGIN_LIKE_JOB = """#!/bin/bash
# what snakemake-executor-plugin-slurm(-jobstep) does with a job: keep only the job's identity, then srun -n1
keep=" SLURM_JOB_ID SLURM_JOBID SLURM_CLUSTER_NAME SLURM_SUBMIT_DIR SLURM_SUBMIT_HOST "
for v in $(env | grep -o '^\\(SLURM\\|SRUN\\|SBATCH\\)_[A-Z_]*'); do
  case "$keep" in *" $v "*) ;; *) unset "$v" ;; esac
done
srun -n1 --cpus-per-task=1 --nodes=1 {python} {driver}
"""

LEVEL0 = """import json, os
from rlhf_pipeline.launch import job_nodes, node_launchers_command
probe = ("import json, os; from rlhf_pipeline.launch import is_node_launcher; "
         "print('STEP', json.dumps({{k: v for k, v in os.environ.items() if k.startswith('SLURM_')}}))")
cmd = node_launchers_command([], job_nodes(os.environ, query=lambda job: None), os.environ)
cmd = [*cmd[:cmd.index("-m")], "-c", probe]  # the probe instead of the stage, in the step launch.py starts
print("JOB", json.dumps({{k: v for k, v in os.environ.items() if k.startswith("SLURM_")}}), flush=True)
os.execvp(cmd[0], cmd)
"""


@pytest.mark.slurm
def test_node_launchers_step_on_a_real_slurm(slurm_cluster, tmp_path):  # noqa: F811  (pytest fixture imported above)
    """The job's process as the plugin runs it (one task, SLURM's variables removed but the job's id) sees the
    job's node list, counts its nodes from it without scontrol, and the srun command launch.py builds starts a
    step whose task has the variables a node launcher reads (SLURM 22.05 here; one node, so one task)."""
    import time

    driver = tmp_path / "level0.py"
    driver.write_text(LEVEL0.format())
    script = tmp_path / "job.sh"
    script.write_text(PLUGIN_LIKE_JOB.format(python=sys.executable, driver=driver))
    out = tmp_path / "job.out"
    jobid = subprocess.run(["sbatch", "--parsable", "--nodes=1", "--cpus-per-task=1", "--mem=500", "-o", str(out),
                            str(script)], capture_output=True, text=True, check=True).stdout.strip().split(";")[0]
    deadline = time.monotonic() + 120
    while subprocess.run(["squeue", "-h", "-j", jobid], capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, f"job {jobid} not done after 120 s"
        time.sleep(1)
    text = out.read_text()
    lines = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) for line in text.splitlines()
             if line.startswith(("JOB ", "STEP "))}
    assert set(lines) == {"JOB", "STEP"}, text
    job, step = lines["JOB"], lines["STEP"]
    assert "SLURM_JOB_NUM_NODES" not in job and job["SLURM_JOB_NODELIST"]  # the list, not the count
    assert job_nodes(job, never) == 1
    assert step["SLURM_STEP_ID"] != job["SLURM_STEP_ID"] and step["SLURM_JOB_ID"] == jobid
    assert (step["SLURM_STEP_NUM_NODES"], step["SLURM_STEP_NUM_TASKS"], step["SLURM_PROCID"]) == ("1", "1", "0")
    assert first_host(step["SLURM_STEP_NODELIST"]) == first_host(job["SLURM_JOB_NODELIST"])
    assert step["SLURM_CPUS_PER_TASK"] == "1"
