"""Best-of-n: the unbiased estimator over N samples per prompt, its KL, and the stage.

Best-of-n draws n responses from the SFT policy and keeps the one the proxy objective likes best.
Instead of drawing fresh n-subsets, we draw N >= n samples per prompt once and average over *all*
n-subsets exactly (Coste et al. 2023; Gao et al. 2022): sorted by proxy ascending, the i-th
smallest sample (1-indexed) is the maximum of a uniformly random n-subset with probability

    w_i = C(i - 1, n - 1) / C(N, n),

so the expected target value (gold or proxy) of the proxy-argmax is sum_i w_i * target_(i).

The KL between the best-of-n policy and the base policy is (an upper bound, tight in practice)
``kl_bon(n) = log n - (n - 1) / n``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import PipelineError
from ..io import read_jsonl, write_csv
from .config import BestOfNConfig

#: Columns of ``bon.csv``, in order.
BON_COLUMNS = [
    "n",
    "kl",
    "sqrt_kl",
    "proxy_reward",
    "proxy_reward_se",
    "gold_reward",
    "gold_reward_se",
    "n_prompts",
]

#: Fields every row of the best-of-n samples file must carry.
SAMPLE_FIELDS = ["prompt", "response", "proxy_scores", "gold_reward"]


def sample_for_bon(cfg: BestOfNConfig, policy_dir: str, rm_model_dirs: Sequence[str],
                   member_ids: Sequence[int], gold_rm: str, prompts_path: str | os.PathLike,
                   out_path: str | os.PathLike, is_alpacafarm_rm: bool = False) -> None:
    """Sample ``n_samples`` responses for each of ``n_prompts`` prompts from the policy and score
    each with every proxy RM member (raw scores, ``member_ids`` order) and the gold RM.

    Rows: ``{prompt, response, proxy_scores: [K], member_ids: [K], gold_reward}``.
    """
    from transformers import AutoModelForCausalLM

    from ..io import write_jsonl
    from ..models import load_tokenizer
    from ..models.generation import sample_responses
    from ..reward.ensemble import EnsembleReward
    from ..reward.gold import gold_scorer

    if len(rm_model_dirs) != len(member_ids):
        raise PipelineError("bon-sample: give one member id per RM directory")
    prompts = [r["prompt"] for r in read_jsonl(prompts_path, required=["prompt"])][: cfg.n_prompts]
    if not prompts:
        raise PipelineError(f"{prompts_path}: no prompts")
    gold = gold_scorer(gold_rm, is_alpacafarm_rm=is_alpacafarm_rm, batch_size=cfg.batch_size)
    proxies = EnsembleReward(list(rm_model_dirs), standardize=False, batch_size=cfg.batch_size)
    tok = load_tokenizer(policy_dir)
    policy = AutoModelForCausalLM.from_pretrained(policy_dir)
    repeated = [p for p in prompts for _ in range(cfg.n_samples)]
    responses = sample_responses(policy, tok, repeated, max_new_tokens=cfg.max_new_tokens,
                                 temperature=cfg.temperature, top_k=cfg.top_k,
                                 batch_size=cfg.batch_size, seed=cfg.seed, desc="best-of-n sampling")
    members = proxies.member_scores(repeated, responses).detach().cpu().numpy()  # [K, B]
    gold_scores = gold(repeated, responses)
    write_jsonl(out_path, ({"prompt": p, "response": r, "proxy_scores": members[:, i].tolist(),
                            "member_ids": list(member_ids), "gold_reward": float(gold_scores[i])}
                           for i, (p, r) in enumerate(zip(repeated, responses))))


def kl_bon(n: int) -> float:
    """KL(best-of-n || base policy) = log n - (n - 1) / n (0 for n = 1)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return math.log(n) - (n - 1) / n


@lru_cache(maxsize=256)
def bon_weights(N: int, n: int) -> np.ndarray:
    """Probability that the i-th smallest of N samples (i = 1..N) is the max of a random n-subset.

    ``w_i = C(i-1, n-1) / C(N, n)``, computed with exact integers (Python's int division rounds
    correctly even for huge binomials). The weights sum to 1. The array is read-only (cached).
    """
    if not 1 <= n <= N:
        raise ValueError(f"best-of-n needs 1 <= n <= N, got n={n}, N={N}")
    total = math.comb(N, n)
    w = np.array([math.comb(i - 1, n - 1) / total for i in range(1, N + 1)], dtype=np.float64)
    w.flags.writeable = False
    return w


