"""Episodes/s of each optimiser (the project's PPO, TRL's GRPO, RLOO and online DPO) on the same policy, reward,
prompts and settings: the embedded default's tiny policy on its world tokenizer (as bench/ppo_throughput.py) and
the PPOConfig defaults (32 rollouts per step; GRPO and RLOO: 8 prompts x 4 completions, ppo_epochs passes).

    python bench/optimizer_throughput.py [--steps 8] [--optimizers ppo grpo rloo online_dpo] [--threads 2]

Episodes/s is the step count x batch_size over the summed step times of train_log.csv (evaluation and
checkpoints excluded, as in ppo_throughput.py); "whole call" includes loading, the step-0 and last evals and
the final save. On a GPU the same script measures the GPU (transformers generation; vLLM needs its extra).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch
from ppo_throughput import PROMPTS, first_half_reward, world_tokenizer

from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.ppo import PPOConfig, train_ppo
from rlhf_pipeline.ppo.trl_optim import train_trl


def measure(optimizer: str, steps: int, policy: Path, out: Path) -> dict:
    """One run of ``steps`` steps; its step times from train_log.csv and the whole call's wall time."""
    cfg = PPOConfig(total_episodes=steps * PPOConfig.batch_size, eval_interval=10**9, checkpoint_interval=10**9,
                    log_with="none", trajectories=True)
    t0 = time.time()
    if optimizer == "ppo":
        train_ppo(cfg, str(policy), first_half_reward, PROMPTS, PROMPTS[:8], out, out / "ckpt")
    else:
        train_trl(optimizer, cfg, str(policy), first_half_reward, PROMPTS, PROMPTS[:8], out, out / "ckpt")
    wall = time.time() - t0
    with open(out / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    return {"steps": len(rows), "step_time": sum(float(r["time"]) for r in rows), "wall": wall,
            "batch_size": cfg.batch_size, "length": sum(float(r["response_length"]) for r in rows) / len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--optimizers", nargs="+", default=["ppo", "grpo", "rloo", "online_dpo"],
                    choices=["ppo", "grpo", "rloo", "online_dpo"])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {args.threads} threads"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok = load_tokenizer(world_tokenizer(tmp))
        model = load_causal_lm(None, tok, seed=0)
        model.save_pretrained(tmp / "policy")
        tok.save_pretrained(tmp / "policy")
        print(f"policy: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params ({len(tok)} tokens); "
              f"{args.steps} steps x {PPOConfig.batch_size} rollouts; {device}")
        for optimizer in args.optimizers:
            r = measure(optimizer, args.steps, tmp / "policy", tmp / optimizer)
            print(f"{optimizer:11s} episodes/s {r['steps'] * r['batch_size'] / r['step_time']:6.2f}   "
                  f"s/step {r['step_time'] / r['steps']:.3f}   mean response length {r['length']:.1f}   "
                  f"whole call {r['wall']:.1f} s")


if __name__ == "__main__":
    main()
