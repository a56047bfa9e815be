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

import pandas as pd
import pytest
import yaml
from slurm_harness import REPO, copy_workflow, slurm_cluster  # noqa: F401  (slurm_cluster: fixture)
from snakemake.profiles import ProfileConfigFileParser
from snakemake.resources import Resources
from test_container import rules_under_apptainer

PROFILE = REPO / "slurm" / "config.yaml"
# What the one-node test cluster needs on top of the profile (see module docstring).
TEST_CLUSTER_ARGS = [
    "--sdm", "env-modules",
    "--slurm-status-command", "squeue",
    # The plugin polls after `init` s, then 10 s longer each round until a job finishes (then `init` again).
    # Stages here take 15-25 s in SLURM; 7 s catches them at 7+17=24 s (3 s: at 3+13+23=39 s). Measured on
    # 2 cores, the PPO target: ~182 s with 7, ~190 s with 1 or 3.
    "--slurm-init-seconds-before-status-checks", "7",
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
    # set-resources: only the preemption signal of the checkpointing stages, no GPU model
    assert sorted(p["set-resources"]) == [f"{r}:slurm_extra='--signal=TERM@600'"
                                          for r in ("debate_dpo", "debate_sft", "ppo", "redteam", "rm_train", "sft")]


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
    assert "ppo:slurm_extra='--signal=TERM@600'" in p["set-resources"]  # the signal survives the site edit
    assert not any(s.startswith("prepare_data:") for s in p["set-resources"])  # CPU rules stay CPU rules
    assert p["apptainer-args"].endswith("--bind /scratch/rlhf --bind /datasets")


# --- the cluster ------------------------------------------------------------------------------------


def job_info(jobid: str) -> str:
    return subprocess.run(["scontrol", "show", "job", jobid], capture_output=True, text=True, check=True).stdout


@pytest.mark.slurm
def test_sbatch_wrap_completes(slurm_cluster, tmp_path):  # noqa: F811  (pytest fixture imported above)
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
    """tests/configs/tiny.yaml with small SLURM requests (mem_mb is checked below).

    Its runs replace the demo's (its base); rm.seeds 1-3 are still valid members for them. The target
    needs only RM seed 1, so only that member is trained.
    """
    cfg = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    cfg["rm"]["seeds"] = [1, 2, 3]
    # runtime above the profile's PREEMPT_LEAD (600 s), or SLURM sends the checkpoint signal at once
    cfg["resources"] = {"default": {"mem_mb": 1500, "runtime": 30, "cpus_per_task": 1}}
    path.write_text(yaml.safe_dump(cfg))
    return path


def job_stats(output: str) -> dict[str, int]:
    """Rule -> job count from the first "Job stats:" table Snakemake prints (the plan it executes)."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


PPO_TARGET = "results/ppo/seed1/gold_eval.csv"
# Every rule the PPO target needs on the tiny config; none is a localrule (rm_summary, bon and the plot are).
SLURM_RULES = {"prepare_data", "sft", "gold_rm_train", "label_preferences", "rm_train", "ppo", "gold_eval"}


@pytest.mark.slurm
def test_ppo_target_runs_through_slurm_profile(slurm_cluster, tmp_path):  # noqa: F811  (pytest fixture imported above)
    """The done-when of issue 4: the plain profile command on the PPO target, every rule a SLURM job."""
    wf = copy_workflow(tmp_path / "wf")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PWD": str(wf)}
    cmd = [sys.executable, "-m", "snakemake", "--profile", "slurm", "--configfile", str(tiny_config(wf / "tiny.yaml")),
           *TEST_CLUSTER_ARGS, "--", PPO_TARGET]
    t0 = time.monotonic()
    run = subprocess.run(cmd, cwd=wf, env=env, capture_output=True, text=True, timeout=540)
    elapsed = time.monotonic() - t0
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]

    gold = pd.read_csv(wf / PPO_TARGET)
    assert len(gold) >= 2 and {"step", "kl", "proxy_reward", "gold_reward"} <= set(gold.columns)
    assert gold[["kl", "proxy_reward", "gold_reward"]].notna().all().all()

    ran = job_stats(output)
    assert set(ran) == SLURM_RULES and all(n == 1 for n in ran.values()), ran
    # Each rule went through SLURM: exactly one plugin log, named by the SLURM job id, and slurmctld
    # remembers the job (MinJobAge=600 in the harness) as COMPLETED, named with the profile's prefix.
    logs_dir = wf / ".snakemake" / "slurm_logs"
    assert {p.name for p in logs_dir.iterdir()} == {f"rule_{r}" for r in SLURM_RULES}
    jobids = {}
    for rule in SLURM_RULES:
        logs = list((logs_dir / f"rule_{rule}").rglob("*.log"))
        assert len(logs) == 1, f"rule {rule}: expected one SLURM log, found {logs}"
        assert f"rule {rule}" in logs[0].read_text()
        jobids[rule] = logs[0].stem
        info = job_info(jobids[rule])
        assert "JobState=COMPLETED" in info and "ExitCode=0:0" in info, info
        assert re.search(r"JobName=rlhf_[0-9a-f-]{36}\b", info), info
    assert len(set(jobids.values())) == len(SLURM_RULES)
    # sized by the workflow config's resources (mem_mb 1500), not the profile's generic 4000 * attempt
    assert re.search(r"TRES=cpu=1,mem=1500M", job_info(jobids["ppo"]))
    print(f"PPO target through SLURM: {elapsed:.0f} s")


# --- the real-scale plan (coste2023) under the profile -------------------------------------------------

COSTE = REPO / "config" / "experiments" / "coste2023.yaml"
COSTE_TARGETS = ["results/ppo/seed1/gold_eval.csv", "results/bon/seed1/bon.csv"]  # the latter adds bon_sample


def plan_jobs(output: str) -> dict[str, dict]:
    """rule -> {"input": [...], "resources": {...}} of each job a dry run prints.

    Snakemake 9 prints, per planned job, a `rule <name>:` (or `localrule <name>:`) block with
    `input:` and `resources:` lines; the resources are those the executor will submit (profile
    default-resources, then the rule's, then set-resources), evaluated for attempt 1.
    """
    jobs = {}
    for block in re.split(r"^(?=(?:local)?rule \w+:$)", output, flags=re.M)[1:]:
        head, *lines = block.splitlines()
        fields = dict(re.match(r"^\s+(\w+): (.*)$", line).groups() for line in lines
                      if re.match(r"^\s+\w+: ", line))
        res = {}
        for item in re.split(r", (?=\w+=)", fields.get("resources", "")):
            if "=" in item:
                key, value = item.split("=", 1)
                res[key] = int(value) if value.isdigit() else value
        jobs[head.split()[1].rstrip(":")] = {"input": fields.get("input", "").split(", "), "resources": res}
    return jobs


def sbatch_flags(rule: str, resources: dict) -> str:
    """The resource part of the sbatch call snakemake-executor-plugin-slurm builds for a job with these
    resources (its own get_submit_command and set_gres_string, fed a job-shaped object)."""
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Res(dict):
        __getattr__ = dict.__getitem__

    job = SimpleNamespace(name=rule, threads=resources.get("cpus_per_task", 1), resources=Res(resources))
    params = dict(run_uuid="uuid", slurm_logfile="log", comment_str=f"rule_{rule}", account="", partition="",
                  workdir="")
    return get_submit_command(job, params) + set_gres_string(job)


@pytest.fixture
def fake_apptainer(tmp_path) -> str:
    """A PATH entry with an `apptainer` that only tells its version (all a dry run asks of it)."""
    fake = tmp_path / "bin" / "apptainer"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'apptainer version 1.3.4'\n")
    fake.chmod(0o755)
    return str(fake.parent)


def plan_under_profile(wf, fake_apptainer, config: Path, *targets: str) -> tuple[str, dict[str, dict]]:
    """`snakemake -n --profile slurm --configfile <config> -- <targets>` in the workflow copy `wf`: the
    printed plan and its jobs (apptainer is a stand-in that only tells its version)."""
    env = {**os.environ, "PATH": f"{fake_apptainer}:{os.environ['PATH']}", "PWD": str(wf)}
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "slurm", "--configfile",
                          str(config.relative_to(REPO)), "--", *targets],
                         cwd=wf, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout, plan_jobs(run.stdout)


def test_coste2023_plan_under_profile(tmp_path, fake_apptainer):
    """The done-when of issue 4: `snakemake -n --profile slurm --configfile coste2023.yaml <target>`."""
    wf = copy_workflow(tmp_path / "wf")
    env = {**os.environ, "PATH": f"{fake_apptainer}:{os.environ['PATH']}", "PWD": str(wf)}
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "slurm", "--configfile",
                          str(COSTE.relative_to(REPO)), "--", *COSTE_TARGETS],
                         cwd=wf, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    jobs = plan_jobs(run.stdout)
    cfg = yaml.safe_load(COSTE.read_text())["resources"]
    local = {name for name, r in rules_under_apptainer(wf / "Snakefile").items() if r["local"]}
    assert "bon" in local and "build_image" not in local  # a dry run prints local jobs as `rule` too
    assert {"build_image", "prepare_data", "sft", "label_preferences", "rm_train", "ppo", "gold_eval",
            "bon_sample", "bon"} <= set(jobs), sorted(jobs)
    assert "gold_rm_train" not in jobs  # coste2023 scores with the AlpacaFarm gold RM, trained elsewhere

    # the image: built by a (SLURM) job, and an input of every job that runs in it
    image = re.search(r"^\s+output: (singularity/rlhf-pipeline-[0-9a-f]{12}\.sif)$", run.stdout, re.M).group(1)
    for rule, job in jobs.items():
        if rule != "build_image":
            assert image in job["input"], f"{rule} does not depend on {image}"

    # every SLURM job's resources are the config's (default, then the rule's entry), at attempt 1
    for rule, job in jobs.items():
        if rule in local or rule == "build_image":  # build_image: container.smk's own sizing
            continue
        want = {**cfg["default"], **cfg.get(rule, {})}
        got = {k: job["resources"].get(k) for k in want}
        assert got == want, f"{rule}: planned {got}, config {want}"

    # GPU stages request GPUs, and the plugin turns that into --gpus=N with the CPUs the config gives
    # (not the profile's generic defaults); checkpointing stages get their preemption signal.
    gpu_rules = {"sft", "label_preferences", "rm_train", "ppo", "gold_eval", "bon_sample"}
    assert {r for r in cfg if cfg[r].get("gpu")} == gpu_rules
    assert cfg["sft"]["gpu"] > 1 and cfg["ppo"]["gpu"] > 1  # pythia-1.4b SFT and PPO: data-parallel
    for rule in gpu_rules:
        flags = sbatch_flags(rule, jobs[rule]["resources"]).split()
        assert f"--gpus={cfg[rule]['gpu']}" in flags, (rule, flags)
        assert f"--cpus-per-task={cfg[rule]['cpus_per_task']}" in flags and "--mem" in flags, (rule, flags)
        assert ("--signal=TERM@600" in flags) == (rule in ("sft", "rm_train", "ppo")), (rule, flags)
    prepare_flags = sbatch_flags("prepare_data", jobs["prepare_data"]["resources"]).split()
    assert not any(f.startswith("--gpus") for f in prepare_flags)


DEBATE_QUALITY = REPO / "config/experiments/debate_quality.yaml"


def test_debate_quality_plan_under_profile(tmp_path, fake_apptainer):
    """Issue 8's real scale: `snakemake -n --profile slurm --configfile debate_quality.yaml <target>` plans the
    QuALITY data, 8 chunk jobs on GPUs (the HF judge) and the summary (QuALITY is a local file the user provides:
    an empty stand-in here, as a dry run reads nothing)."""
    wf = copy_workflow(tmp_path / "wf")
    exp = yaml.safe_load(DEBATE_QUALITY.read_text())
    data = wf / exp["debate"]["dataset"]["path"]
    data.mkdir(parents=True)
    (data / "QuALITY.v1.0.1.htmlstripped.dev").write_text("")
    out, jobs = plan_under_profile(wf, fake_apptainer, DEBATE_QUALITY, "results/debate/quality_rr/judge.csv")
    n_chunks = exp["debate"]["tournaments"]["quality_rr"]["n_chunks"]
    assert n_chunks >= 8 and out.count("rule debate_chunk:") == n_chunks
    assert {"build_image", "debate_data", "debate_chunk", "debate_summary"} <= set(jobs), sorted(jobs)
    cfg = exp["resources"]["debate_chunk"]
    flags = sbatch_flags("debate_chunk", jobs["debate_chunk"]["resources"]).split()
    assert f"--gpus={cfg['gpu']}" in flags and f"--cpus-per-task={cfg['cpus_per_task']}" in flags, flags


def test_debate_training_plan_under_profile(tmp_path, fake_apptainer):
    """Issue 9's real scale: SFT of Llama-3-8B (LoRA) on the QuALITY tournament, two DPO iterations (beta 0.5)
    with their self-play tournaments, and the strength tournament plan under the SLURM profile; the training
    jobs get a GPU and their preemption signal."""
    wf = copy_workflow(tmp_path / "wf")
    exp = yaml.safe_load(DEBATE_QUALITY.read_text())
    data = wf / exp["debate"]["dataset"]["path"]
    data.mkdir(parents=True)
    (data / "QuALITY.v1.0.1.htmlstripped.dev").write_text("")
    out, jobs = plan_under_profile(wf, fake_apptainer, DEBATE_QUALITY, "results/debate/strength/judge_accuracy.csv")
    tr = exp["debate"]["training"]
    assert tr["dpo"]["beta"] == 0.5 and tr["sft"]["lora"]["enabled"] and tr["iterations"] >= 2
    assert out.count("rule debate_dpo:") == out.count("rule debate_dpo_pairs:") == tr["iterations"]
    assert out.count("rule debate_chunk:") == (exp["debate"]["tournaments"]["quality_rr"]["n_chunks"]
                                               + tr["iterations"] * tr["selfplay"]["n_chunks"]
                                               + tr["strength"]["n_chunks"])
    assert {"debate_sft", "debate_dpo", "debate_dpo_pairs", "debate_summary", "debate_strength"} <= set(jobs)
    for rule in ("debate_sft", "debate_dpo"):
        flags = sbatch_flags(rule, jobs[rule]["resources"]).split()
        assert "--gpus=1" in flags and "--signal=TERM@600" in flags, (rule, flags)


HH_FLANT5 = REPO / "config/experiments/hh_flant5_rm.yaml"


def test_hh_flant5_plan_under_profile(tmp_path, fake_apptainer):
    """Issue 15's experiment: one FLAN-T5 RM per readout head on HH's own pairs plans under the SLURM profile,
    each member with its own settings and a GPU, without SFT or a gold RM."""
    wf = copy_workflow(tmp_path / "wf")
    out, jobs = plan_under_profile(wf, fake_apptainer, HH_FLANT5, "results/rm/summary.csv")
    assert out.count("rule rm_train:") == 6
    assert not {"sft", "gold_rm_train"} & set(jobs), sorted(jobs)
    heads = re.findall(r'"head":"(\w+)"', out)
    assert {"attention", "layer_attention", "mean", "decoder_output", "first_token_attention"} <= set(heads)
    flags = sbatch_flags("rm_train", jobs["rm_train"]["resources"]).split()
    assert "--gpus=1" in flags, flags


REDTEAM_GPT2 = REPO / "config/experiments/redteam_gpt2.yaml"


def test_redteam_gpt2_plan_under_profile(tmp_path, fake_apptainer):
    """Issue 10's real scale: three plain and three curiosity runs of a GPT-2 attacker plan under the SLURM
    profile, each on a GPU with its preemption signal, and nothing of the default world is built."""
    wf = copy_workflow(tmp_path / "wf")
    out, jobs = plan_under_profile(wf, fake_apptainer, REDTEAM_GPT2, "results/redteam/summary.csv")
    assert out.count("rule redteam:") == 6
    assert not {"redteam_target", "redteam_classifier", "redteam_target_data"} & set(jobs), sorted(jobs)
    flags = sbatch_flags("redteam", jobs["redteam"]["resources"]).split()
    assert "--gpus=1" in flags and "--signal=TERM@600" in flags, flags
