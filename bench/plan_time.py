"""How long Snakemake takes to plan (``snakemake -n``): the embedded default's figure, and a sweep of N PPO runs
on the demo (``ppo.runs`` replaced by N single-RM runs, members cycling over the demo's three RM seeds).

    python bench/plan_time.py [--runs 300] [--repeats 3] [--target results/plots/overoptimization.png]
                              [--against OTHER_CHECKOUT [--against-snakemake PATH]]

Each plan runs in its own empty working directory (``-d``), so no result on disk changes it. The first plan of
each kind there is reported apart ("first"): it writes ``.snakemake/`` and the stage code hashes' cache
(``.snakemake/rlhf_pipeline/``, see ``rlhf_pipeline.codegraph``); the repeats after it are what a researcher
who replans after an edit of a config sees ("median" of ``--repeats``). ``--against`` plans the same with
another checkout (its own ``.venv/bin/snakemake`` unless ``--against-snakemake``), alternating run by run
with this one so both see the same machine load, and checks that both plan the same number of jobs.
Wall times of the whole ``snakemake`` process (interpreter start and Snakemake's imports included).
"""

from __future__ import annotations

import argparse
import re
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


def plan(snakemake: Path, workflow: Path, workdir: Path, target: str, configfile: Path | None) -> tuple[float, int]:
    """Wall seconds of one ``snakemake -n`` and the number of jobs it planned."""
    cmd = [str(snakemake), "-n", "-d", str(workdir), "-s", str(workflow / "Snakefile")]
    cmd += ["--configfile", str(configfile)] if configfile is not None else []
    start = time.perf_counter()
    out = subprocess.run([*cmd, "--", target], cwd=workflow, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    total = re.search(r"^total\s+(\d+)\s*$", out.stdout + out.stderr, re.MULTILINE)
    return seconds, int(total.group(1)) if total else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=300, help="PPO runs of the sweep plan (default 300: 1,211 jobs)")
    ap.add_argument("--repeats", type=int, default=3, help="timed plans of each kind after the first (median)")
    ap.add_argument("--target", default="results/plots/overoptimization.png")
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
        times: dict[tuple[str, str], list[float]] = {}
        jobs: dict[tuple[str, str], int] = {}
        for _ in range(args.repeats + 1):
            for name, configfile in plans.items():
                for who, (workflow, snakemake) in checkouts.items():
                    workdir = Path(tmp, f"{who}-{name.replace(' ', '_')}")
                    workdir.mkdir(exist_ok=True)
                    seconds, jobs[who, name] = plan(snakemake, workflow, workdir, args.target, configfile)
                    times.setdefault((who, name), []).append(seconds)
    print(f"snakemake -n {args.target}: wall seconds; first plan in an empty working directory, then the median "
          f"(and each) of {args.repeats} more")
    print(f"{'checkout':<10} {'plan':<16} {'jobs':>6} {'first':>7} {'median':>7}  each")
    for (who, name), secs in times.items():
        first, rest = secs[0], secs[1:] or secs
        each = " ".join(f"{s:.2f}" for s in rest)
        print(f"{who:<10} {name:<16} {jobs[who, name]:>6} {first:>7.2f} {statistics.median(rest):>7.2f}  {each}")
    if args.against is not None:
        for name in plans:
            if jobs["this", name] != jobs["against", name]:
                sys.exit(f"{name}: this checkout plans {jobs['this', name]} jobs, the other {jobs['against', name]}")


if __name__ == "__main__":
    main()
