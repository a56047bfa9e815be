"""Crash recovery of a local run: what docs/operations.md "After a crash" tells a user to type, and the default profile.

The integration test SIGKILLs a local `snakemake` and its PPO job together (a crash: nothing gets to clean
up, the lock and the incomplete-output markers stay), runs the recovery commands it reads from the README,
and compares the result with an uninterrupted run. The workflow is a black box here: a target, the files it
documents, and config keys; no rule params or CLI flags of the stages.

The profile tests ask Snakemake's own argument parser what a run gets from profiles/default/config.yaml.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests/configs/tiny.yaml"
README = ROOT / "docs" / "operations.md"  # the page with "#### After a crash"
DEFAULT_PROFILE = ROOT / "profiles" / "default"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
TARGET = "results/ppo/seed1/gold_eval.csv"
RUN = "results/ppo/seed1"
PPO_STEPS = 24  # ~0.3 s each on 2 cores: the kill lands after step 1's checkpoint with ~20 steps to spare


# --- the default profile ----------------------------------------------------------------------------


def parsed(monkeypatch, cwd: Path, *argv: str) -> dict:
    """The settings `snakemake <argv>` started in `cwd` runs with (profiles applied), as Snakemake parses them."""
    from snakemake.cli import parse_args

    monkeypatch.chdir(cwd)
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    _, args = parse_args(list(argv))
    return vars(args)


RECOVERY_SETTINGS = {"rerun_incomplete": True, "printshellcmds": True, "show_failed_logs": True}


def test_default_profile_applies_to_local_runs(monkeypatch, tmp_path):
    for cwd, argv in [(ROOT, [TARGET]),  # the README's commands, typed at the repo root
                      (tmp_path, ["-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path), TARGET])]:  # the tests'
        args = parsed(monkeypatch, cwd, *argv)
        assert {k: args[k] for k in RECOVERY_SETTINGS} == RECOVERY_SETTINGS, cwd
        assert args["cores"] is None and not args["keep_going"]  # deliberately unset: see the profile
    assert parsed(monkeypatch, ROOT, "--cores", "2", TARGET)["cores"] == 2  # `make demo`: the command line wins
    off = parsed(monkeypatch, ROOT, "--workflow-profile", "none", TARGET)
    assert not any(off[k] for k in RECOVERY_SETTINGS)  # the profile, not Snakemake's defaults, sets them


def comparable(value):
    """Parsed settings as plain data (some of Snakemake's setting objects compare by identity)."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if hasattr(value, "args"):  # Resources (default-resources): the text it was parsed from
        return value.args
    if hasattr(value, "raw"):  # Resource (a set-resources entry)
        return value.raw
    if hasattr(value, "__dict__") and not callable(value):  # e.g. MaxJobsPerTimespan
        return (type(value).__name__, comparable(vars(value)))
    return value


def test_default_profile_changes_nothing_under_slurm_profile(monkeypatch, tmp_path):
    """A workflow profile is layered on top of --profile and wins key by key, so it must agree with it."""
    from snakemake.profiles import ProfileConfigFileParser

    def profile(path: Path) -> dict:
        with path.open() as f:
            return ProfileConfigFileParser().parse(f)

    default, slurm = profile(DEFAULT_PROFILE / "config.yaml"), profile(ROOT / "slurm" / "config.yaml")
    assert {k: slurm.get(k) for k in default} == default  # every key it sets, slurm sets the same

    with_default = parsed(monkeypatch, ROOT, "--profile", "slurm", TARGET)
    without = parsed(monkeypatch, ROOT, "--profile", "slurm", "--workflow-profile", "none", TARGET)
    for args in (with_default, without):
        args.pop("workflow_profile")
    assert comparable(with_default) == comparable(without)
    assert with_default["executor"] == "slurm" and with_default["jobs"] == 50 and with_default["keep_going"]
    assert with_default["cores"] is None  # no cap on the SLURM jobs' threads


# --- a crash and the README's recovery --------------------------------------------------------------


def readme_recovery_commands() -> list[list[str]]:
    """The snakemake command lines of the first ```bash block under docs/operations.md's "#### After a crash"."""
    section = README.read_text().split("#### After a crash", 1)
    assert len(section) == 2, 'docs/operations.md has no "#### After a crash" section'
    block = section[1].split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line, comments=True) for line in block.splitlines() if line.startswith("snakemake ")]
    assert commands and all(c[-1] == TARGET for c in commands), block
    return [c[1:] for c in commands]  # the arguments after `snakemake`


def snakemake_argv(workdir: Path, *args: str) -> list[str]:
    # --configfile=PATH takes only PATH (`--configfile PATH` would also take the targets that follow it)
    return [*SNAKEMAKE, "--directory", str(workdir), f"--configfile={workdir / 'config.yaml'}", *args]


def run_ok(workdir: Path, *args: str) -> str:
    r = subprocess.run(snakemake_argv(workdir, *args), cwd=workdir, capture_output=True, text=True, timeout=600,
                       check=False)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"`snakemake {' '.join(args)}` failed ({r.returncode}):\n{out[-4000:]}"
    return out


