"""Inputs shared by the evaluation tests (built by hand): a word-count gold scorer, best-of-n
samples, a PPO eval directory whose newest file may end mid-row, and gold-eval tables of replicates."""

import json

import numpy as np
import pandas as pd


def word_count(prompts, responses):
    """A small deterministic gold scorer: number of words in the response."""
    return np.array([len(r.split()) for r in responses], dtype=float)


PROXY = np.array([0.1, 0.4, 0.2, 0.3])
GOLD = np.array([1.0, 2.0, 3.0, 4.0])


def write_samples(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def bon_rows():
    # Two prompts, N=4 each, K=2 members. Member means: p1 [0.1, 0.4, 0.2, 0.3], p2 [1, 2, 3, 4].
    rows = []
    for p, g in zip(PROXY, GOLD):
        scores = [p - 0.05, p + 0.05]
        rows.append({"prompt": "p1", "response": "r", "proxy_scores": scores, "gold_reward": g})
    for p, g in zip([1.0, 2.0, 3.0, 4.0], [0.0, 10.0, 20.0, -30.0]):
        rows.append({"prompt": "p2", "response": "r", "proxy_scores": [p, p], "gold_reward": g})
    return rows


def eval_row(step, response, kl, proxy):
    return {
        "step": step,
        "prompt": "Tell me",
        "response": response,
        "proxy_scores": [proxy, proxy],
        "proxy_reward": proxy,
        "ensemble_variance": 0.0 if step == 0 else 0.5,
        "kl": kl,
        "response_length": len(response.split()),
    }


def write_eval_dir(d, truncate_last=True):
    d.mkdir(parents=True)
    steps = {
        0: [("a b", 0.0, 1.0), ("a b c d", 0.0, 3.0)],
        10: [("a b c", 1.0, 2.0), ("a b c d e", 3.0, 4.0), ("a", 2.0, 0.0)],
        20: [("a b c d e f", 4.0, 5.0), ("a b", 4.0, 5.0), ("x y z", 9.0, 9.0)],
    }
    for step, rows in steps.items():
        text = "".join(json.dumps(eval_row(step, *r)) + "\n" for r in rows)
        if step == 20 and truncate_last:
            text = text[: text.rindex("{") + 25]  # the run stopped mid-write of the last row
        (d / f"step{step:06d}.jsonl").write_text(text)
    return d


def gold_table(gold, kl, se=0.1, n=8):
    steps = list(range(0, 10 * len(gold), 10))
    return pd.DataFrame({"step": steps, "n": n, "kl": kl, "kl_se": se, "sqrt_kl": np.sqrt(kl),
                         "proxy_reward": [g + 1 for g in gold], "proxy_reward_se": se,
                         "gold_reward": gold, "gold_reward_se": se})
