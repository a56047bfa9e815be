"""PPO throughput on the default tiny policy (CPU): episodes/s, generated tokens/s, peak RSS.

    python bench/ppo_throughput.py [--steps 3] [--batch-size 32] [--threads 2]

Uses the PPOConfig defaults otherwise (so it measures the embedded default's settings) and a
cheap deterministic reward (fraction of response words starting with a-m), so the figures are
the PPO loop's own cost: generation, three forward passes, ppo_epochs of updates.
"""

from __future__ import annotations

import argparse
import csv
import resource
import tempfile
import time
from pathlib import Path

import torch

from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.ppo import PPOConfig, train_ppo


def first_half_reward(prompts: list[str], responses: list[str]) -> torch.Tensor:
    return torch.tensor([sum(w[0] < "n" for w in r.split()) / max(1, len(r.split())) for r in responses])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=PPOConfig.batch_size)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tok = load_tokenizer("minilm")
        model = load_causal_lm(None, tok)
        model.save_pretrained(tmp / "policy")
        tok.save_pretrained(tmp / "policy")
        n_params = sum(p.numel() for p in model.parameters())
        cfg = PPOConfig(total_episodes=args.steps * args.batch_size, batch_size=args.batch_size,
                        eval_interval=10**9, checkpoint_interval=10**9, log_with="none")
        prompts = [f"Write about topic {i}." for i in range(256)]
        t0 = time.time()
        train_ppo(cfg, str(tmp / "policy"), first_half_reward, prompts, prompts[:8],
                  tmp / "out", tmp / "ckpt")
        wall = time.time() - t0
        with open(tmp / "out" / "train_log.csv") as f:
            rows = list(csv.DictReader(f))

    step_time = sum(float(r["time"]) for r in rows)
    tokens = sum(float(r["response_length"]) * cfg.batch_size for r in rows)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(f"policy: {n_params / 1e6:.1f}M params; {len(rows)} steps x {cfg.batch_size} rollouts, "
          f"{cfg.max_new_tokens} max new tokens, {cfg.ppo_epochs} PPO epochs, {args.threads} threads")
    print(f"episodes/s:          {len(rows) * cfg.batch_size / step_time:.2f}")
    print(f"generated tokens/s:  {tokens / step_time:.1f}")
    print(f"seconds per step:    {step_time / len(rows):.2f} (whole call incl. load and evals: {wall:.1f} s)")
    print(f"peak RSS:            {peak_rss_mb:.0f} MiB")


if __name__ == "__main__":
    main()