def start(workdir: Path, *args: str, log: Path) -> subprocess.Popen:
    """snakemake in its own process group (its jobs run in it too), output to `log`."""
    with log.open("w") as f:
        return subprocess.Popen(snakemake_argv(workdir, *args), cwd=workdir, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group and wait until every member is gone (the PPO process included)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while True:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, f"processes of group {proc.pid} still alive 30 s after SIGKILL"
        time.sleep(0.1)


def checkpoints(ckpt_root: Path) -> list[Path]:
    """Completed PPO checkpoint directories (step<N>; a checkpoint being written is a hidden temp dir)."""
    return [p for p in ckpt_root.rglob("step*") if p.is_dir() and re.fullmatch(r"step\d+", p.name)]


def wait_for_checkpoint(proc: subprocess.Popen, ckpt_root: Path, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not checkpoints(ckpt_root):
        if proc.poll() is not None:
            pytest.fail(f"snakemake exited ({proc.returncode}) before PPO wrote a checkpoint under {ckpt_root}; "
                        f"nothing to kill. Its output:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no PPO checkpoint under {ckpt_root} after {timeout:.0f} s:\n{log.read_text()[-4000:]}")
        time.sleep(0.05)


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)}


def assert_same_ppo_results(got: Path, want: Path) -> None:
    """Eval samples, train log (less wall-clock columns), final model and gold eval of two runs, exactly."""
    evals = sorted(p.name for p in (want / RUN / "eval").glob("*.jsonl"))
    assert len(evals) > 1 and sorted(p.name for p in (got / RUN / "eval").glob("*.jsonl")) == evals
    for name in evals:
        assert (got / RUN / "eval" / name).read_bytes() == (want / RUN / "eval" / name).read_bytes(), name

    logs = [pd.read_csv(d / RUN / "train_log.csv") for d in (got, want)]
    logs = [df.drop(columns=[c for c in df.columns if "time" in c.lower()]) for df in logs]
    assert len(logs[1]) == PPO_STEPS
    pd.testing.assert_frame_equal(logs[0], logs[1], check_exact=True)

    model_files = sorted(p.relative_to(want / RUN / "model") for p in (want / RUN / "model").rglob("*") if p.is_file())
    assert any(p.suffix == ".safetensors" for p in model_files), model_files
    assert sorted(p.relative_to(got / RUN / "model") for p in (got / RUN / "model").rglob("*") if p.is_file()) \
        == model_files
    for rel in model_files:
        assert (got / RUN / "model" / rel).read_bytes() == (want / RUN / "model" / rel).read_bytes(), rel

    assert (got / TARGET).read_bytes() == (want / TARGET).read_bytes()


@pytest.mark.integration
def test_sigkill_mid_ppo_then_readme_recovery_equals_uninterrupted_run(tmp_path):
    recovery = readme_recovery_commands()
    assert "--unlock" in recovery[0], "README must unlock first: a killed Snakemake leaves its lock behind"

    # tiny settings, a PPO long enough to be killed in the middle, checkpointing every step
    cfg = yaml.safe_load(TINY.read_text())
    cfg["ppo"]["hparams"].update(total_episodes=PPO_STEPS * cfg["ppo"]["hparams"]["batch_size"],
                                 checkpoint_interval=1)
    crashed, clean = tmp_path / "crashed", tmp_path / "uninterrupted"
    crashed.mkdir()
    (crashed / "config.yaml").write_text(yaml.safe_dump(cfg))
    ckpt_root = crashed / cfg["checkpoint_dir"] / "ppo"

    # Everything upstream of PPO once, then the same files in a second directory: the two runs differ only
    # in the crash. (copytree keeps mtimes, and .snakemake's records, so the copy plans PPO and gold eval only.)
    run_ok(crashed, "--cores", "2", "--omit-from", "ppo", "--", TARGET)
    shutil.copytree(crashed, clean, symlinks=True)

    procs = []
    try:
        # the uninterrupted run, alongside (each job is one thread: tiny.yaml's cpus_per_task 1)
        procs.append(reference := start(clean, "--cores", "2", TARGET, log=tmp_path / "uninterrupted.log"))
        # the run to crash: SIGKILL snakemake and the PPO job together once PPO has checkpointed
        procs.append(victim := start(crashed, "--cores", "2", TARGET, log=tmp_path / "crashed.log"))
        wait_for_checkpoint(victim, ckpt_root, tmp_path / "crashed.log")
        kill_group(victim)
        if (crashed / RUN / "model").exists() or (crashed / TARGET).exists():
            pytest.fail(f"PPO had finished when the kill landed: raise PPO_STEPS ({PPO_STEPS}) in {__file__}")
        # the state README describes: the dead run's lock, and PPO's outputs marked incomplete
        assert any((crashed / ".snakemake" / "locks").iterdir()), "SIGKILL left no lock: not the crash README covers"
        assert any((crashed / ".snakemake" / "incomplete").iterdir())

        # README's recovery, verbatim (plus where it runs and on which config)
        t0 = time.monotonic()
        outputs = [run_ok(crashed, *args) for args in recovery]
        recovery_s = time.monotonic() - t0
        assert all(str(DEFAULT_PROFILE) in out for out in outputs), "the default workflow profile was not used"
        assert job_counts(outputs[-1]) == {"ppo": 1, "gold_eval": 1}  # nothing upstream is redone

        assert reference.wait(timeout=600) == 0, (tmp_path / "uninterrupted.log").read_text()[-4000:]
    finally:
        for proc in procs:
            if proc.poll() is None:
                kill_group(proc)

    assert_same_ppo_results(crashed, clean)
    print(f"recovery commands took {recovery_s:.0f} s")
