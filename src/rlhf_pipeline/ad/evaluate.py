"""Evaluation of a language-format algorithm-distillation model on held-out histories.

1. **Prediction** (``metrics.csv``, metrics ``reward_mae``, ``reward_pearson``, ``action_loglik``): for
   held-out episodes, the model reads the episode's stream so far (the most recent whole episodes
   that fit) and then the episode's prompt and completion, and predicts the reward (greedy decoding
   after the template's reward label; the first number is parsed); the action log-likelihood is the
   mean log-probability per completion token. Condition ``history`` against the baseline
   ``no_history`` (the same episode with nothing before it).
2. **In-context improvement** (Laskin et al. 2022; ``incontext.csv``, ``incontext.png``, metrics
   ``incontext_slope_proxy`` / ``incontext_slope_gold`` / ``incontext_first`` / ``incontext_last``):
   the model writes a completion for a held-out prompt given the history so far, the completion is
   scored by the held-out task's proxy reward (the first held-out history's RM members and objective;
   the number shown to the model, as in training) and by the gold RM (never shown), the episode is
   appended to the history, repeat for K episodes. Conditions: ``history``; ``no_history`` (every
   episode alone); ``shuffled`` (the same growing history, its episodes shuffled before each
   generation); ``expert`` (the expert-distillation model, trained on final-policy episodes only,
   with its own history). Reported: reward against episode, and its least-squares slope with its
   standard error (scipy), per condition, proxy and gold.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import default_of
from ..runs import Ensemble, RunSettings
from ..stats import mean_se, pearson_se, slope_se
from .config import ContextFormat, InContextEval
from .data import History, episode_text, streams

CONDITIONS = ("history", "no_history", "shuffled", "expert")
METRIC_COLUMNS = ["metric", "condition", "value", "se", "n"]
_NUMBER = re.compile(r"-?\d+(?:\.\d*)?|-?\.\d+")


# ---- the template around the completion and the reward ------------------------------------------

def render_until(template: str, values: dict[str, Any], stop: str) -> str:
    """The template rendered up to (not including) the placeholder ``stop``."""
    out = []
    for literal, name, spec, conv in string.Formatter().parse(template):
        out.append(literal)
        if name is None:
            continue
        if name == stop:
            return "".join(out)
        value = values[name]
        out.append(format(repr(value) if conv == "r" else str(value) if conv == "s" else value, spec or ""))
    return "".join(out)


def stop_word(template: str) -> str | None:
    """The first word of the template's text after ``{response}`` (e.g. ``Reward``): where a generated
    completion ends (case-insensitive, as tokenizers may lowercase and drop newlines). None if none."""
    parts = list(string.Formatter().parse(template))
    for i, (_, name, _, _) in enumerate(parts):
        if name == "response" and i + 1 < len(parts):
            m = re.search(r"[A-Za-z]+", parts[i + 1][0])
            return m.group(0) if m else None
    return None


def cut_completion(text: str, word: str | None) -> str:
    """A generated completion up to the template's next label."""
    if word:
        m = re.search(rf"\b{re.escape(word)}\b", text, flags=re.IGNORECASE)
        if m:
            text = text[:m.start()]
    return text.strip()


def parse_reward(text: str) -> float:
    """The first number in a generated reward (spaces removed: "0. 87" -> 0.87); NaN when there is none."""
    m = _NUMBER.search(text.replace(" ", ""))
    return float(m.group(0)) if m else float("nan")


# ---- a causal LM reading contexts ---------------------------------------------------------------

class ContextLM:
    """A trained AD model that reads a history (episode texts) and a prefix, within ``context_length``."""

    def __init__(self, model_dir: str, fmt: ContextFormat, max_new_tokens: int, temperature: float):
        import torch
        from transformers import AutoModelForCausalLM

        from ..models import load_tokenizer

        self.tok = load_tokenizer(model_dir, padding_side="left")
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        self.fmt, self.max_new_tokens, self.temperature = fmt, max_new_tokens, temperature
        self.word = stop_word(fmt.template)

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def context_ids(self, history: Sequence[str], prefix: str, room: int) -> list[int]:
        """BOS (if any), the most recent whole history episodes that fit, then ``prefix``; ``room`` tokens
        are left free (for generation)."""
        bos = [self.tok.bos_token_id] if self.tok.bos_token_id is not None else []
        tail = self._ids(prefix)
        budget = self.fmt.context_length - len(tail) - room
        kept: list[int] = []
        for text in reversed(history):
            ids = self._ids(text)
            if len(ids) > budget - len(kept):
                break
            kept = ids + kept
        return bos + kept + tail

    def generate(self, history: Sequence[str], prefix: str, max_new_tokens: int, greedy: bool, seed: int) -> str:
        import torch

        ids = torch.tensor([self.context_ids(history, prefix, max_new_tokens)])
        torch.manual_seed(seed)
        with torch.no_grad():
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=not greedy,
                                      temperature=self.temperature if not greedy else None, top_k=0, top_p=1.0,
                                      max_new_tokens=max_new_tokens, pad_token_id=self.tok.pad_token_id,
                                      eos_token_id=self.tok.eos_token_id)
        return self.tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    def complete(self, history: Sequence[str], prompt: str, seed: int) -> str:
        """A completion for ``prompt`` after ``history``, cut at the template's next label."""
        prefix = render_until(self.fmt.template, {"prompt": prompt, "step": 0}, "response")
        return cut_completion(self.generate(history, prefix, self.max_new_tokens, greedy=False, seed=seed), self.word)

    def predict_reward(self, history: Sequence[str], row) -> float:
        prefix = render_until(self.fmt.template, {"prompt": row["prompt"], "response": row["response"],
                                                  "step": int(row["step"])}, "reward")
        return parse_reward(self.generate(history, prefix, 6, greedy=True, seed=0))

    def action_loglik(self, history: Sequence[str], row) -> float:
        """Mean log-probability per token of the completion, given the history and the prompt."""
        import torch

        prefix = render_until(self.fmt.template, {"prompt": row["prompt"], "step": int(row["step"])}, "response")
        action = self._ids(str(row["response"]))
        if not action:
            return float("nan")
        ids = self.context_ids(history, prefix, len(action)) + action
        x = torch.tensor([ids])
        with torch.no_grad():
            logp = torch.log_softmax(self.model(input_ids=x).logits[0, :-1].float(), -1)
        n = len(action)
        return float(logp[-n:].gather(-1, x[0, -n:, None]).mean())


