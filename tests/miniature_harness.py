"""Running an experiment's miniature overlay through the real rules, as a researcher would:
``python -m rlhf_pipeline miniature-assets <experiment>`` then ``snakemake --configfile
config/experiments/miniature/<experiment>.yaml <targets>``, in a fresh working directory, with the
Hugging Face hub switched off in the environment (so nothing can be downloaded, whatever the real config's
``hub_offline`` says)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
SCHEDULING = ("--cores", "2", "--max-threads", "1")
"""Two one-thread jobs at a time: the real configs ask for 4-32 CPUs per job, which on 2 cores would run the
tiny jobs one by one (each spends seconds importing torch); scheduling only, no setting changes."""


def make_assets(experiment: str, workdir: Path) -> None:
    """``python -m rlhf_pipeline miniature-assets <experiment>`` in ``workdir`` (the overlay's relative paths)."""
    workdir.mkdir(parents=True, exist_ok=True)
    r = subprocess.run([sys.executable, "-m", "rlhf_pipeline", "miniature-assets", experiment], cwd=workdir,
                       env={**os.environ, **OFFLINE}, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]


def run_rules(experiment: str, workdir: Path, targets: list[str] | None = None,
              extra_configfiles: tuple[Path, ...] = (), timeout: int = 1200) -> None:
    """The real rules on the experiment's overlay (then ``extra_configfiles``) to ``targets`` (None: the
    config's own ``targets``, what `snakemake` with no target builds). Fails the test with the end of
    Snakemake's output when a step fails."""
    overlay = ROOT / "config/experiments/miniature" / f"{experiment}.yaml"
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(overlay), *map(str, extra_configfiles), *SCHEDULING]
    cmd += ["--", *targets] if targets else []
    r = subprocess.run(cmd, env={**os.environ, **OFFLINE}, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]


def run_miniature(experiment: str, workdir: Path, targets: list[str] | None = None,
                  extra_configfiles: tuple[Path, ...] = (), timeout: int = 1200) -> float:
    """:func:`make_assets` then :func:`run_rules`; the wall seconds."""
    start = time.monotonic()
    make_assets(experiment, workdir)
    run_rules(experiment, workdir, targets, extra_configfiles, timeout)
    return time.monotonic() - start
