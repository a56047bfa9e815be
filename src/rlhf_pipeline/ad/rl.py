"""The RL-format algorithm-distillation model (issue 11, model b): a tiny causal transformer that reads a
learning history as a token sequence and predicts the next action tokens and each episode's reward.

A context (:class:`rlhf_pipeline.ad.data.RLContexts`) is a list of episodes in PPO-step order; it becomes
one sequence ``[state tokens, action tokens, reward slot]`` per episode, concatenated. The reward
slot has no token: its input embedding is ``reward_in(r)``, a ``Linear(1, hidden)`` of the episode's
(standardised) reward, i.e. a learned vector (the bias) plus a linear projection of the reward, so
every later position sees the rewards of the earlier episodes. A ``transformers.LlamaModel`` (causal,
from config, the policy tokenizer's vocabulary) reads the sequence; two heads read its states:

- the LM head (tied to the input embeddings) predicts each action token from the position before it
  (loss on action tokens only; state tokens and reward slots are context, not targets);
- the reward head (``Linear(hidden, 1)``) reads the position just before the episode's reward slot
  (its last action token), so it predicts the reward from the episode and the history, never from
  the episode's own reward. MSE to the standardised reward.

Loss = action cross-entropy (mean over action tokens) + ``reward_loss_weight`` * reward MSE (mean over
episodes). :func:`train_rl` trains it (a plain, seeded AdamW loop) and saves ``model/``;
:func:`evaluate_rl` scores held-out histories with the history in context and without it (each
episode alone: the baseline that ignores the history).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..config import default_of
from ..errors import PipelineError
from ..io import atomic_dir, write_csv, write_json
from ..stats import mean_se, pearson_se
from .config import ADRLConfig

if TYPE_CHECKING:
    from .config import ContextFormat
    from .data import History, RLContexts

MODEL_DIR = "model"
METRICS = ("reward_mae", "reward_pearson", "action_logprob_per_token")
CONDITIONS = ("history", "shuffled_history", "no_history")


# ---- batching -----------------------------------------------------------------------------------

@dataclass
class Batch:
    """Padded contexts (right padding). Shapes ``[B, L]``."""

    input_ids: Any
    """Token ids; the pad id at reward slots and padding."""
    attention_mask: Any
    reward_slot: Any
    """True at each episode's reward slot."""
    reward_in: Any
    """The episode's standardised reward at its slot, 0 elsewhere."""
    labels: Any
    """At position t: the action token at t+1 when t+1 is an action token, else -100."""
    reward_read: Any
    """True at the position just before each reward slot (where the reward head is read)."""
    reward_target: Any
    """The standardised reward of the episode at each ``reward_read`` position, 0 elsewhere."""
    episode: Any
    """Index of the episode (in its context) each position belongs to; -1 on padding."""


def collate(contexts: list[list[dict[str, Any]]], pad_id: int, reward_mean: float = 0.0,
            reward_std: float = 1.0) -> Batch:
    """One :class:`Batch` from RL-format contexts (lists of episodes with ``state``, ``action``, ``reward``)."""
    import torch

    lengths = [sum(len(e["state"]) + len(e["action"]) + 1 for e in ctx) for ctx in contexts]
    B, L = len(contexts), max(lengths)
    ids = torch.full((B, L), pad_id, dtype=torch.long)
    labels = torch.full((B, L), -100, dtype=torch.long)
    episode = torch.full((B, L), -1, dtype=torch.long)
    mask, slot, read = (torch.zeros(B, L, dtype=torch.bool) for _ in range(3))
    r_in, r_target = torch.zeros(B, L), torch.zeros(B, L)
    for b, ctx in enumerate(contexts):
        t = 0
        for k, e in enumerate(ctx):
            s, a = torch.as_tensor(e["state"]).long(), torch.as_tensor(e["action"]).long()
            n = len(s) + len(a)
            if n == 0:
                raise PipelineError(f"episode {k} of a context has neither state nor action tokens")
            ids[b, t:t + len(s)] = s
            ids[b, t + len(s):t + n] = a
            if len(a):  # the action token at t+len(s)+j is predicted at the position before it
                labels[b, t + len(s) - 1 + (len(s) == 0):t + n - 1] = a[(len(s) == 0):]
            r = (float(e["reward"]) - reward_mean) / reward_std
            slot[b, t + n], r_in[b, t + n] = True, r
            read[b, t + n - 1], r_target[b, t + n - 1] = True, r
            episode[b, t:t + n + 1] = k
            t += n + 1
        mask[b, :t] = True
    return Batch(ids, mask.long(), slot, r_in, labels, read, r_target, episode)


