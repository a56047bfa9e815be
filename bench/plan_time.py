"""How long Snakemake takes to plan (``snakemake -n``): the embedded default's figure, and a sweep of N PPO runs
on the demo (``ppo.runs`` replaced by N single-RM runs, members cycling over the demo's three RM seeds).

    python bench/plan_time.py [--runs 300] [--repeats 3] [--target results/plots/overoptimization.png]
                              [--only default|sweep] [--against OTHER_CHECKOUT [--against-snakemake PATH]]

Each plan runs in its own empty working directory (``-d``), so no result on disk changes it. The first plan of
each kind there is reported apart ("first"): it writes ``.snakemake/`` and the stage code hashes' cache
(``.snakemake/rlhf_pipeline/``, see ``rlhf_pipeline.codegraph``); the repeats after it are what a researcher
who replans after an edit of a config sees ("median" of ``--repeats``). ``--against`` plans the same with
another checkout (its own ``.venv/bin/snakemake`` unless ``--against-snakemake``, and its own ``src/`` first on
``PYTHONPATH``, so a venv shared by symlink does not run this checkout's package), alternating run by run
with this one so both see the same machine load, and checks that both plan the same number of jobs.
Wall times of the whole ``snakemake`` process (interpreter start and Snakemake's imports included), and its
CPU seconds (user + system, "cpu"): on a machine that runs other work too, compare checkouts by the CPU
column and by alternating runs, and give the load with any figure.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RM_SEEDS = (1, 2, 3)  # the demo's proxy RMs


def sweep_config(runs: int) -> str:
    """A config file's text: the demo with ``runs`` single-RM PPO runs in place of its own."""
    lines = ["base: config/config.yaml", "ppo:", "  runs:"]
    lines += [f"    r{i}: {{rm_seeds: [{RM_SEEDS[i % len(RM_SEEDS)]}], hparams: {{seed: {i}}}}}" for i in range(runs)]
    return "\n".join(lines) + "\n"


def plan(snakemake: Path, workflow: Path, workdir: Path, target: str,
         configfile: Path | None) -> tuple[float, float, int]:
    """Wall seconds of one ``snakemake -n``, its CPU seconds (user + system) and the number of jobs it planned."""
    cmd = [str(snakemake), "-n", "-d", str(workdir), "-s", str(workflow / "Snakefile")]
    cmd += ["--configfile", str(configfile)] if configfile is not None else []
    # its own package source: the venv's editable install (and its .pth hook) would import the one it was made from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(workflow / "src"), os.environ.get("PYTHONPATH", "")])}
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    out = subprocess.run([*cmd, "--", target], cwd=workflow, capture_output=True, text=True, env=env)
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    total = re.search(r"^total\s+(\d+)\s*$", out.stdout + out.stderr, re.MULTILINE)
    return seconds, cpu, int(total.group(1)) if total else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=300, help="PPO runs of the sweep plan (default 300: 1,211 jobs)")
    ap.add_argument("--repeats", type=int, default=3, help="timed plans of each kind after the first (median)")
    ap.add_argument("--target", default="results/plots/overoptimization.png")
    ap.add_argument("--only", choices=["default", "sweep"], help="time one of the two plans only")
    ap.add_argument("--against", type=Path, help="another checkout to time alongside (e.g. an older commit)")
    ap.add_argument("--against-snakemake", type=Path, help="its snakemake (default: OTHER/.venv/bin/snakemake)")
    args = ap.parse_args()

    checkouts = {"this": (ROOT, Path(sys.executable).with_name("snakemake"))}
    if args.against is not None:
        other = args.against.resolve()
        checkouts["against"] = (other, args.against_snakemake or other / ".venv" / "bin" / "snakemake")
    with tempfile.TemporaryDirectory(prefix="plan_time.") as tmp:
        sweep = Path(tmp, f"sweep{args.runs}.yaml")
        sweep.write_text(sweep_config(args.runs))
        plans = {"default figure": None, f"{args.runs} runs": sweep}
        plans = {k: v for k, v in plans.items() if args.only in (None, "sweep" if v else "default")}
        times: dict[tuple[str, str], list[float]] = {}
        cpus: dict[tuple[str, str], list[float]] = {}
        jobs: dict[tuple[str, str], int] = {}
        for _ in range(args.repeats + 1):
            for name, configfile in plans.items():
                for who, (workflow, snakemake) in checkouts.items():
                    workdir = Path(tmp, f"{who}-{name.replace(' ', '_')}")
                    workdir.mkdir(exist_ok=True)
                    seconds, cpu, jobs[who, name] = plan(snakemake, workflow, workdir, args.target, configfile)
                    times.setdefault((who, name), []).append(seconds)
                    cpus.setdefault((who, name), []).append(cpu)
    print(f"snakemake -n {args.target}: wall seconds; first plan in an empty working directory, then the median "
          f"(and each) of {args.repeats} more; cpu: the median CPU seconds (user + system) of those, which a "
          f"busy machine changes less than the wall time (load {os.getloadavg()[0]:.1f} at the end)")
    print(f"{'checkout':<10} {'plan':<16} {'jobs':>6} {'first':>7} {'median':>7} {'cpu':>6}  each")
    for (who, name), secs in times.items():
        first, rest, cpu = secs[0], secs[1:] or secs, cpus[who, name][1:] or cpus[who, name]
        each = " ".join(f"{s:.2f}" for s in rest)
        print(f"{who:<10} {name:<16} {jobs[who, name]:>6} {first:>7.2f} {statistics.median(rest):>7.2f} "
              f"{statistics.median(cpu):>6.2f}  {each}")
    if args.against is not None:
        for name in plans:
            if jobs["this", name] != jobs["against", name]:
                sys.exit(f"{name}: this checkout plans {jobs['this', name]} jobs, the other {jobs['against', name]}")


if __name__ == "__main__":
    main()
