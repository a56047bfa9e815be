"""Does an older checkout's PPO write the same results as this one's? Reruns a finished PPO run with the old
code on the same inputs and compares.

    python bench/ppo_same_as_old.py OLD_SRC [--run results/ppo/seed1]

``OLD_SRC`` is the ``src`` folder of the old checkout (``git worktree add /tmp/old 6131d6c``: ``/tmp/old/src``).
The run's ``manifest.json`` gives the PPO stage's arguments (SFT policy, RMs, prompts, config); hyperparameters
the old ``PPOConfig`` does not have are dropped (they must be ones whose default the old code behaves as, such as
``logprobs_from_sampling``). The old PPO writes into a temporary folder; this checkout's ``gold-eval`` scores its
eval samples as the run's own gold-eval did (its manifest: gold RM, batch size). Printed per eval step: how many
eval responses are the same text, and the largest difference of every ``gold_eval.csv`` column against the run's
own, next to its standard error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from rlhf_pipeline.io import read_jsonl


def old_ppo_fields(old_src: Path) -> set[str]:
    code = ("import dataclasses, json; from rlhf_pipeline.ppo import PPOConfig; "
            "print(json.dumps([f.name for f in dataclasses.fields(PPOConfig)]))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(old_src)},
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def old_argv(manifest: dict, fields: set[str], out_dir: Path) -> tuple[list[str], list[str]]:
    """The PPO stage's arguments with the outputs moved to ``out_dir`` and unknown hyperparameters dropped."""
    argv = list(manifest["argv"][1:])  # after the __main__.py path: "ppo", "--config", ...
    if argv[0] != "ppo":
        raise SystemExit(f"the manifest's stage is {argv[0]!r}, not ppo")
    config = json.loads(argv[argv.index("--config") + 1])
    dropped = sorted(k for k in config["hparams"] if k not in fields)
    config["hparams"] = {k: v for k, v in config["hparams"].items() if k in fields}
    argv[argv.index("--config") + 1] = json.dumps(config)
    for flag, value in (("--out-dir", out_dir / "run"), ("--ckpt-dir", out_dir / "ckpt"),
                        ("--manifest", out_dir / "manifest.json")):
        argv[argv.index(flag) + 1] = str(value)
    return argv, dropped


def gold_eval_argv(run: Path, eval_dir: Path, out: Path) -> list[str]:
    """The run's own gold-eval (from its manifest, parsed by the CLI's parser: same gold RM, batch size, and so
    padding and rounding) pointed at ``eval_dir``, writing ``out``."""
    from rlhf_pipeline.cli import build_parser

    own = build_parser().parse_args(json.loads((run / "gold_eval_manifest.json").read_text())["argv"][1:])
    return ["gold-eval", str(eval_dir), own.gold_rm, "--batch-size", str(own.batch_size), "--out", str(out),
            *(["--is-alpacafarm-rm"] if own.is_alpacafarm_rm else [])]


def same_responses(new_eval: Path, old_eval: Path) -> dict[int, tuple[int, int]]:
    """{step: (same response texts, rows)} over the eval sample files of both runs."""
    out = {}
    for path in sorted(new_eval.glob("step*.jsonl")):
        new = [row["response"] for row in read_jsonl(path, ["response"])]
        old_path = old_eval / path.name
        old = [row["response"] for row in read_jsonl(old_path, ["response"])] if old_path.exists() else []
        out[int(path.stem[4:])] = (sum(a == b for a, b in zip(new, old)), len(new))
    return out


def run_stage(argv: list[str], env: dict[str, str] | None = None) -> None:
    """``python -m rlhf_pipeline *argv``, its output dropped (it raises if the stage fails)."""
    subprocess.run([sys.executable, "-m", "rlhf_pipeline", *argv], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old_src", type=Path, help="the old checkout's src folder")
    ap.add_argument("--run", type=Path, default=Path("results/ppo/seed1"), help="a finished PPO run's folder")
    args = ap.parse_args()
    manifest_path, new_csv = args.run / "manifest.json", args.run / "gold_eval.csv"
    for p in (args.old_src / "rlhf_pipeline", manifest_path, new_csv, args.run / "gold_eval_manifest.json",
              args.run / "eval"):
        if not p.exists():
            raise SystemExit(f"{p} does not exist (run the PPO run and its gold_eval first)")
    manifest = json.loads(manifest_path.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        argv, dropped = old_argv(manifest, old_ppo_fields(args.old_src), tmp)
        if dropped:
            print(f"hyperparameters the old PPOConfig does not have, dropped: {', '.join(dropped)}")
        t0 = time.time()
        run_stage(argv, {**os.environ, "PYTHONPATH": str(args.old_src.resolve())})
        old_wall = time.time() - t0
        old_csv = tmp / "gold_eval.csv"
        run_stage(gold_eval_argv(args.run, tmp / "run" / "eval", old_csv))
        old, new = pd.read_csv(old_csv), pd.read_csv(new_csv)
        same = same_responses(args.run / "eval", tmp / "run" / "eval")
    print(f"old PPO: {old_wall:.0f} s wall (load, {manifest.get('steps', '?')} steps, evals, checkpoints)")
    if len(old) != len(new) or not (old["step"].values == new["step"].values).all():
        raise SystemExit(f"the eval steps differ: old {old['step'].tolist()}, new {new['step'].tolist()}")
    print("step  same responses  |gold diff| (se)     |proxy diff| (se)    |KL diff| (se)")
    for i, step in enumerate(new["step"]):
        n_same, n = same.get(int(step), (0, 0))
        cells = [f"{abs(old.at[i, c] - new.at[i, c]):.2e} ({new.at[i, c + '_se']:.3f})"
                 for c in ("gold_reward", "proxy_reward", "kl")]
        print(f"{step:4d}  {n_same:5d} / {n:<6d}  " + "  ".join(f"{c:19s}" for c in cells))
    numeric = [c for c in new.columns if pd.api.types.is_numeric_dtype(new[c])]
    worst = (old[numeric] - new[numeric]).abs().max()
    print("largest difference per column:", ", ".join(f"{c} {v:.2e}" for c, v in worst.items() if v))
    within = all((old[c] - new[c]).abs().le(new[c + "_se"].clip(lower=1e-6)).all()  # step 0's KL has se ~0
                 for c in ("gold_reward", "proxy_reward", "kl"))
    print(f"every gold, proxy and KL mean within its standard error: {within}")


if __name__ == "__main__":
    main()
