"""PPO throughput on the default tiny policy (CPU): episodes/s, generated tokens/s, peak RSS, user and
system CPU time, and where a step's wall time goes (the trainer's phases).

    python bench/ppo_throughput.py [--steps 8] [--batch-size 32] [--threads 2] [--trajectories on|off|both] [--parts]
                                   [--vocab world|minilm|both]

Uses the PPOConfig defaults otherwise (so it measures the embedded default's settings) and a
cheap deterministic reward (fraction of response words starting with a-m), so the figures are
the PPO loop's own cost: generation, the reference and value forwards, ppo_epochs of updates, and the
trajectory log (``--trajectories both`` measures its overhead: a run without it, then one with it).
``--vocab``: the policy's vocabulary: a world tokenizer as the embedded default's (``tokenizer: world``;
``rlhf_pipeline.models.vocab.train_world_tokenizer`` of its synthetic train split and the benchmark's prompts;
the default), MiniLM's 30,522 tokens (the shapes before the world tokenizer: the trainer's own speed on a
vocabulary 50x larger), or both, one after the other.
Phases (``rlhf_pipeline.ppo.timing.PHASES``): generation (sampling, KV cache), policy_logprobs (a second
policy forward, only with ``logprobs_from_sampling: false``), ref_and_value (reference and value forwards; on
CPU they run on the sampling-noise worker while the next chunk is sampled, and this is what is left after the
last chunk: the main thread runs the forwards the worker has not started and waits for the one it is running),
scoring (decode + reward), update (GAE and the PPO epochs), logging (trajectory log, train_log.csv), eval
(steps 0 and last), checkpoint; "other" is step time outside them (batching, shaping, statistics).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.ppo import PPOConfig, train_ppo


def first_half_reward(prompts: list[str], responses: list[str]) -> torch.Tensor:
    return torch.tensor([sum(w[0] < "n" for w in r.split()) / max(1, len(r.split())) for r in responses])


@contextlib.contextmanager
def timed(owner, name: str, when=None):
    """Yield a list that collects the wall time of each call of ``owner.name`` (made when ``when()`` is true, if
    given); the attribute is restored after, as it was (a staticmethod stays one, an inherited one is inherited)."""
    raw, original, calls = vars(owner).get(name), getattr(owner, name), []

    def wrapper(*a, **kw):
        if when is not None and not when():
            return original(*a, **kw)
        t0 = time.perf_counter()
        try:
            return original(*a, **kw)
        finally:
            calls.append(time.perf_counter() - t0)
    setattr(owner, name, wrapper)
    try:
        yield calls
    finally:
        if raw is None:
            delattr(owner, name)
        else:
            setattr(owner, name, raw)


def update_parts() -> dict[str, tuple]:
    """(owner, attribute, only-when) of the calls ``--parts`` times: the update's forwards (with gradients; the
    reference and rollout forwards run without), its backward, clipping and optimizer step, and within them the
    LM head and the logprob/entropy function (rlhf_pipeline.models.lm_head, rlhf_pipeline.ppo.losses)."""
    import accelerate

    from rlhf_pipeline.models import lm_head
    from rlhf_pipeline.ppo import losses, trainer

    grad = torch.is_grad_enabled
    return {
        "policy forward": (trainer, "response_logits", grad),
        "  of which LM head forward": (lm_head.BlockedLMHead, "forward", grad),
        "value forward": (trainer, "response_values", grad),
        "logprob + entropy": (trainer, "logprobs_and_entropy", None),
        "backward": (accelerate.Accelerator, "backward", None),
        "  of which LM head backward": (lm_head._BlockedLinear, "backward", None),
        "  of which logprob + entropy backward": (losses._LogprobEntropy, "backward", None),
        "clip_grad_norm_": (accelerate.Accelerator, "clip_grad_norm_", None),
        "optimizer step": (torch.optim.AdamW, "step", None),
    }


PROMPTS = [f"Write about topic {i}." for i in range(256)]


def world_tokenizer(out_dir: Path) -> str:
    """A world tokenizer of the embedded default's synthetic train split and the benchmark's prompts, saved to
    ``out_dir``; returns its path."""
    from rlhf_pipeline.data.config import DatasetConfig
    from rlhf_pipeline.data.prepare import prepare_dataset
    from rlhf_pipeline.io import read_jsonl
    from rlhf_pipeline.models.vocab import train_world_tokenizer

    prepare_dataset(DatasetConfig(), out_dir / "data", seed=0)
    texts = [t for r in read_jsonl(out_dir / "data" / "train.jsonl") for t in (r["prompt"], r["response"])]
    train_world_tokenizer(texts + PROMPTS, out_dir / "tokenizer")
    return str(out_dir / "tokenizer")


def measure(args, trajectories: bool, vocab: str = "world") -> dict:
    """One PPO run of ``args.steps`` steps with the ``vocab`` tokenizer (minilm or world); its throughput and
    the trajectory log's size and cost (the time spent handing rollouts to the hooks, Parquet writes included)."""
    from rlhf_pipeline.ppo import trainer

    with contextlib.ExitStack() as stack:
        log_time = stack.enter_context(timed(trainer._Run, "_emit_rollout"))
        parts = {k: stack.enter_context(timed(*v)) for k, v in (update_parts() if args.parts else {}).items()}
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        tmp = Path(tmp)
        tok = load_tokenizer("minilm" if vocab == "minilm" else world_tokenizer(tmp))
        model = load_causal_lm(None, tok, seed=0)
        model.save_pretrained(tmp / "policy")
        tok.save_pretrained(tmp / "policy")
        n_params = sum(p.numel() for p in model.parameters())
        cfg = PPOConfig(total_episodes=args.steps * args.batch_size, batch_size=args.batch_size,
                        eval_interval=10**9, checkpoint_interval=10**9, log_with="none",
                        trajectories=trajectories, trajectory_chunk_steps=1)
        prompts = PROMPTS
        t0, cpu0 = time.time(), resource.getrusage(resource.RUSAGE_SELF)
        summary = train_ppo(cfg, str(tmp / "policy"), first_half_reward, prompts, prompts[:8],
                            tmp / "out", tmp / "ckpt")
        wall, cpu1 = time.time() - t0, resource.getrusage(resource.RUSAGE_SELF)
        with open(tmp / "out" / "train_log.csv") as f:
            rows = list(csv.DictReader(f))
        log_bytes = sum(p.stat().st_size for p in (tmp / "out" / "trajectories").glob("*.parquet"))
    step_time = sum(float(r["time"]) for r in rows)
    return {"cfg": cfg, "n_params": n_params, "vocab_size": len(tok), "steps": len(rows), "wall": wall,
            "step_time": step_time, "log_time": sum(log_time), "parts": parts,
            "tokens": sum(float(r["response_length"]) * cfg.batch_size for r in rows),
            "log_bytes": log_bytes, "phases": (summary or {}).get("phase_seconds"),
            "user": cpu1.ru_utime - cpu0.ru_utime, "sys": cpu1.ru_stime - cpu0.ru_stime}