# ---- the model ----------------------------------------------------------------------------------

def _model_class():
    """The model class (built lazily so importing this module does not import transformers)."""
    global _RLFormatModel
    if _RLFormatModel is not None:
        return _RLFormatModel
    import torch
    from torch import nn
    from transformers import LlamaModel
    from transformers.models.llama.modeling_llama import LlamaPreTrainedModel

    class RLFormatModel(LlamaPreTrainedModel):
        """Causal Llama over [state, action, reward slot]* with an action (LM) head and a reward head.

        The config is a ``LlamaConfig`` with two extra fields, ``ad_reward_mean`` and ``ad_reward_std``
        (the training rewards' standardisation), so ``save_pretrained``/``from_pretrained`` round-trip it."""

        _tied_weights_keys: ClassVar[dict[str, str]] = {"lm_head.weight": "model.embed_tokens.weight"}

        def __init__(self, config):
            super().__init__(config)
            self.model = LlamaModel(config)
            self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
            self.reward_in = nn.Linear(1, config.hidden_size)  # bias = the learned slot vector
            self.reward_head = nn.Linear(config.hidden_size, 1)
            self.post_init()

        def hidden(self, batch: Batch):
            """Final hidden states ``[B, L, H]``: token embeddings, reward slots replaced by ``reward_in(r)``."""
            emb = self.model.embed_tokens(batch.input_ids)
            slot = self.reward_in(batch.reward_in.unsqueeze(-1).to(emb.dtype))
            emb = torch.where(batch.reward_slot.unsqueeze(-1), slot, emb)
            return self.model(inputs_embeds=emb, attention_mask=batch.attention_mask).last_hidden_state

        def forward(self, batch: Batch) -> dict[str, Any]:
            """``action_logprobs`` (of each labelled action token, ``[N_tokens]``, in row-major order of
            ``labels != -100``), ``reward_pred`` (standardised, ``[N_episodes]`` in order of ``reward_read``)
            and the losses."""
            h = self.hidden(batch)
            is_action = batch.labels != -100
            logits = self.lm_head(h[is_action])  # only where an action token is predicted: [N_tokens, V]
            logp = torch.log_softmax(logits.float(), -1).gather(-1, batch.labels[is_action].unsqueeze(-1))[:, 0]
            reward_pred = self.reward_head(h[batch.reward_read])[:, 0]
            action_loss = -logp.mean() if len(logp) else logp.sum()
            reward_loss = torch.nn.functional.mse_loss(reward_pred, batch.reward_target[batch.reward_read])
            return {"action_logprobs": logp, "reward_pred": reward_pred, "action_loss": action_loss,
                    "reward_loss": reward_loss}

    _RLFormatModel = RLFormatModel
    return RLFormatModel


_RLFormatModel = None


def build_model(cfg: ADRLConfig, tokenizer, reward_mean: float = 0.0, reward_std: float = 1.0):
    """A fresh model (seeded by ``cfg.seed``) on the tokenizer's vocabulary."""
    import torch

    from ..models import tiny_llama_config

    config = tiny_llama_config(tokenizer, **cfg.tiny.to_dict())
    config.ad_reward_mean, config.ad_reward_std = float(reward_mean), float(reward_std)
    torch.manual_seed(cfg.seed)
    return _model_class()(config).float()


def load_model(model_dir: str | os.PathLike):
    """A saved model (``train_rl``'s ``model/``), in eval mode."""
    from ..models import check_model

    check_model("ad rl model", str(model_dir))
    return _model_class().from_pretrained(str(model_dir)).eval()


# ---- training -----------------------------------------------------------------------------------

def _reward_stats(contexts: RLContexts) -> tuple[float, float]:
    rewards = [float(h.episodes.loc[r, contexts.reward]) for name, ctx in contexts.index
               for h in [contexts.histories[name]] for r in ctx]
    std = float(np.std(rewards))
    return float(np.mean(rewards)), std if std > 1e-8 else 1.0


def batch_schedule(n_contexts: int, cfg: ADRLConfig) -> list[list[int]]:
    """The context indices of every optimizer step: a seeded shuffle per epoch, cut into batches; the last
    epoch may be partial (fractional ``epochs``). Fixed up front, so a resumed run sees the same batches."""
    import torch

    gen = torch.Generator().manual_seed(cfg.seed)
    per_epoch = math.ceil(n_contexts / cfg.batch_size)
    total = max(1, math.ceil(cfg.epochs * per_epoch))
    out: list[list[int]] = []
    while len(out) < total:
        order = torch.randperm(n_contexts, generator=gen).tolist()
        out += [order[i:i + cfg.batch_size] for i in range(0, n_contexts, cfg.batch_size)]
    return out[:total]


