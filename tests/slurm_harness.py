"""A one-node SLURM cluster on localhost, for the `slurm`-marked tests.

`ensure_cluster()` is idempotent: it installs Debian's `slurm-wlm` and `munge` with apt-get when
they are missing, writes /etc/slurm/slurm.conf (srun inside a job reads only that path, not
$SLURM_CONF), starts munged, slurmctld and slurmd, and waits until `sinfo` shows the node idle.
`stop_cluster()` stops only the daemons this module started, by the pids in their pid files.

Accounting is off (no slurmdbd), so Snakemake's SLURM executor must be run with
`--slurm-status-command squeue` and `--slurm-no-account`; MinJobAge keeps finished jobs visible to
squeue long enough for it.

Run by hand (as root):  python tests/slurm_harness.py up | down | status
In tests:  `from slurm_harness import slurm_cluster` (a session fixture) and mark the tests `slurm`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by rlhf-pipeline tests/slurm_harness.py"
BASE = Path("/var/tmp/rlhf-slurm")  # state, spool, logs and pid files of the test cluster
PARTITION = "debug"
PACKAGES = ("slurm-wlm", "munge")
MUNGE_SOCKET = Path("/run/munge/munge.socket.2")


def unavailable_reason() -> str | None:
    """Why the harness cannot run here (None when it can): it needs root and apt-get."""
    if os.name != "posix" or os.geteuid() != 0:
        return "the SLURM harness needs root (it installs slurm-wlm/munge and starts their daemons)"
    if shutil.which("apt-get") is None:
        return "the SLURM harness needs apt-get to install slurm-wlm and munge"
    if CONF.exists() and MARKER not in CONF.read_text():
        return f"{CONF} exists and was not written by this harness; refusing to overwrite a real cluster's config"
    return None


def _run(cmd: list[str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def ensure_installed() -> None:
    """apt-get install slurm-wlm and munge, unless their daemons are already there."""
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged")):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        res = _run(cmd, timeout=900, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-2000:]}")


def real_memory_mb() -> int:
    """Memory the node offers to jobs: MemTotal less 10% (at least 512 MB kept back)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            total = int(line.split()[1]) // 1024
            return max(total - max(total // 10, 512), 256)
    raise RuntimeError("MemTotal not found in /proc/meminfo")


def slurm_conf(host: str, cpus: int, mem_mb: int, base: Path = BASE) -> str:
    """slurm.conf of the one-node test cluster (no cgroups, no accounting, cores+memory as resources)."""
    return f"""{MARKER}
ClusterName=rlhftest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# finished jobs stay visible to squeue/scontrol this long (the executor's squeue status queries and the
# tests' `scontrol show job` checks need it; the default 300 s is shorter than a workflow test)
MinJobAge=600
SchedulerParameters=sched_interval=2
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
NodeName={host} CPUs={cpus} RealMemory={mem_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _pid_alive(pidfile: Path) -> int | None:
    """The pid in `pidfile` when that process is alive (a zombie counts as gone), else None."""
    try:
        pid = int(pidfile.read_text().split()[0])
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return None if state in ("Z", "X") else pid
    except (OSError, ValueError, IndexError):
        return None


@dataclass
class Cluster:
    """What `ensure_cluster` found or started; `started` lists the daemons it launched itself."""

    host: str
    partition: str = PARTITION
    base: Path = BASE
    started: list[str] = field(default_factory=list)

    @property
    def slurmctld_log(self) -> Path:
        return self.base / "slurmctld.log"


PIDFILES = {
    "munged": MUNGE_SOCKET.parent / "munged.pid",  # munge's own paths: munged insists on safe dirs
    "slurmctld": BASE / "slurmctld.pid",
    "slurmd": BASE / "slurmd.pid",
}


def _start_munged() -> bool:
    if _pid_alive(PIDFILES["munged"]) or (MUNGE_SOCKET.exists() and _run(["munge", "-n"]).returncode == 0):
        return False
    MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    shutil.chown(MUNGE_SOCKET.parent, "munge", "munge")
    MUNGE_SOCKET.unlink(missing_ok=True)
    res = _run(["runuser", "-u", "munge", "--", "munged"])
    if res.returncode != 0:
        raise RuntimeError(f"munged did not start: {res.stderr.strip()}")
    return True


def node_state(host: str) -> str:
    res = _run(["sinfo", "-h", "-N", "-n", host, "-o", "%T"], timeout=20)
    return res.stdout.strip() if res.returncode == 0 else ""


def ensure_cluster(timeout: float = 90) -> Cluster:
    """Install, configure and start the one-node cluster unless it already runs; wait for `idle`."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    ensure_installed()
    host = socket.gethostname().split(".")[0]
    cluster = Cluster(host=host)
    for d in (BASE, BASE / "state", BASE / "spool"):
        d.mkdir(parents=True, exist_ok=True)

    text = slurm_conf(host, os.cpu_count() or 1, real_memory_mb())
    config_changed = not CONF.exists() or CONF.read_text() != text
    if config_changed:
        CONF.parent.mkdir(parents=True, exist_ok=True)
        CONF.write_text(text)

    if _start_munged():
        cluster.started.append("munged")
    if config_changed:  # node CPUs/memory and MinJobAge are read at start: restart, `reconfigure` is not enough
        for daemon in ("slurmd", "slurmctld"):
            _stop_daemon(daemon)
    for daemon in ("slurmctld", "slurmd"):
        if not _pid_alive(PIDFILES[daemon]):
            res = _run([daemon])  # both daemonize and write their pid file
            if res.returncode != 0:
                raise RuntimeError(f"{daemon} did not start: {res.stderr.strip()} (log: {BASE}/{daemon}.log)")
            cluster.started.append(daemon)

    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = node_state(host)
        if state == "idle" or state == "mixed":
            return cluster
        if state in ("down", "drained", "down*", "drained*"):
            _run(["scontrol", "update", f"nodename={host}", "state=resume"])
        time.sleep(1)
    raise RuntimeError(f"node {host} not idle after {timeout:.0f}s (state {state!r}); see {BASE}/slurmctld.log")


def _stop_daemon(name: str) -> None:
    """SIGTERM the harness daemon `name` (by its pid file) and wait up to 10 s for it to exit."""
    pid = _pid_alive(PIDFILES[name])
    if pid is None:
        return
    os.kill(pid, 15)
    for _ in range(100):
        if _pid_alive(PIDFILES[name]) is None:
            return
        time.sleep(0.1)


def stop_cluster(cluster: Cluster | None = None) -> None:
    """Stop the daemons `cluster` started (all three harness daemons when None), by pid.

    Once slurmctld is down, the harness's slurm.conf goes too: with a config naming a dead controller,
    every `scontrol` call (the SLURM executor plugin makes some whenever Snakemake starts) hangs ~5 s;
    without one it fails at once. `ensure_cluster` writes it again.
    """
    names = cluster.started if cluster is not None else list(PIDFILES)
    for name in ("slurmd", "slurmctld", "munged"):  # reverse start order
        if name in names:
            _stop_daemon(name)
    if _pid_alive(PIDFILES["slurmctld"]) is None and CONF.exists() and MARKER in CONF.read_text():
        CONF.unlink()


@pytest.fixture(scope="session")
def slurm_cluster():
    """The one-node cluster for the session; skipped only without root or apt-get."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    cluster = ensure_cluster()
    yield cluster
    stop_cluster(cluster)


# Files of the repo a workflow run needs: src/ for the per-stage code hashes (the code that runs is the
# installed package), singularity/ + lock + pyproject for the image hash once container.smk is included.
WORKFLOW_FILES = ("Snakefile", "workflow", "profiles", "config", "slurm", "src", "singularity", "pyproject.toml",
                  "requirements.lock", "README.md")


def copy_workflow(dst: Path) -> Path:
    """Copy the repo's workflow files to `dst`, so a test run writes results/ there, not in the repo."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.sif", ".snakemake"))
        elif src.exists():
            shutil.copy2(src, dst / name)
    return dst


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "status"
    if what == "up":
        c = ensure_cluster()
        print(f"node {c.host} idle; started: {c.started or 'nothing (already running)'}")
    elif what == "down":
        stop_cluster()
    else:
        print(_run(["sinfo"]).stdout or "no cluster")