# ---- 1. prediction on held-out histories --------------------------------------------------------

def prediction_targets(histories: list[History], fmt: ContextFormat, n: int, seed: int):
    """``n`` held-out episodes (not the first of their stream), each with its stream's earlier episode
    texts: [(row, history_texts)], spread evenly over the histories' streams."""
    pool = []
    for h in histories:
        for rows in streams(h, fmt):
            texts = [episode_text(h.episodes.loc[r], fmt) for r in rows]
            pool += [(h.episodes.loc[r], texts[:i]) for i, r in enumerate(rows) if i > 0]
    if not pool:
        return []
    pick = np.random.default_rng(seed).choice(len(pool), size=min(n, len(pool)), replace=False)
    return [pool[i] for i in sorted(pick)]


def prediction_metrics(lm: ContextLM, targets) -> list[dict[str, Any]]:
    """MAE and Pearson r of the predicted reward, and action log-likelihood, with and without history."""
    from tqdm.auto import tqdm

    rows = []
    truth = [float(row[lm.fmt.reward]) for row, _ in targets]
    for condition in ("history", "no_history"):
        pred, loglik = [], []
        for row, history in tqdm(targets, desc=f"AD prediction ({condition})"):
            shown = history if condition == "history" else []
            pred.append(lm.predict_reward(shown, row))
            loglik.append(lm.action_loglik(shown, row))
        err = [abs(p - t) for p, t in zip(pred, truth)]
        for metric, (value, se, n) in (("reward_mae", mean_se(err)), ("reward_pearson", pearson_se(pred, truth)),
                                       ("reward_parsed_share", (sum(np.isfinite(pred)) / max(1, len(pred)),
                                                                float("nan"), len(pred))),
                                       ("action_loglik", mean_se(loglik))):
            rows.append({"metric": metric, "condition": condition, "value": value, "se": se, "n": n})
    return rows


# ---- 2. in-context improvement ------------------------------------------------------------------

def play(complete: Callable[[list[str], str, int], str], score: Callable[[list[str], list[str]], Sequence[float]],
         prompts: list[str], fmt: ContextFormat, condition: str, seed: int) -> list[dict[str, Any]]:
    """One in-context episode loop: for each prompt, ``complete(shown_history, prompt, seed)`` writes a
    completion, ``score`` rewards it, and the episode (with that reward) joins the history. ``shown_history``
    is the history (``history``, ``expert``), nothing (``no_history``) or the history shuffled
    (``shuffled``). Returns one row per episode."""
    rng = np.random.default_rng(seed)
    history: list[str] = []
    rows = []
    for k, prompt in enumerate(prompts):
        if condition == "no_history":
            shown = []
        elif condition == "shuffled":
            shown = [history[i] for i in rng.permutation(len(history))]
        else:
            shown = list(history)
        completion = complete(shown, prompt, seed * 1000 + k)
        reward = float(score([prompt], [completion])[0])
        history.append(episode_text({"prompt": prompt, "response": completion, "step": k + 1}, fmt, reward))
        rows.append({"condition": condition, "episode": k + 1, "prompt": prompt, "completion": completion,
                     "proxy": reward, "history_episodes": len(shown)})
    return rows


def incontext_metrics(df) -> list[dict[str, Any]]:
    """Per condition: the slope of proxy and gold reward against episode, and the first and last episodes'
    mean proxy reward (over trials)."""
    rows = []
    last = int(df["episode"].max())
    for condition, g in df.groupby("condition", sort=False):
        for col in ("proxy", "gold"):
            value, se, n = slope_se(list(g["episode"]), list(g[col]))
            rows.append({"metric": f"incontext_slope_{col}", "condition": condition, "value": value, "se": se, "n": n})
        for metric, ep in (("incontext_first_proxy", 1), ("incontext_last_proxy", last)):
            value, se, n = mean_se(g[g["episode"] == ep]["proxy"])
            rows.append({"metric": metric, "condition": condition, "value": value, "se": se, "n": n})
    return rows