def train_rl(cfg: ADRLConfig, fmt: ContextFormat, train_histories: list[History], out_dir: str | os.PathLike,
             tokenizer, ckpt_dir: str | os.PathLike | None = None, checkpoint_every: int | None = None
             ) -> dict[str, Any]:
    """Train the RL-format model on the histories' contexts; write ``out_dir/model/`` (config.json +
    model.safetensors + train_summary.json), ``out_dir/train_log.csv`` (one row per optimizer step) and
    ``out_dir/train_report.csv`` (per history: episodes in contexts, dropped as too long, steps spanned).
    Returns the training summary. ``tokenizer``: the policy's (sizes the vocabulary, gives the pad id).

    With ``ckpt_dir`` (outside the declared outputs) the loop checkpoints every ``checkpoint_every`` steps
    (default: a tenth of the run) with :mod:`rlhf_pipeline.ppo.checkpoint`, resumes from the newest valid
    checkpoint there, and on SIGTERM/SIGUSR1 checkpoints the current step and raises
    :class:`~rlhf_pipeline.trainer_checkpoints.Preempted` (exit 128 + signal) without writing ``out_dir``;
    a resumed run ends with the same weights as an uninterrupted one (CPU). The checkpoints are deleted
    once ``out_dir`` is written."""
    import shutil

    import torch
    from tqdm import tqdm

    from ..ppo import checkpoint as ckpt
    from ..trainer_checkpoints import Preempted, stop_on_signals
    from .data import RLContexts

    if not train_histories:
        raise PipelineError("ad-rl: no training histories (every history is held out)")
    data = RLContexts(train_histories, fmt)
    mean, std = _reward_stats(data)
    model = build_model(cfg, tokenizer, mean, std).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    batches = batch_schedule(len(data), cfg)
    total, per_epoch = len(batches), math.ceil(len(data) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 - s / total)
    every = checkpoint_every or max(1, total // 10)
    log_rows: list[dict[str, Any]] = []
    start = ckpt.load_latest_checkpoint(ckpt_dir) if ckpt_dir is not None else None
    if start is not None:
        if start["state"]["config"] != cfg.to_dict() or start["state"]["contexts"] != len(data):
            raise PipelineError(f"{start['dir']}: checkpoint of other settings or data; remove {ckpt_dir} to "
                                "start over")
        model.load_state_dict(start["model"])
        opt.load_state_dict(start["optimizer"])
        sched.load_state_dict(start["scheduler"])
        log_rows = start["state"]["log_rows"]
    first, t0 = (start["step"] if start is not None else 0), time.time()
    with stop_on_signals() as stop:
        for step in tqdm(range(first + 1, total + 1), initial=first, total=total, desc="ad-rl train", unit="step"):
            batch = collate([data[j] for j in batches[step - 1]], tokenizer.pad_token_id, mean, std)
            out = model(batch)
            loss = out["action_loss"] + cfg.reward_loss_weight * out["reward_loss"]
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
            log_rows.append({"step": step, "epoch": round(step / per_epoch, 4), "loss": loss.item(),
                             "action_loss": out["action_loss"].item(), "reward_loss": out["reward_loss"].item(),
                             "learning_rate": sched.get_last_lr()[0]})
            sched.step()
            if ckpt_dir is not None and step < total and (step % every == 0 or stop.signum):
                ckpt.save_checkpoint(ckpt_dir, step, {
                    "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "state": {"config": cfg.to_dict(), "contexts": len(data), "log_rows": log_rows}})
            if stop.signum and step < total:
                where = f"checkpointed step {step} in {ckpt_dir}" if ckpt_dir is not None else "no checkpoint dir"
                raise Preempted(stop.signum, f"ad-rl: got signal {stop.signum}; {where}; exiting with "
                                f"{128 + stop.signum} (a rerun resumes from there)")
    summary = {"steps": total, "resumed_from_step": first or None, "contexts": len(data),
               "runtime_s": round(time.time() - t0, 1), "final_loss": log_rows[-1]["loss"],
               "final_action_loss": log_rows[-1]["action_loss"], "final_reward_loss": log_rows[-1]["reward_loss"],
               "reward_mean": mean, "reward_std": std, "n_parameters": sum(p.numel() for p in model.parameters())}
    out_dir = Path(out_dir)
    with atomic_dir(out_dir / MODEL_DIR) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        write_json(tmp / "train_summary.json", {**summary, "config": cfg.to_dict(), "format": fmt.to_dict()})
    write_metrics(out_dir / "train_log.csv", log_rows)
    write_metrics(out_dir / "train_report.csv", data.report())
    if ckpt_dir is not None:
        for old in ckpt.list_checkpoints(ckpt_dir):
            shutil.rmtree(old, ignore_errors=True)
    return summary


# ---- evaluation ---------------------------------------------------------------------------------

def select_episodes(contexts: RLContexts, n_episodes: int) -> list[tuple[int, int]]:
    """(context, position) of up to ``n_episodes`` held-out episodes that have history in their context
    (position >= 1), evenly spaced over all such episodes in order (deterministic)."""
    pairs = [(c, k) for c in range(len(contexts)) for k in range(1, len(contexts.index[c][1]))]
    if len(pairs) <= n_episodes:
        return pairs
    return [pairs[i] for i in np.linspace(0, len(pairs) - 1, n_episodes).round().astype(int)]


def score_episodes(model, contexts: list[list[dict[str, Any]]], which: list[int], pad_id: int,
                   batch_size: int = default_of(ADRLConfig, "batch_size")) -> list[dict[str, float]]:
    """For each context and the position ``which[i]`` in it: the predicted reward (raw scale), the
    episode's reward, and the summed log-likelihood and count of its action tokens."""
    import torch

    mean, std = model.config.ad_reward_mean, model.config.ad_reward_std
    out = []
    with torch.no_grad():
        for i in range(0, len(contexts), batch_size):
            ctxs, ks = contexts[i:i + batch_size], which[i:i + batch_size]
            batch = collate(ctxs, pad_id, mean, std)
            res = model(batch)
            pred = res["reward_pred"] * std + mean
            read_b, read_t = batch.reward_read.nonzero(as_tuple=True)
            tok_b, tok_t = (batch.labels != -100).nonzero(as_tuple=True)
            tok_ep = batch.episode[tok_b, tok_t + 1]  # the episode of the predicted token
            for b, (ctx, k) in enumerate(zip(ctxs, ks)):
                j = int(((read_b == b) & (batch.episode[read_b, read_t] == k)).nonzero()[0, 0])
                sel = (tok_b == b) & (tok_ep == k)
                out.append({"pred": float(pred[j]), "reward": float(ctx[k]["reward"]),
                            "logprob_sum": float(res["action_logprobs"][sel].sum()), "n_tokens": int(sel.sum()),
                            "history": k})
    return out


def metric_rows(scored: dict[str, list[dict[str, float]]], model_name: str = "rl") -> list[dict[str, Any]]:
    """metrics.csv rows (``model, condition, metric, value, se, n``) from each condition's scored episodes
    (the same episodes in the same order in every condition), plus the paired differences
    ``<condition>_minus_no_history`` of the MAE and the log-likelihood (standard error of the mean paired
    difference)."""
    rows = []
    per = {}
    for cond, eps in scored.items():
        err = [abs(e["pred"] - e["reward"]) for e in eps]
        ll = [e["logprob_sum"] / e["n_tokens"] if e["n_tokens"] else float("nan") for e in eps]
        per[cond] = (np.asarray(err), np.asarray(ll))
        stats = {"reward_mae": mean_se(err),
                 "reward_pearson": pearson_se([e["pred"] for e in eps], [e["reward"] for e in eps]),
                 "action_logprob_per_token": mean_se(ll)}
        for metric in METRICS:
            n = sum(1 for e in eps if e["n_tokens"]) if metric == "action_logprob_per_token" else len(eps)
            rows.append({"model": model_name, "condition": cond, "metric": metric, "value": stats[metric][0],
                         "se": stats[metric][1], "n": n})
    if "no_history" in per:
        for cond in [c for c in per if c != "no_history"]:
            for metric, i in (("reward_mae", 0), ("action_logprob_per_token", 1)):
                d = per[cond][i] - per["no_history"][i]
                d = d[~np.isnan(d)]
                v, se, _ = mean_se(d)
                rows.append({"model": model_name, "condition": f"{cond}_minus_no_history", "metric": metric,
                             "value": v, "se": se, "n": len(d)})
    return rows


def evaluate_rl(model_dir: str | os.PathLike, heldout_histories: list[History], fmt: ContextFormat,
                n_episodes: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(metric rows, episode rows). Metric rows (``results/ad/rl/metrics.csv``) on held-out histories:
    reward-prediction MAE and Pearson r and the mean per-token action log-likelihood of up to ``n_episodes``
    episodes (those with at least one earlier episode in their context, :func:`select_episodes`) under three
    conditions:

    - ``history``: the episode after the earlier episodes of its context, in step order;
    - ``shuffled_history``: the same earlier episodes in a random order (seeded; a control for whether
      the order of the learning history matters, not only its content);
    - ``no_history``: the episode alone as its own context (the baseline that ignores the history);

    with standard errors, and the paired differences against ``no_history``. Episode rows
    (``eval_episodes.csv``): each scored episode's history, context, position, step, reward, and per
    condition the predicted reward and the per-token action log-likelihood."""
    from .data import RLContexts

    if not heldout_histories:
        raise PipelineError("ad-rl: no held-out histories to evaluate on")
    model = load_model(model_dir)
    pad_id = model.config.pad_token_id
    data = RLContexts(heldout_histories, fmt)
    chosen = select_episodes(data, n_episodes)
    if not chosen:
        raise PipelineError(f"ad-rl: the held-out histories {[h.name for h in heldout_histories]} give no context "
                            "with two or more episodes (nothing to compare with and without history); "
                            "raise ad.format.context_length or hold out a longer history")
    contexts = {c: data[c] for c in sorted({c for c, _ in chosen})}
    rng = np.random.default_rng(seed)
    ks = [k for _, k in chosen]
    inputs = {"history": [contexts[c][:k + 1] for c, k in chosen],
              "shuffled_history": [[contexts[c][i] for i in rng.permutation(k)] + [contexts[c][k]] for c, k in chosen],
              "no_history": [[contexts[c][k]] for c, k in chosen]}
    scored = {cond: score_episodes(model, ctxs, [0] * len(ks) if cond == "no_history" else ks, pad_id)
              for cond, ctxs in inputs.items()}
    rows = metric_rows(scored)
    mean_hist = float(np.mean(ks))
    for r in rows:
        r["mean_history_episodes"] = 0.0 if r["condition"] == "no_history" else mean_hist
    episodes = []
    for i, (c, k) in enumerate(chosen):
        name = data.index[c][0]
        row = {"history": name, "context": c, "position": k, "step": contexts[c][k]["step"],
               "reward": scored["history"][i]["reward"], "n_tokens": scored["history"][i]["n_tokens"]}
        for cond in scored:
            e = scored[cond][i]
            row[f"pred_{cond}"] = e["pred"]
            row[f"logprob_per_token_{cond}"] = e["logprob_sum"] / e["n_tokens"] if e["n_tokens"] else float("nan")
        episodes.append(row)
    return rows, episodes


def plot_by_position(episodes: list[dict[str, Any]], out_png: str | os.PathLike) -> None:
    """Reward-prediction error and action log-likelihood against the number of earlier episodes in the
    context (the episode's position), per condition, means with +-1 SE bars."""
    import pandas as pd
    from matplotlib.figure import Figure

    from ..plotting import save_figure

    df = pd.DataFrame(episodes)
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for cond, color in zip(CONDITIONS, ("tab:blue", "tab:orange", "tab:gray")):
        df["abs_err"] = (df[f"pred_{cond}"] - df["reward"]).abs()
        for ax, col in zip(axes, ("abs_err", f"logprob_per_token_{cond}")):
            g = df.groupby("position")[col].agg(["mean", "sem"])
            ax.errorbar(g.index, g["mean"], yerr=g["sem"].fillna(0), marker="o", ms=4, capsize=2, color=color,
                        label=cond.replace("_", " "))
    for ax, ylabel in zip(axes, ("reward |error|", "action log-likelihood per token")):
        ax.set_xlabel("earlier episodes in the context")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=9)
    fig.suptitle("RL-format AD model on held-out histories")
    save_figure(fig, out_png)


def write_metrics(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """``rows`` (dicts with the same keys; columns in the first row's order) as a CSV table
    (:func:`rlhf_pipeline.io.write_csv`)."""
    import pandas as pd

    write_csv(pd.DataFrame(rows, columns=list(rows[0]) if rows else None), path)


__all__ = ["ADRLConfig", "Batch", "build_model", "collate", "evaluate_rl", "load_model", "metric_rows",
           "plot_by_position", "train_rl", "write_metrics"]
