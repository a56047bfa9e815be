"""Preference pairs for the proxy reward models, from one of two sources (``preferences.source``):

- ``policy_samples`` (the Coste et al. setup, the default): pairs of SFT-policy samples labelled by
  the gold reward model (below);
- ``dataset``: the dataset's own human preference pairs (``chosen``/``rejected`` columns of the
  prepared splits, e.g. Anthropic HH), as they are: no policy and no gold RM involved
  (``gold_chosen``/``gold_rejected`` are null; ``label_noise`` still flips the configured share).

For each prompt two responses are sampled from the SFT policy and scored by the gold RM; the
higher-scoring one is ``chosen``. Then exactly ``round(label_noise * n)`` pairs (a seeded random
subset) have chosen/rejected swapped and carry ``label_flipped: true`` - the noisy labels proxy RMs
are trained on (Coste et al. 2023 used 25%). Pairs whose two responses are identical or tie under
the gold RM carry no preference and are skipped; prompts are cycled until enough pairs exist.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Section, setting
from .errors import PipelineError
from .io import read_jsonl, write_jsonl


@dataclass
class PreferencesConfig(Section):
    """Settings of the ``preferences`` config section."""

    section = "preferences"

    source: str = setting("policy_samples", choices=("policy_samples", "dataset"),
                          help="policy_samples: SFT samples labelled by the gold RM; dataset: the dataset's own "
                          "chosen/rejected pairs (the first n_train / n_val rows of the train / val splits).")
    n_train: int = setting(1500, ge=1, help="Training pairs (sampled on the dataset's train prompts).")
    n_val: int = setting(300, ge=1, help="Held-out pairs (sampled on the dataset's val prompts).")
    max_new_tokens: int = setting(24, ge=1, help="Longest sampled response.")
    temperature: float = setting(1.0, gt=0, help="Sampling temperature of the SFT policy.")
    top_k: int = setting(0, ge=0, help="Top-k sampling (0 = off).")
    label_noise: float = setting(0.25, ge=0, lt=0.5, help="Fraction of pairs whose label is flipped, in [0, 0.5).")
    batch_size: int = setting(64, ge=1, help="Generation and gold-scoring batch size.")
    seed: int = setting(0, help="Seed for sampling and for choosing the flipped pairs.")


def flip_labels(pairs: list[dict[str, Any]], noise: float, seed: int) -> list[dict[str, Any]]:
    """Swap chosen/rejected on exactly ``round(noise * len(pairs))`` seeded-random pairs."""
    n_flip = round(noise * len(pairs))
    flipped = set(random.Random(seed).sample(range(len(pairs)), n_flip))
    out = []
    for i, p in enumerate(pairs):
        p = dict(p)
        p["label_flipped"] = i in flipped
        if p["label_flipped"]:
            p["chosen"], p["rejected"] = p["rejected"], p["chosen"]
            p["gold_chosen"], p["gold_rejected"] = p["gold_rejected"], p["gold_chosen"]
        out.append(p)
    return out


def _make_pairs(policy, tok, scorer, prompts: list[str], n: int, cfg: PreferencesConfig,
                seed: int, desc: str) -> list[dict[str, Any]]:
    from .models.generation import sample_responses

    pairs: list[dict[str, Any]] = []
    rnd = random.Random(seed)
    attempt = 0
    while len(pairs) < n:
        need = n - len(pairs)
        # Over-sample a little: some pairs are ties and get skipped.
        batch_prompts = [prompts[rnd.randrange(len(prompts))] for _ in range(int(need * 1.15) + 1)]
        doubled = [p for p in batch_prompts for _ in range(2)]
        responses = sample_responses(policy, tok, doubled, max_new_tokens=cfg.max_new_tokens,
                                     temperature=cfg.temperature, top_k=cfg.top_k,
                                     batch_size=cfg.batch_size, seed=seed + 1000 * attempt,
                                     desc=f"{desc}: sampling")
        scores = scorer(doubled, responses)
        for i, prompt in enumerate(batch_prompts):
            a, b = responses[2 * i], responses[2 * i + 1]
            sa, sb = float(scores[2 * i]), float(scores[2 * i + 1])
            if a == b or sa == sb:
                continue
            if sa < sb:
                a, b, sa, sb = b, a, sb, sa
            pairs.append({"prompt": prompt, "chosen": a, "rejected": b,
                          "gold_chosen": sa, "gold_rejected": sb})
            if len(pairs) == n:
                break
        attempt += 1
        if attempt > 20:
            raise PipelineError(f"{desc}: could not sample {n} distinct pairs (policy samples are all identical?)")
    return pairs


def label_preferences(cfg: PreferencesConfig, policy_dir: str | Path, gold_rm: str | Path,
                      train_prompts_path: str | Path, val_prompts_path: str | Path,
                      out_train: str | Path, out_val: str | Path,
                      is_alpacafarm_rm: bool = False) -> dict[str, Any]:
    """Sample, gold-label and noise the preference pairs; write ``out_train`` and ``out_val``."""
    from transformers import AutoModelForCausalLM

    from .models import load_tokenizer
    from .reward.gold import gold_scorer

    train_prompts = [r["prompt"] for r in read_jsonl(train_prompts_path, required=["prompt"])]
    val_prompts = [r["prompt"] for r in read_jsonl(val_prompts_path, required=["prompt"])]
    for path, rows in ((train_prompts_path, train_prompts), (val_prompts_path, val_prompts)):
        if not rows:
            raise PipelineError(f"{path}: no prompts")
    scorer = gold_scorer(str(gold_rm), is_alpacafarm_rm=is_alpacafarm_rm, batch_size=cfg.batch_size)
    tok = load_tokenizer(str(policy_dir))
    policy = AutoModelForCausalLM.from_pretrained(str(policy_dir))

    train = _make_pairs(policy, tok, scorer, train_prompts, cfg.n_train, cfg, cfg.seed, "train pairs")
    val = _make_pairs(policy, tok, scorer, val_prompts, cfg.n_val, cfg, cfg.seed + 1, "val pairs")
    train = flip_labels(train, cfg.label_noise, cfg.seed)
    val = flip_labels(val, cfg.label_noise, cfg.seed + 1)
    write_jsonl(out_val, val)
    write_jsonl(out_train, train)
    n_flip = sum(p["label_flipped"] for p in train)
    return {"n_train": len(train), "n_val": len(val), "label_noise": cfg.label_noise,
            "train_flipped_fraction": n_flip / len(train)}


def dataset_preferences(cfg: PreferencesConfig, train_path: str | Path, val_path: str | Path,
                        out_train: str | Path, out_val: str | Path) -> dict[str, Any]:
    """``source: dataset``: the first ``n_train`` / ``n_val`` chosen/rejected rows of the prepared
    splits as preference files (``label_noise`` flips as for sampled pairs)."""
    out = {}
    for name, path, n, seed, dest in (("train", train_path, cfg.n_train, cfg.seed, out_train),
                                      ("val", val_path, cfg.n_val, cfg.seed + 1, out_val)):
        rows = read_jsonl(path, required=["prompt", "chosen", "rejected"])[:n]
        if not rows:
            raise PipelineError(f"{path}: no preference pairs; preferences.source: dataset needs rows with "
                                "'prompt', 'chosen' and 'rejected'")
        pairs = [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"],
                  "gold_chosen": None, "gold_rejected": None} for r in rows]
        pairs = flip_labels(pairs, cfg.label_noise, seed)
        write_jsonl(dest, pairs)
        out[f"n_{name}"] = len(pairs)
    return {**out, "label_noise": cfg.label_noise, "source": "dataset"}