def report(results: dict, args, vocab: str) -> None:
    """Print the figures of the runs of one vocabulary (``results``: trajectory log on/off -> measure())."""
    r = results[list(results)[-1]]
    cfg = r["cfg"]
    print(f"policy ({vocab} vocabulary, {r['vocab_size']} tokens): {r['n_params'] / 1e6:.1f}M params; "
          f"{r['steps']} steps x {cfg.batch_size} rollouts, "
          f"{cfg.max_new_tokens} max new tokens, {cfg.ppo_epochs} PPO epochs, {args.threads} threads")
    for mode, r in results.items():
        print(f"trajectory log {'on' if mode else 'off'}:")
        print(f"  episodes/s:          {r['steps'] * cfg.batch_size / r['step_time']:.2f}")
        print(f"  generated tokens/s:  {r['tokens'] / r['step_time']:.1f}")
        print(f"  seconds per step:    {r['step_time'] / r['steps']:.3f} (whole call incl. load and evals: "
              f"{r['wall']:.1f} s)")
        print(f"  CPU time (whole call): user {r['user']:.1f} s, system {r['sys']:.1f} s "
              f"({r['sys'] / max(r['user'] + r['sys'], 1e-9):.0%} system)")
        if r["phases"] is None:  # e.g. this script run against an older checkout (PYTHONPATH=old/src)
            print("  step time by phase:  not reported by this trainer")
        else:
            train = {k: v for k, v in r["phases"].items() if k not in ("eval", "checkpoint")}
            shares = {**train, "other": max(0.0, r["step_time"] - sum(train.values()))}
            print("  step time by phase:  " + ", ".join(f"{k} {v / r['step_time']:.0%}" for k, v in shares.items()))
            print(f"  outside the steps:   eval {r['phases']['eval']:.1f} s (steps 0 and {r['steps']}), "
                  f"checkpoint {r['phases']['checkpoint']:.1f} s")
        if mode:
            print(f"  trajectory log:      {r['log_time'] / r['steps'] * 1000:.1f} ms per step "
                  f"({r['log_time'] / r['step_time']:.2%} of step time), {r['log_bytes'] / r['steps'] / 1024:.1f} "
                  "KiB per step (a Parquet chunk per step, flushed every step: the worst case)")
        if r["parts"]:
            print("  update, median ms per mini-batch (calls):")
            for name, calls in r["parts"].items():
                median = f"{statistics.median(calls) * 1e3:7.2f}" if calls else "    n/a"
                print(f"    {name:38s} {median} ({len(calls)})")
    if len(results) == 2:
        off, on = (results[m]["step_time"] / results[m]["steps"] for m in (False, True))
        print(f"step time, on - off:   {on - off:+.3f} s per step ({(on - off) / off:+.1%}; noisy: two separate "
              "runs, see the direct measurement above)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8, help="PPO steps (more amortise the first step's warm-up)")
    ap.add_argument("--batch-size", type=int, default=PPOConfig.batch_size)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--trajectories", choices=("on", "off", "both"), default="on",
                    help="log trajectories (the default), not, or run both and print the logging overhead")
    ap.add_argument("--parts", action="store_true",
                    help="also time the parts of the PPO update: median ms per mini-batch (this checkout only)")
    ap.add_argument("--vocab", choices=("world", "minilm", "both"), default="world",
                    help="the policy's vocabulary: a world tokenizer's (the default's), MiniLM's 30,522 tokens "
                    "(the shapes before it), or both")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    modes = {"on": [True], "off": [False], "both": [False, True]}[args.trajectories]
    vocabs = {"minilm": ["minilm"], "world": ["world"], "both": ["world", "minilm"]}[args.vocab]
    for vocab in vocabs:
        report({mode: measure(args, mode, vocab) for mode in modes}, args, vocab)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(f"peak RSS:              {peak_rss_mb:.0f} MiB")


if __name__ == "__main__":
    main()