def run_incontext(models: dict[str, ContextLM], proxy, gold, prompts: list[str], cfg: InContextEval,
                  fmt: ContextFormat):
    """Every condition of the in-context test, ``cfg.trials`` times, on the same prompts per trial: a DataFrame
    (trial, condition, episode, prompt, completion, proxy, gold, history_episodes)."""
    import pandas as pd
    from tqdm.auto import tqdm

    rng = np.random.default_rng(cfg.seed)
    rows = []
    for trial in tqdm(range(cfg.trials), desc="AD in-context trials"):
        chosen = [prompts[i] for i in rng.choice(len(prompts), size=cfg.episodes, replace=len(prompts) < cfg.episodes)]
        for condition in CONDITIONS:
            lm = models["expert" if condition == "expert" else "lm"]
            for r in play(lm.complete, proxy, chosen, fmt, condition, seed=cfg.seed * 100 + trial):
                rows.append({"trial": trial, **r})
    df = pd.DataFrame(rows)
    df["gold"] = np.asarray(gold(list(df["prompt"]), list(df["completion"])), dtype=float)
    return df[["trial", "condition", "episode", "prompt", "completion", "proxy", "gold", "history_episodes"]]


def plot_incontext(df, path, title: str) -> None:
    """Proxy (left) and gold (right) reward against in-context episode, mean +- s.e. over trials."""
    from matplotlib.figure import Figure

    from ..plotting import save_figure

    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2, sharex=True)
    for ax, col in zip(axes, ("proxy", "gold")):
        for condition, g in df.groupby("condition", sort=False):
            stats = g.groupby("episode")[col].agg(["mean", "sem"])
            ax.errorbar(stats.index, stats["mean"], yerr=stats["sem"].fillna(0), label=condition, capsize=2,
                        marker="o", ms=3)
        ax.set_xlabel("in-context episode")
        ax.set_ylabel(f"{col} reward")
        ax.set_title(f"{col} reward (mean ± s.e. over trials)")
    axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path)


def evaluate_ad(ad, lm_dir: str, expert_dir: str, heldout: dict[str, str], rm_dirs: dict[int, str], gold_rm: str,
                prompts_path: str, out_dir, is_alpacafarm_rm: bool = False, *, batch_size: int):
    """The ``ad-eval`` stage: ``metrics.csv`` (:data:`METRIC_COLUMNS`), ``incontext.csv`` and ``incontext.png`` in
    ``out_dir``. The in-context task is the first held-out history's proxy reward (its RM members, objective
    and standardisation, from its run file) on the prompts of ``prompts_path``."""
    import pandas as pd

    from ..errors import PipelineError
    from ..io import read_jsonl, write_csv
    from ..reward.ensemble import EnsembleReward
    from ..reward.gold import gold_scorer
    from .data import load_history

    histories = [load_history(name, d) for name, d in heldout.items()]
    task = histories[0].info.get("reward") or {}
    seeds = task.get("rm_seeds")
    if not seeds or any(s not in rm_dirs for s in seeds):
        raise PipelineError(f"held-out history {histories[0].name!r}: its run file names RM seeds {seeds}; "
                            f"expected seeds among --rm-dirs {sorted(rm_dirs)}")
    prompts = [r["prompt"] for r in read_jsonl(prompts_path, required=["prompt"])]
    if not prompts:
        raise PipelineError(f"{prompts_path}: no prompts")
    proxy = EnsembleReward([rm_dirs[s] for s in seeds],
                           objective=task.get("objective", default_of(Ensemble, "objective")),
                           uwo_weight=task.get("uwo_weight", default_of(Ensemble, "uwo_weight")),
                           standardize=task.get("standardize", default_of(RunSettings, "standardize")),
                           batch_size=batch_size)
    gold = gold_scorer(gold_rm, is_alpacafarm_rm=is_alpacafarm_rm, batch_size=batch_size)
    cfg, fmt = ad.eval, ad.format
    lm = ContextLM(lm_dir, fmt, cfg.max_new_tokens, cfg.temperature)
    expert = ContextLM(expert_dir, fmt, cfg.max_new_tokens, cfg.temperature)

    metrics = prediction_metrics(lm, prediction_targets(histories, fmt, cfg.n_episodes_heldout, cfg.seed))
    df = run_incontext({"lm": lm, "expert": expert}, lambda p, r: proxy(p, r).tolist(), gold, prompts, cfg, fmt)
    metrics += incontext_metrics(df)
    out_dir = Path(out_dir)
    write_csv(df, out_dir / "incontext.csv")
    write_csv(pd.DataFrame(metrics, columns=METRIC_COLUMNS), out_dir / "metrics.csv")
    plot_incontext(df, out_dir / "incontext.png", f"in-context episodes on held-out task {histories[0].name!r}")
    return metrics
