"""The SLURM profile (slurm/config.yaml) and real runs through a one-node SLURM cluster.

The profile tests render the profile the way Snakemake does and run everywhere. The `slurm` tests
start the cluster of tests/slurm_harness.py (root + apt-get) and submit real jobs; the workflow run
uses the profile as a user would, plus only what this test cluster needs: no Apptainer here
(`--sdm env-modules` replaces the profile's `apptainer`; no rule declares `envmodules:`), no
accounting (`--slurm-status-command squeue`), quicker status polling, and kept SLURM logs.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from snakemake.profiles import ProfileConfigFileParser
from snakemake.resources import Resources

from slurm_harness import REPO, copy_workflow, slurm_cluster  # noqa: F401  (slurm_cluster: fixture)

PROFILE = REPO / "slurm" / "config.yaml"
# What the one-node test cluster needs on top of the profile (see module docstring).
TEST_CLUSTER_ARGS = [
    "--sdm", "env-modules",
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "3",
    "--slurm-keep-successful-logs",
]


def render_profile(text: str, tmp_path: Path) -> dict:
    """The profile's settings as Snakemake reads them (YTE rendered, values expanded)."""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with path.open() as f:
        return ProfileConfigFileParser().parse(f)


def with_site(text: str, **values: str) -> str:
    """The profile with site-block definitions replaced, as a user edits them."""
    for name, value in values.items():
        text, n = re.subn(rf"^(\s*- {name} = )\S.*?(\s+#|$)", rf"\g<1>{value}\g<2>", text, count=1, flags=re.M)
        assert n == 1, f"site value {name} not found in the profile"
    return text


def evaluate(resources: list[str], name: str, attempt: int):
    res = Resources.parse(resources, allow_expressions=True)[name]
    value = res.evaluate(wildcards=None, input=None, attempt=attempt, threads=1, rulename="r", async_run=None)
    return value.value


# --- the profile ------------------------------------------------------------------------------------


def test_profile_generic_settings(tmp_path):
    p = render_profile(PROFILE.read_text(), tmp_path)
    assert p["executor"] == "slurm"
    assert p["software-deployment-method"] == "apptainer"
    # scalars come back as the strings argparse will parse
    assert p["rerun-incomplete"] == "True" and int(p["retries"]) >= 1 and int(p["latency-wait"]) >= 30
    assert p["slurm-jobname-prefix"] == "rlhf" and p["slurm-efficiency-report"] == "True"
    args = p["apptainer-args"]
    assert "--nv" in args.split()
    assert f"--bind {Path.home()}/.cache/huggingface:/hf-cache" in args  # $HOME expanded at parse time
    assert f"PYTHONPATH={os.environ['PWD']}/src" in args  # the checkout's code: $PWD where snakemake starts
    # unedited site block: no account, partition or GPU model forced on anyone
    assert not any(r.startswith(("slurm_account", "slurm_partition")) for r in p["default-resources"])
    assert "set-resources" not in p


def test_profile_resources_grow_with_attempt(tmp_path):
    p = render_profile(PROFILE.read_text(), tmp_path)
    res = p["default-resources"]
    assert [evaluate(res, "mem_mb", a) for a in (1, 2, 3)] == [4000, 8000, 12000]
    assert [evaluate(res, "runtime", a) for a in (1, 2)] == [60, 120]


def test_profile_site_block(tmp_path):
    text = with_site(PROFILE.read_text(), ACCOUNT='"proj0123"', PARTITION='"gpu"', GPU_MODEL='"a100"',
                     DATA_DIRS='["/scratch/rlhf", "/datasets"]')
    p = render_profile(text, tmp_path)
    assert "slurm_account='proj0123'" in p["default-resources"]
    assert "slurm_partition='gpu'" in p["default-resources"]
    assert "sft:gpu_model='a100'" in p["set-resources"] and "rm_train:gpu_model='a100'" in p["set-resources"]
    assert not any(s.startswith("prepare_data:") for s in p["set-resources"])  # CPU rules stay CPU rules
    assert p["apptainer-args"].endswith("--bind /scratch/rlhf --bind /datasets")


# --- the cluster ------------------------------------------------------------------------------------


def job_info(jobid: str) -> str:
    return subprocess.run(["scontrol", "show", "job", jobid], capture_output=True, text=True, check=True).stdout


@pytest.mark.slurm
def test_sbatch_wrap_completes(slurm_cluster, tmp_path):
    out = tmp_path / "hello.out"
    jobid = subprocess.run(["sbatch", "--parsable", "-o", str(out), "--wrap", "echo hello from $SLURM_JOB_ID"],
                           capture_output=True, text=True, check=True).stdout.strip().split(";")[0]
    deadline = time.monotonic() + 60
    while "JobState=COMPLETED" not in (info := job_info(jobid)):
        assert "JobState=FAILED" not in info, info
        assert time.monotonic() < deadline, f"job {jobid} not done after 60 s:\n{info}"
        time.sleep(0.5)
    assert out.read_text().strip() == f"hello from {jobid}"


def tiny_config(path: Path) -> Path:
    """config/config.yaml with a tiny synthetic set and small SLURM requests."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["dataset"]["synthetic"] = {"n_train": 24, "n_val": 6, "n_test": 6}
    cfg["resources"] = {"default": {"mem_mb": 500, "runtime": 5, "cpus_per_task": 1}}
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.slurm
def test_workflow_runs_through_slurm_profile(slurm_cluster, tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    target = "results/data/synthetic/train.jsonl"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PWD": str(wf)}
    cmd = [sys.executable, "-m", "snakemake", "--profile", "slurm", "--configfile", str(tiny_config(wf / "tiny.yaml")),
           *TEST_CLUSTER_ARGS, "--", target]
    t0 = time.monotonic()
    run = subprocess.run(cmd, cwd=wf, env=env, capture_output=True, text=True, timeout=240)
    elapsed = time.monotonic() - t0
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    rows = (wf / target).read_text().splitlines()
    assert len(rows) == 24

    # The job went through SLURM: the plugin's log for the rule, named by the SLURM job id ...
    logs = list((wf / ".snakemake" / "slurm_logs" / "rule_prepare_data").rglob("*.log"))
    assert len(logs) == 1, f"no SLURM log for prepare_data: {logs}"
    jobid = logs[0].stem
    assert "rule prepare_data" in logs[0].read_text()
    # ... and slurmctld knows it: finished, named with the profile's prefix, and sized by the workflow
    # config's resources (mem_mb 500), not the profile's generic 4000 * attempt.
    info = job_info(jobid)
    assert "JobState=COMPLETED" in info
    assert re.search(r"JobName=rlhf_[0-9a-f-]{36}\b", info), info
    assert re.search(r"TRES=cpu=1,mem=500M", info), info
    print(f"prepare_data through SLURM: {elapsed:.0f} s")
