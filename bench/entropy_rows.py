"""The entropy's per-row sums of p log p on CPU, as ``_LogprobEntropy`` computes them (rlhf_pipeline.ppo.losses):
in the row blocks of ``row_blocks`` over a mini-batch's [192 x 30,522] logits, three ways: a batched ``bmm`` of
one-row matrices (what the code did before 2026-12-04), the product-sum per block (what it does), and one BLAS
dot per row. Prints median milliseconds per mini-batch at 1 and 2 threads, and the largest difference from
a float64 reference.

    python bench/entropy_rows.py [--rows 192] [--repeats 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rlhf_pipeline.ppo.losses import row_blocks

WAYS = {
    "bmm of one-row matrices": lambda p, lp: torch.bmm(p.unsqueeze(1), lp.unsqueeze(2)).view(-1),
    "product-sum per block": lambda p, lp: (p * lp).sum(-1),
    "a dot per row": lambda p, lp: torch.stack([torch.dot(x, y) for x, y in zip(p, lp)]),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=192, help="response tokens in a mini-batch (8 rollouts x 24)")
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    torch.manual_seed(0)
    logp = torch.log_softmax(torch.randn(args.rows, 30522) * 2, -1)
    probs = logp.exp()
    blocks = row_blocks(logp)
    want = (probs.double() * logp.double()).sum(-1)
    print(f"{args.rows} rows in {len(blocks)} blocks of {blocks[0].stop} rows")
    print("threads  way                       ms per mini-batch  max |error|")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        times = {name: [] for name in WAYS}
        for _ in range(args.repeats):
            for name, way in WAYS.items():
                t0 = time.perf_counter()
                out = torch.cat([way(probs[rows], logp[rows]) for rows in blocks])
                times[name].append(time.perf_counter() - t0)
        for name, way in WAYS.items():
            out = torch.cat([way(probs[rows], logp[rows]) for rows in blocks])
            error = (out.double() - want).abs().max().item()
            print(f"{threads:7d}  {name:24s}  {statistics.median(times[name]) * 1e3:17.2f}  {error:.1e}")


if __name__ == "__main__":
    main()
