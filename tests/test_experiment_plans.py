"""Real experiment configs resolve and plan the jobs they promise (snakemake -n)."""

import os
import subprocess
import sys
from pathlib import Path

from rlhf_pipeline.workflow_config import resolve_config

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = ROOT / "config/experiments/coste_cpu.yaml"


def test_experiment_config_is_valid_and_plans_three_replicates_of_each_run(tmp_path):
    cfg = resolve_config([EXPERIMENT], root=ROOT)[0]
    runs = cfg.ppo.runs
    assert {"single", "mean", "wco", "uwo", "single_ind", "uwo_ind", "single_noisy", "uwo_noisy"} <= set(runs)
    assert {r.replicates for r in runs.values()} == {3, 6}
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
                        "--configfile", str(EXPERIMENT), "-n", "--cores", "2", "results/plots/overoptimization.png"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    table = r.stdout.split("Job stats:")[1].split("total")[0]
    jobs = {line.split()[0]: int(line.split()[1]) for line in table.strip().splitlines()[2:]}
    n_jobs = sum(r.replicates for r in runs.values())
    assert jobs["ppo"] == n_jobs and jobs["gold_eval"] == n_jobs
    assert jobs["aggregate_replicates"] == len(runs) and jobs["bon"] == len(runs)
    assert jobs["rm_train"] == len(cfg.rm.seeds) and jobs["rm_diversity"] == 1 and jobs["fit_curves"] == 1
    assert "gold_rm_train" not in jobs  # gold is the world's own quality


GRPO = ROOT / "config/experiments/coste2023_grpo.yaml"


def test_coste2023_grpo_plans_multi_node_grpo_jobs_under_the_slurm_profile(tmp_path):
    """Issue 29's real scale: `snakemake -n --profile slurm --configfile coste2023_grpo.yaml <target>` plans coste2023's
    chain with every run optimised by GRPO (vLLM, DeepSpeed ZeRO-3), each GRPO job on 2 nodes x 4 GPUs: the sbatch
    flags the SLURM plugin builds from its resources, and the one-task step its job step runs the command in."""
    from slurm_harness import copy_workflow
    from snakemake_executor_plugin_slurm_jobstep import get_gpu_setting, get_node_setting
    from test_slurm import plan_jobs, sbatch_flags

    cfg = resolve_config([GRPO], root=ROOT, check_paths=False)[0]
    assert {r.optimizer for r in cfg.ppo.runs.values()} == {"grpo"} and len(cfg.ppo.runs) == 8
    hp = cfg.ppo.hparams
    assert hp.vllm.enabled and (ROOT / hp.accelerate_config).is_file() and hp.bf16
    assert hp.batch_size % hp.grpo.num_generations == 0

    wf = copy_workflow(tmp_path / "wf")
    fake = tmp_path / "bin" / "apptainer"  # a dry run only asks apptainer its version
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'apptainer version 1.3.4'\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "PWD": str(wf)}
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "slurm", "--configfile",
                        str(GRPO.relative_to(ROOT)), "--", "results/plots/overoptimization.png"],
                       cwd=wf, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert r.stdout.count("rule ppo:") == len(cfg.ppo.runs)
    jobs = plan_jobs(r.stdout)
    assert {"sft", "label_preferences", "rm_train", "ppo", "gold_eval", "bon_sample"} <= set(jobs)

    res = jobs["ppo"]["resources"]
    want = cfg.resources["ppo"]
    assert (res["nodes"], res["gres"], res["cpus_per_task"], res["mem_mb"]) == (2, "gpu:4", 32, want.mem_mb)
    assert "gpu" not in res  # GPUs per node (gres), not per job
    flags = sbatch_flags("ppo", res).split()
    assert {"--nodes=2", "--gres=gpu:4", "--cpus-per-task=32", "--signal=TERM@600"} <= set(flags), flags
    assert not any(f.startswith(("--gpus", "--ntasks")) for f in flags), flags

    class Job:  # what the plugin's job step sees: it runs the command in `srun -n1 <these>` on the first node
        resources = res
    assert get_node_setting(Job) == "--nodes=2" and get_gpu_setting(Job) == ""  # no per-step GPU count on one node
    for rule in ("sft", "label_preferences", "rm_train", "gold_eval", "bon_sample"):  # coste2023's one-node jobs
        assert f"--gpus={jobs[rule]['resources']['gpu']}" in sbatch_flags(rule, jobs[rule]["resources"]).split()
