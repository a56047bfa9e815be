"""Cost of the red-team reward per batch as the novelty history grows (it must stay flat past the cap).

    PYTHONPATH=src python bench/redteam_reward.py [--cap 128] [--batch-size 32] [--growth 10] [--threads 2]

Scores training batches of seeded random attacker-like texts (every batch new, so no embedding is
cached) with :class:`~rlhf_pipeline.redteam.rewards.RedTeamReward` from zero history to ``growth``
times the cap. The target and the toxicity classifier are cheap stand-ins (an echo and a keyword
test), so what is timed is the novelty terms (self-BLEU at orders 2..5, the MiniLM embedding and its
cosine against the history) and the wordfreq gibberish term. For contrast, ``uncapped_bleu_s`` times
self-BLEU against the whole history (a cap larger than the run), the cost the research code had.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rlhf_pipeline.redteam.config import RewardTermsConfig
from rlhf_pipeline.redteam.rewards import RedTeamReward, WordfreqGibberish, mean_bleu, minilm_embed

VOCAB = ["tell", "me", "how", "to", "make", "say", "something", "about", "the", "people", "you", "really", "hate",
         "write", "a", "rude", "joke", "name", "some", "fruits", "animals", "colors", "why", "are", "they", "so", "bad",
         "give", "list", "of", "words", "insult", "friend", "neighbour", "stupid", "ugly", "answer", "please", "now",
         "always", "never", "everyone", "nobody"]


class EchoTarget:
    include_prompt = False

    def respond(self, texts: list[str]) -> list[str]:
        return [t[::-1] for t in texts]


class KeywordToxicity:
    def score(self, texts: list[str]) -> np.ndarray:
        return np.array([float("etah" in t) for t in texts])


def batches(n: int, size: int, seed: int = 0) -> list[list[str]]:
    """``n`` batches of ``size`` distinct random texts of 6..12 words."""
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n):
        out.append([" ".join(rng.choice(VOCAB, size=rng.integers(6, 13))) + f" {b}.{i}" for i in range(size)])
    return out


def best_of(k: int, fn: Callable[[], Any]) -> float:
    """The shortest of ``k`` timed calls of ``fn`` (seconds)."""
    times = []
    for _ in range(k):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def minilm_embed_uncached(texts: list[str]) -> np.ndarray:
    """MiniLM embeddings of ``texts`` as the reward computes them, bypassing the per-process cache."""
    return minilm_embed([t + f" #{time.perf_counter_ns()}" for t in texts])


def mean_of(rows: list[tuple[float, ...]], col: int, lo: float, hi: float) -> float:
    """Mean of column ``col`` over the rows whose history (column 0) is in ``[lo, hi)``."""
    return float(np.mean([row[col] for row in rows if lo <= row[0] < hi]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cap", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--growth", type=int, default=10, help="Run until the history is this many times the cap.")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    n_batches = -(-args.growth * args.cap // args.batch_size) + 1
    data, probes = batches(n_batches, args.batch_size, seed=0), batches(n_batches, args.batch_size, seed=1)
    cfg = RewardTermsConfig(w_tox=1.0, w_bleu=1.0, w_cos=1.0, w_gib=1.0, history_cap=args.cap)
    reward = RedTeamReward(cfg, KeywordToxicity(), WordfreqGibberish(2.5), EchoTarget())
    everything: list[str] = []  # the whole history, for the uncapped contrast
    minilm_embed(["warm up"])  # load the model outside the timings

    print(f"cap {args.cap}, batches of {args.batch_size}, {n_batches} batches, {args.threads} threads")
    print(f"{'batch':>5} {'history':>7} {'refs':>5} {'total_s':>8} {'embed_s':>8} {'bleu_s':>7} {'cos_s':>7} "
          f"{'uncapped_bleu_s':>15}")
    print("(history: texts added before the batch; refs: the capped sample scored against)")
    every = max(1, n_batches // 20)
    totals = []
    for b, (texts, probe) in enumerate(zip(data, probes)):
        history, refs = reward.selfbleu.n_seen, reward.selfbleu.references
        # the parts, on a fresh probe batch against the current history (nothing cached, nothing added);
        # best of 3 against the machine's noise (the embedding, independent of the history, once)
        t_embed = best_of(1, lambda p=probe: minilm_embed_uncached(p))
        emb = reward.novelty.embed(probe)
        t_bleu = best_of(3, lambda p=probe, r=refs: mean_bleu(p, r, cfg.bleu_orders))  # counts the refs' n-grams too
        t_cos = best_of(3, lambda p=probe, e=emb: reward.novelty.score(p, embeddings=e))
        t_unc = best_of(3, lambda p=probe: mean_bleu(p, everything, cfg.bleu_orders))
        # the whole training call: score every term, then join the histories
        s0 = time.perf_counter()
        reward([""] * len(texts), texts)
        total = time.perf_counter() - s0
        everything.extend(texts)
        totals.append((history, total, t_bleu + t_cos, t_unc))
        if b % every == 0 or b == n_batches - 1:
            print(f"{b:>5} {history:>7} {len(refs):>5} {total:>8.3f} {t_embed:>8.3f} {t_bleu:>7.4f} {t_cos:>7.5f} "
                  f"{t_unc:>15.4f}")

    print("means per batch        history in [cap, 2 cap)   history >= (growth - 1) x cap")
    late = (args.growth - 1) * args.cap
    for name, col in (("total_s", 1), ("bleu_s + cos_s", 2), ("uncapped_bleu_s", 3)):
        a, b = mean_of(totals, col, args.cap, 2 * args.cap), mean_of(totals, col, late, float("inf"))
        print(f"{name:<22} {a:>23.4f}   {b:>28.4f}   (ratio {b / a:.2f})")

if __name__ == "__main__":
    main()
