"""Real experiment configs resolve and plan the jobs they promise (snakemake -n)."""

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