def bon_expected(proxy: np.ndarray, target: np.ndarray, n: int) -> float:
    """Unbiased best-of-n estimate of E[target of the proxy-argmax among n of the N samples].

    ``proxy`` and ``target`` are length-N arrays for ONE prompt. With ``target = proxy`` this is
    the expected best-of-n proxy score; with ``target = gold`` the expected gold score.

    Ties in ``proxy``: the argmax of a subset with several tied maxima is taken uniformly at
    random among them. Equivalently, tied samples share the summed weight of the sorted positions
    they occupy equally, so the result does not depend on the order of the input.
    """
    proxy = np.asarray(proxy, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if proxy.ndim != 1 or proxy.shape != target.shape:
        raise ValueError(f"proxy, target: need equal 1-D shapes, got {proxy.shape}, {target.shape}")
    if not np.all(np.isfinite(proxy)):
        raise ValueError("proxy scores must be finite")
    order = np.argsort(proxy, kind="stable")
    sorted_proxy = proxy[order]
    w = bon_weights(len(proxy), n)
    # Spread each tie group's total weight evenly over its members.
    _, group, counts = np.unique(sorted_proxy, return_inverse=True, return_counts=True)
    w = (np.bincount(group, weights=w) / counts)[group]
    return float(np.dot(w, target[order]))


def _check_ns(ns: Sequence[int], where: str) -> list[int]:
    if isinstance(ns, (str, bytes)) or not isinstance(ns, Sequence) or not ns:
        raise PipelineError(f"{where}: expected a non-empty list of integers >= 1, got {ns!r}")
    bad = [n for n in ns if isinstance(n, bool) or not isinstance(n, int) or n < 1]
    if bad:
        raise PipelineError(f"{where}: values must be integers >= 1, got {bad}")
    return sorted(set(ns))


def _standardize(scores: np.ndarray) -> np.ndarray:
    """Per-member (row) z-scores over all samples; a constant member is only centred."""
    std = scores.std(axis=1, keepdims=True)
    return (scores - scores.mean(axis=1, keepdims=True)) / np.where(std > 0, std, 1.0)


def best_of_n(
    samples_path: str | os.PathLike,
    objective: str,
    uwo_weight: float,
    ns: Sequence[int],
    out_csv: str | os.PathLike | None,
    standardize: bool = True,
    members: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Best-of-n curve of one objective: expected proxy and gold reward of the pick, per n.

    ``samples_path``: JSONL, N rows per prompt, each ``{prompt, response, proxy_scores: [K],
    gold_reward}`` (other fields are ignored). Member scores are (optionally standardised per
    member, over all samples and then) combined with
    ``rlhf_pipeline.reward.ensemble.combine(scores[K, B], objective, uwo_weight)``; ``members`` picks the rows of
    ``proxy_scores`` (ensemble members) the objective combines (default: all). The reported ``proxy_reward`` is
    that combined objective (on the standardised scale when ``standardize``).

    Returns one row per n with :data:`BON_COLUMNS` (means and standard errors over prompts), and
    writes it atomically to ``out_csv`` when given. Raises :class:`PipelineError` if some n
    exceeds the number N of samples of a prompt.
    """
    import torch

    from ..reward.ensemble import combine

    samples_path = Path(samples_path)
    ns = _check_ns(ns, where="best_of_n ns")
    rows = read_jsonl(samples_path, required=SAMPLE_FIELDS)
    if not rows:
        raise PipelineError(f"{samples_path}: no samples")

    groups: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(row["prompt"], []).append(i)
    smallest = min(groups, key=lambda p: len(groups[p]))
    N = len(groups[smallest])
    too_big = [n for n in ns if n > N]
    if too_big:
        raise PipelineError(
            f"{samples_path}: best-of-n n={too_big[0]} exceeds N={N}, the number of samples "
            f"for prompt {smallest[:60]!r}; choose ns <= {N} or sample more responses per prompt"
        )

    K = len(rows[0]["proxy_scores"]) if isinstance(rows[0]["proxy_scores"], list) else 0
    for lineno, row in enumerate(rows, 1):
        if K == 0 or not isinstance(row["proxy_scores"], list) or len(row["proxy_scores"]) != K:
            raise PipelineError(
                f"{samples_path}: row {lineno}: proxy_scores must be a non-empty list of floats "
                f"(one per ensemble member), of the same length in every row"
            )
    scores = np.array([r["proxy_scores"] for r in rows], dtype=np.float64).T  # [K, B]
    if members is not None:  # the run's ensemble: indices into proxy_scores
        bad = [m for m in members if not 0 <= m < K]
        if bad or not members:
            raise PipelineError(f"{samples_path}: member indices {list(members)} outside 0..{K - 1}")
        scores = scores[list(members)]
    if standardize:
        scores = _standardize(scores)
    proxy = combine(torch.as_tensor(scores), objective, uwo_weight).detach().cpu().numpy()
    proxy = proxy.astype(np.float64)  # [B]
    gold = np.array([r["gold_reward"] for r in rows], dtype=np.float64)  # [B]

    table = []
    for n in ns:
        per_prompt = pd.DataFrame(
            [
                (bon_expected(proxy[idx], proxy[idx], n), bon_expected(proxy[idx], gold[idx], n))
                for idx in map(np.asarray, groups.values())
            ],
            columns=["proxy", "gold"],
        )  # one row per prompt
        mean, se = per_prompt.mean(), per_prompt.sem()  # SE over prompts (NaN for one prompt)
        table.append(
            {
                "n": n,
                "kl": kl_bon(n),
                "sqrt_kl": math.sqrt(kl_bon(n)),
                "proxy_reward": mean["proxy"],
                "proxy_reward_se": se["proxy"],
                "gold_reward": mean["gold"],
                "gold_reward_se": se["gold"],
                "n_prompts": len(groups),
            }
        )
    df = pd.DataFrame(table, columns=BON_COLUMNS)
    if out_csv is not None:
        write_csv(df, out_csv)
    return df
