"""The LM head's forward on CPU: F.linear against BlockedLMHead's column blocks (rlhf_pipeline.models.lm_head),
on the default tiny policy's shape (128 features, the 30,522-token vocabulary), for the row counts PPO uses:
8 (a sampling step of a mini-batch), 64 (an eval sampling step), 192 (a mini-batch's response tokens in the
update and the reference forward), at 1 and 2 threads. Prints median milliseconds over interleaved repeats
and checks that both give the same logits bit for bit.

    python bench/lm_head.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rlhf_pipeline.models.lm_head import BlockedLMHead


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    torch.manual_seed(0)
    linear = torch.nn.Linear(128, 30522, bias=False)
    blocked = BlockedLMHead(128, 30522, bias=False)
    blocked.weight = linear.weight
    print("rows  threads  F.linear ms  blocked ms  speed-up  equal")
    with torch.no_grad():
        for threads in (1, 2):
            torch.set_num_threads(threads)
            for rows in (8, 64, 192):
                x = torch.randn(rows, 128)
                times = {"linear": [], "blocked": []}
                for _ in range(args.repeats):
                    for name, head in (("linear", linear), ("blocked", blocked)):
                        t0 = time.perf_counter()
                        head(x)
                        times[name].append(time.perf_counter() - t0)
                a, b = (statistics.median(times[k]) * 1e3 for k in ("linear", "blocked"))
                same = torch.equal(linear(x), blocked(x))
                print(f"{rows:4d}  {threads:7d}  {a:11.2f}  {b:10.2f}  {a / b:7.2f}x  {same}")


if __name__ == "__main__":
    main()
