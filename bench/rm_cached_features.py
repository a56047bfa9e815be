"""Frozen-backbone RM head training: the backbone in the loop vs on cached features (CPU).

    python bench/rm_cached_features.py [--pairs 300] [--epochs 3] [--heads mean attention] [--threads 2]
                                       [--repeats 2]

For a tiny randomly initialised T5 (the tests' config on the MiniLM tokenizer) and the shipped
all-MiniLM-L6-v2 (``minilm``), trains each head with
:func:`rlhf_pipeline.reward.train.train_frozen_head` twice from the same seed: ``cache=False`` runs
the frozen backbone on every step's texts, ``cache=True`` runs it once over all texts first. Prints
the cache time, time per epoch and total per mode, the speed-up (in-loop total / cached total, and per
epoch), the cache's size, and the largest difference between the two runs' head weights. Each
timing is the fastest of ``--repeats`` runs (other jobs on the machine add noise).
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from rlhf_pipeline.models import load_tokenizer, resolve_name
from rlhf_pipeline.reward import RewardModel, RMConfig
from rlhf_pipeline.reward.heads import encode_texts
from rlhf_pipeline.reward.train import train_frozen_head

WORDS = ["the", "cat", "dog", "sat", "on", "a", "mat", "with", "red", "blue", "green", "house", "tree",
         "under", "quietly", "river", "seven", "bright", "morning", "stone"]


def synthetic_pairs(tok, n: int, max_length: int, seed: int = 0) -> tuple[list[list[int]], list[list[int]]]:
    """``n`` (chosen, rejected) token-id pairs: a random 4-40 word text ending 'excellent' vs 'terrible'."""
    rng = random.Random(seed)
    bases = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 40))) for _ in range(n)]
    return (encode_texts(tok, [b + " excellent" for b in bases], max_length),
            encode_texts(tok, [b + " terrible" for b in bases], max_length))


def backbones(tok):
    """``{name: built backbone}``: the tiny T5 and MiniLM."""
    from transformers import AutoModel, T5Config, T5Model

    torch.manual_seed(0)
    t5 = T5Model(T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                          num_heads=4, decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id,
                          eos_token_id=tok.eos_token_id))
    return {"tiny-t5": t5, "minilm": AutoModel.from_pretrained(resolve_name("minilm"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--heads", nargs="+", default=["mean", "attention"])
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    tok = load_tokenizer("minilm")
    chosen, rejected = synthetic_pairs(tok, args.pairs, args.max_length)
    tokens = sum(map(len, chosen + rejected)) / (2 * args.pairs)
    print(f"{args.pairs} pairs ({tokens:.1f} tokens per text on average, max {args.max_length}), "
          f"{args.epochs:g} epochs, batch {args.batch_size} pairs, {args.threads} threads, CPU")
    header = (f"{'backbone':<8} {'head':<10} {'params':>7} {'mode':<8} {'cache s':>8} {'s/epoch':>8} {'total s':>8} "
              f"{'cache MB':>9}  speed-up (total, per epoch)  max |dw|")
    print(header)
    for name, backbone in backbones(tok).items():
        n_params = sum(p.numel() for p in backbone.parameters()) / 1e6
        for head in args.heads:
            cfg = RMConfig(head=head, epochs=args.epochs, batch_size=args.batch_size, learning_rate=1e-3,
                           max_length=args.max_length, freeze_backbone=True)
            runs = {}
            for cache in (False, True):
                best = None
                for _ in range(args.repeats):
                    torch.manual_seed(1)
                    model = RewardModel.from_backbone(backbone, head=head, attention_layers=cfg.attention_layers,
                                                      freeze_backbone=True)
                    start = time.perf_counter()
                    info = train_frozen_head(model, tok, chosen, rejected, cfg, seed=1, cache=cache, device="cpu")
                    info["total_s"] = time.perf_counter() - start
                    info["per_epoch_s"] = info["head_train_s"] / args.epochs
                    if best is None or info["total_s"] < best[1]["total_s"]:
                        best = (model, info)
                runs[cache] = best
            (m_loop, loop), (m_cache, cached) = runs[False], runs[True]
            dw = max((p - q).abs().max().item() for (k, p), (_, q) in
                     zip(m_loop.named_parameters(), m_cache.named_parameters()) if not k.startswith("backbone."))
            for mode, info in (("in-loop", loop), ("cached", cached)):
                print(f"{name:<8} {head:<10} {n_params:>6.1f}M {mode:<8} {info['feature_cache_s']:>8.2f} "
                      f"{info['per_epoch_s']:>8.3f} {info['total_s']:>8.2f} {info['feature_cache_mb']:>9.1f}", end="")
                if mode == "cached":
                    total, epoch = loop["total_s"] / info["total_s"], loop["per_epoch_s"] / info["per_epoch_s"]
                    print(f"  {total:>6.1f}x, {epoch:>6.0f}x           {dw:.1e}")
                else:
                    print()


if __name__ == "__main__":
    main()
