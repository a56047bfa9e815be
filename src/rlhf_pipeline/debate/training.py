"""Training debaters from their own tournaments (``debate.training``).

- **SFT data** (:func:`sft_rows`): every speech of the chosen debaters in a tournament's
  transcripts, as ``{prompt, completion}``: the prompt is what an ``hf`` debater would be given at
  that turn (the prompt set's debater template through :func:`~.backends.hf.chat_text`, with the
  speeches it could see, :func:`~.rounds.visible_to`), written so that the trainers tokenise it to the
  debater's tokens (:func:`trainer_text`); the completion is the speech's raw text, unchanged, after a
  space where the prompt does not end in whitespace (:func:`completion_text`).
- **Preference pairs** (:func:`preference_pairs`): for each best-of-N speech (``Speech.alternatives``),
  chosen = the selected candidate, rejected = the lowest-scoring one (the first of equal lowest),
  kept when ``score(chosen) - score(rejected) > threshold``. With ``pairs.unverified_penalty`` u > 0 a
  candidate's score is its judge probability minus u per quote of it that failed verification
  (``unverified``), chosen = the highest so scored (the selected one on ties), rejected = the lowest, p and
  q those scores floored at 0. Each pair records the two judge
  probabilities p, q and its label ``soft_label``: ``p^m / (p^m + q^m)`` (:func:`soft_label`) with m =
  ``pairs.soft_label_power`` when that is set, else 1 (hard). Chosen / rejected are the candidates' raw text
  as generated.
- **SFT** (:func:`train_debater_sft`): the project's SFT stage (:func:`rlhf_pipeline.sft.train_sft`,
  TRL's ``SFTTrainer``) on those rows; a from-scratch tiny Llama gets the quote tags as tokens of
  its own (:func:`quote_tokens_needed`) so the speeches it writes keep them.
- **DPO** (:func:`train_debater_dpo`): TRL's ``DPOTrainer`` from the previous checkpoint (also the
  reference), the sigmoid loss plus ``nll_weight`` times TRL's ``sft`` loss (its own NLL term on the
  chosen speeches), LoRA through PEFT (merged into the saved model). Pairs with soft labels l (any
  ``soft_label`` below 1) train with the label-weighted sigmoid loss -(l log sigmoid(beta h) + (1 - l)
  log sigmoid(-beta h)), h the DPO logit (conservative DPO's loss with a per-pair label), through
  :func:`soft_label_trainer`: TRL's trainer and collator with the ``soft_label`` column kept and set, per
  batch, as the label smoothing of TRL's ``robust`` loss, which combined as 2 sigmoid - robust is that loss.
  Checkpoint/resume: :mod:`rlhf_pipeline.trainer_checkpoints`.
- **The strength experiment** (:func:`strength_table`): per checkpoint, its Bradley-Terry rating in
  the cross-play ``strength`` tournament and the judge's accuracy when it debates itself and when it
  is the consultant, with standard errors over questions.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ..io import read_jsonl, write_jsonl
from .config import DPOSettings, PairSettings
from .prompts import debater_prompt
from .rounds import branch_nodes, visible_to
from .types import Question, RoundRecord, Speech, SpeechContext

QUOTE_TAGS = ("<quote>", "</quote>")


# ------------------------------------------------------------------------------------------ prompts


def speech_context(rec: RoundRecord, speech: Speech, question: Question, n_turns: int,
                   simultaneous: bool, before: list[Speech] | None = None) -> SpeechContext:
    """The :class:`SpeechContext` the speaker had when it gave ``speech`` in round ``rec`` (after the
    speeches ``before``: default, those before it in ``rec.speeches``; a branch's path otherwise)."""
    if before is None:
        before = rec.speeches[: next(i for i, s in enumerate(rec.speeches) if s is speech)]
    return SpeechContext(question=question, side=speech.side, role=speech.role, format=rec.format,
                         turn=speech.turn, n_turns=n_turns,
                         visible=visible_to(rec.format, simultaneous, speech.role, speech.turn, before),
                         round_id=rec.round_id, seed=0)


def speech_prompt(tok: Any, prompts: dict[str, Any], prompt_name: str, ctx: SpeechContext) -> str:
    """The prompt an ``hf`` debater with this tokenizer and prompt set is given for ``ctx``, as the
    trainers must be given it to see the same tokens (:func:`trainer_text`)."""
    from .backends.hf import chat_text

    system, user = debater_prompt(prompts, prompt_name, ctx)
    text, special = chat_text(tok, system, user)
    return text if special else trainer_text(tok, text)


def trainer_text(tok: Any, text: str) -> str:
    """A chat-templated prompt (tokenised by the ``hf`` debater without special tokens) as TRL's SFT and
    DPO trainers must be given it: they tokenise plain-text prompts *with* the tokenizer's special
    tokens, so a template that writes the BOS token itself (Llama 3's ``<|begin_of_text|>``) would train
    on two BOS tokens where the debater sees one. The leading BOS text is dropped when the tokenizer
    adds BOS on its own; otherwise ``text`` is returned unchanged."""
    bos = getattr(tok, "bos_token", None)
    if bos and text.startswith(bos) and tok("")["input_ids"][:1] == [tok.bos_token_id]:
        return text[len(bos):]
    return text


def completion_text(prompt: str, raw: str) -> str:
    """A speech as the trainers' completion after ``prompt``: a space between them only where the prompt does
    not already end in whitespace (a chat template's turn header ends in a blank line, after which the
    debater's first token has no leading space), as :func:`~rlhf_pipeline.models.join_text` joins texts."""
    return raw if not prompt or prompt[-1].isspace() else " " + raw


def _questions(questions: Iterable[Question]) -> dict[str, Question]:
    return {q.id: q for q in questions}


def _turns(rec: RoundRecord) -> int:
    return 1 + max((s.turn for s in rec.speeches), default=0)


def _question(by_id: dict[str, Question], rec: RoundRecord) -> Question:
    if rec.question_id not in by_id:
        raise PipelineError(f"round {rec.round_id}: question {rec.question_id!r} is not in the questions file")
    return by_id[rec.question_id]


def sft_rows(records: Iterable[RoundRecord], questions: Iterable[Question], tok: Any, prompts: dict[str, Any],
             prompt_name: str, simultaneous: bool, debaters: Sequence[str] = (), max_speeches: int | None = None,
             *, seed: int) -> list[dict[str, str]]:
    """``{prompt, completion}`` for every speech (of ``debaters``; empty = all) in the ok rounds, or a
    seeded sample of ``max_speeches`` of them (in transcript order); the completion is the speech's
    raw text with one leading space."""
    import random

    by_id, rows = _questions(questions), []
    for rec in records:
        if rec.status != "ok":
            continue
        for s in rec.speeches:
            if debaters and s.speaker not in debaters:
                continue
            rows.append((rec, s))
    if max_speeches is not None and len(rows) > max_speeches:
        keep = sorted(random.Random(seed).sample(range(len(rows)), max_speeches))
        rows = [rows[i] for i in keep]
    out = []
    for rec, s in rows:
        ctx = speech_context(rec, s, _question(by_id, rec), _turns(rec), simultaneous)
        prompt = speech_prompt(tok, prompts, prompt_name, ctx)
        out.append({"prompt": prompt, "completion": completion_text(prompt, s.raw)})
    return out


# ------------------------------------------------------------------------------------------- pairs


def soft_label(p: float, q: float, m: float) -> float:
    """``p^m / (p^m + q^m)``: how sure the judge is that the chosen speech (probability p) beats the
    rejected one (q); 0.5 when both are 0."""
    if p <= 0 and q <= 0:
        return 0.5
    return 1.0 / (1.0 + (q / p) ** m) if p > 0 else 0.0


def branch_scores(rec: RoundRecord) -> dict[tuple[int, ...], float]:
    """Every speech of a branched round (by its ``branch`` path) scored by the mean judge probability for its
    side over the round's transcripts that contain it (``rec.branches``); empty for an unbranched round."""
    probs = {tuple(b["path"]): b["probs"] for b in rec.branches}
    return {path: statistics.fmean(p[speech.side] for t, p in probs.items() if t[: len(path)] == path)
            for path, speech in branch_nodes(rec).items()}


def branch_pairs(rec: RoundRecord) -> list[tuple[Speech, Speech, float, float, list[Speech]]]:
    """``(chosen, rejected, score of chosen, score of rejected, speeches before them)`` for every branched slot
    of a branched round: the two speeches that share everything before them, the higher-scoring one
    (:func:`branch_scores`; the branch-0 one on ties) chosen."""
    scores, nodes = branch_scores(rec), branch_nodes(rec)
    out = []
    for path in sorted((p for p in nodes if p[-1] == 1), key=lambda p: (len(p), p)):  # slot by slot
        sibling = (*path[:-1], 0)
        before = [nodes[path[: i + 1]] for i in range(len(path) - 1)]
        a, b = (sibling, path) if scores[sibling] >= scores[path] else (path, sibling)
        out.append((nodes[a], nodes[b], scores[a], scores[b], before))
    return out


def candidate_score(penalty: float, where: str = "transcripts") -> Any:
    """A best-of-N candidate's pair score: its judge probability, less ``penalty`` per unverified quote
    (``unverified``), floored at 0 when ``penalty`` > 0. PipelineError naming ``where`` for a candidate without
    ``unverified`` (a transcript written before it was recorded) when ``penalty`` > 0."""
    def score(a: dict[str, Any]) -> float:
        if not penalty:
            return float(a["score"])
        if "unverified" not in a:
            raise PipelineError(f"{where}: a best-of-N candidate has no 'unverified' count (written before it was "
                                "recorded); replay the tournament or set debate.training.pairs.unverified_penalty: 0")
        return max(0.0, float(a["score"]) - penalty * a["unverified"])
    return score


def preference_pairs(records: Iterable[RoundRecord], questions: Iterable[Question], tok: Any,
                     prompts: dict[str, Any], prompt_name: str, simultaneous: bool, cfg: PairSettings,
                     where: str = "transcripts") -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The DPO pairs of the best-of-N speeches and of the branched slots in ``records`` (see the module
    docstring), and counts (``speeches``, ``best_of_n``, ``branched``, ``kept``, ``below_threshold``).
    PipelineError naming ``where`` when no speech has best-of-N alternatives and no round branches, or when
    no pair passes the threshold."""
    by_id, pairs, m = _questions(questions), [], cfg.soft_label_power
    counts = {"speeches": 0, "best_of_n": 0, "branched": 0, "kept": 0, "below_threshold": 0}
    score = candidate_score(cfg.unverified_penalty, where)

    def pair(rec: RoundRecord, s: Speech, chosen: str, rejected: str, p: float, q: float, source: str,
             before: list[Speech] | None = None) -> None:
        gap = p - q
        if not gap > cfg.threshold:
            counts["below_threshold"] += 1
            return
        ctx = speech_context(rec, s, _question(by_id, rec), _turns(rec), simultaneous, before)
        prompt = speech_prompt(tok, prompts, prompt_name, ctx)
        pairs.append({"prompt": prompt, "chosen": completion_text(prompt, chosen),
                      "rejected": completion_text(prompt, rejected), "p_chosen": p, "p_rejected": q,
                      "gap": gap, "soft_label": 1.0 if m is None else soft_label(p, q, m), "round_id": rec.round_id,
                      "speaker": s.speaker, "role": s.role, "turn": s.turn, "source": source})

    for rec in records:
        if rec.status != "ok":
            continue
        for chosen, rejected, p, q, before in branch_pairs(rec):
            counts["branched"] += 1
            pair(rec, chosen, chosen.raw, rejected.raw, p, q, "branch", before)
        nodes = branch_nodes(rec)
        for s in [*rec.speeches, *rec.branch_speeches]:  # a branched round's every speech has its context
            counts["speeches"] += 1
            if len(s.alternatives) < 2:
                continue
            counts["best_of_n"] += 1
            chosen = (max(s.alternatives, key=lambda a: (score(a), a["selected"])) if cfg.unverified_penalty
                      else next(a for a in s.alternatives if a["selected"]))
            rejected = min(s.alternatives, key=score)
            before = [nodes[tuple(s.branch[: i + 1])] for i in range(len(s.branch) - 1)] if s.branch else None
            pair(rec, s, chosen["raw"], rejected["raw"], score(chosen), score(rejected), "best_of_n", before)
    counts["kept"] = len(pairs)
    if not counts["best_of_n"] and not counts["branched"]:
        raise PipelineError(f"{where}: no speech has best-of-N alternatives ({counts['speeches']} speeches) and no "
                            "round branches; DPO pairs need a tournament played with best_of_n.n >= 2 or branching")
    if not pairs:
        raise PipelineError(f"{where}: 0 of {counts['best_of_n'] + counts['branched']} best-of-N speeches and "
                            f"branched slots have a judge-probability gap > debate.training.pairs.threshold="
                            f"{cfg.threshold}; lower the threshold")
    return pairs, counts


# ----------------------------------------------------------------------------------------- training


def quote_tokens_needed(tok: Any) -> list[str]:
    """The quote tags that do not survive this tokenizer's encode/decode round trip (the MiniLM
    tokenizer splits ``<quote>`` into ``<``, ``quote``, ``>`` and decodes ``< quote >``)."""
    text = "a <quote>b</quote> c"
    back = tok.decode(tok(text, add_special_tokens=False)["input_ids"], skip_special_tokens=True)
    return [t for t in QUOTE_TAGS if t not in back]


def write_sft_split(rows: list[dict[str, str]], out_dir: Path, val_fraction: float = 0.1, *,
                    seed: int) -> tuple[Path, Path]:
    """``train.jsonl`` / ``val.jsonl`` of ``{prompt, response}`` rows (the SFT stage's schema); the
    val rows are a seeded sample."""
    import random

    if not rows:
        raise PipelineError("no speeches to train the SFT debater on (check debate.training.source_debaters)")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_val = max(1, int(len(rows) * val_fraction))
    split = {"val": sorted(order[:n_val]), "train": sorted(order[n_val:]) or sorted(order[:n_val])}
    paths = {}
    for name, idx in split.items():
        paths[name] = out_dir / f"{name}.jsonl"
        write_jsonl(paths[name], [{"prompt": rows[i]["prompt"], "response": rows[i]["completion"].lstrip()}
                                  for i in idx])
    return paths["train"], paths["val"]


def train_debater_sft(cfg: Any, tokenizer: str, rows: list[dict[str, str]], out_dir: str | Path,
                      ckpt_dir: str | Path | None = None) -> dict[str, Any]:
    """The SFT debater: :func:`rlhf_pipeline.sft.train_sft` on ``rows`` (``cfg``: an
    :class:`~rlhf_pipeline.sft.SFTConfig`). A from-scratch model's tokenizer is ``tokenizer`` (``'world'``: made
    from the training rows' prompts and completions, :func:`~rlhf_pipeline.models.vocab.training_tokenizer`);
    when it splits the quote tags it gets them as added tokens first (written into a tokenizer directory the
    run trains on). A base model (``cfg.model``) uses its own tokenizer, which must keep them."""
    from ..models.vocab import WORLD, training_tokenizer
    from ..sft import train_sft

    tokenizer = cfg.model or tokenizer  # a hub / local base model brings its own tokenizer
    with tempfile.TemporaryDirectory(prefix="debate_sft_") as scratch:
        scratch = Path(scratch)
        train, val = write_sft_split(rows, scratch, seed=cfg.seed)
        train_rows = read_jsonl(train)
        tok = training_tokenizer(tokenizer, lambda: (r[k] for r in train_rows for k in ("prompt", "response")))
        added = quote_tokens_needed(tok)
        if added and cfg.model is not None:
            raise PipelineError(f"tokenizer of {cfg.model}: the quote tags {added} do not survive encoding and "
                                "decoding; use a model whose tokenizer keeps them")
        if added:
            tok.add_tokens(added)
        if added or tokenizer == WORLD:
            tokenizer = str(scratch / "tokenizer")
            tok.save_pretrained(tokenizer)
        metrics = train_sft(cfg, tokenizer, train, val, out_dir, ckpt_dir=ckpt_dir)
    return {**metrics, "quote_tokens_added": added}


SOFT_LOSS = (["sigmoid", "robust"], [2.0, -1.0])
"""TRL loss types and weights of the soft-label DPO term (:func:`soft_label_trainer`)."""


def dpo_trainer_config(cfg: DPOSettings, ckpt_dir: str | Path | None, scratch_dir: str | Path,
                       soft_labels: bool = False) -> Any:
    """TRL's ``DPOConfig`` of one DPO iteration: :func:`~rlhf_pipeline.trl_args.training_args` of ``cfg``,
    ``beta``, the DPO loss (``sigmoid``; with ``soft_labels`` :data:`SOFT_LOSS` and the dataset's extra columns
    kept, for :func:`soft_label_trainer`) plus ``nll_weight`` times TRL's ``sft`` loss (when above 0)."""
    from trl import DPOConfig

    from ..trl_args import training_args

    loss_type, weights = (list(SOFT_LOSS[0]), list(SOFT_LOSS[1])) if soft_labels else (["sigmoid"], [1.0])
    if cfg.nll_weight > 0:
        loss_type, weights = [*loss_type, "sft"], [*weights, cfg.nll_weight]
    extra = {"remove_unused_columns": False} if soft_labels else {}
    return DPOConfig(**training_args(cfg, ckpt_dir, scratch_dir), beta=cfg.beta, loss_type=loss_type,
                     loss_weights=weights if len(loss_type) > 1 else None, logging_steps=5, **extra)


@functools.cache
def soft_label_trainer() -> type:
    """``SoftLabelDPOTrainer``: TRL's ``DPOTrainer`` training each pair on its soft label l (the dataset's
    ``soft_label`` column), the DPO term -(l log sigmoid(x) + (1 - l) log sigmoid(-x)), x = beta h, h the DPO
    logit; l = 1 is TRL's sigmoid loss.

    TRL 1.16 takes no per-pair label, but its ``robust`` loss reads the trainer's ``label_smoothing`` (eps) at
    every step and is -log sigmoid(x) - eps x / (1 - 2 eps); with eps = (1 - l) / (3 - 2 l), set per pair from
    the batch by ``compute_loss``, it is -log sigmoid(x) - (1 - l) x, so 2 sigmoid - robust (:data:`SOFT_LOSS`)
    is -log sigmoid(x) + (1 - l) x, the soft-label term (log sigmoid(x) - log sigmoid(-x) = x). The collator is
    TRL's with the ``soft_label`` column added (:class:`_WithSoftLabel`; TRL keeps the column with
    ``remove_unused_columns=False``). PipelineError at construction when the trainer lacks what this relies on
    (a float ``label_smoothing``, ``loss_types`` starting with :data:`SOFT_LOSS`), as a TRL version may."""
    from trl import DPOTrainer, __version__

    class SoftLabelDPOTrainer(DPOTrainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            hooks = (type(getattr(self, "label_smoothing", None)), getattr(self, "loss_types", [])[:2],
                     getattr(self, "loss_weights", [])[:2], self.args.remove_unused_columns)
            if hooks != (float, SOFT_LOSS[0], SOFT_LOSS[1], False):
                raise PipelineError(f"soft-label DPO: TRL {__version__}'s DPOTrainer has no float label_smoothing "
                                    "read by its 'robust' loss, or the trainer is not configured by "
                                    "dpo_trainer_config(soft_labels=True)")
            self.data_collator = _WithSoftLabel(self.data_collator)

        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:
            label = inputs.pop("soft_label")
            self.label_smoothing = (1 - label) / (3 - 2 * label)  # per pair: robust = -log sigmoid(x) - (1 - l) x
            try:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            finally:
                self.label_smoothing = 0.0

    return SoftLabelDPOTrainer


@dataclasses.dataclass
class _WithSoftLabel:
    """A collator's batch plus the examples' ``soft_label`` as a float tensor."""

    collate: Any

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        return {**self.collate(examples), "soft_label": torch.tensor([float(e["soft_label"]) for e in examples])}


def pair_labels(pairs: Sequence[dict[str, Any]]) -> list[float]:
    """Each pair's ``soft_label`` (1, hard, where absent); PipelineError naming the pair when one is not a
    probability."""
    labels = []
    for i, p in enumerate(pairs):
        label = p.get("soft_label", 1.0)
        if isinstance(label, bool) or not isinstance(label, (int, float)) or not 0 <= label <= 1:
            raise PipelineError(f"pair {i}: soft_label {label!r} is not a probability in [0, 1]")
        labels.append(float(label))
    return labels


def dpo_trainer(cfg: DPOSettings, model: Any, tok: Any, pairs: Sequence[dict[str, Any]], scratch_dir: str | Path,
                ckpt_dir: str | Path | None = None) -> Any:
    """The DPO trainer of ``pairs`` from ``model`` (also the reference): TRL's ``DPOTrainer`` when every pair's
    label is 1 (hard), else :func:`soft_label_trainer`'s, on the ``soft_label`` column."""
    from datasets import Dataset
    from trl import DPOTrainer

    labels = pair_labels(pairs)
    soft = any(label != 1.0 for label in labels)
    rows = [{"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"],
             **({"soft_label": label} if soft else {})} for p, label in zip(pairs, labels, strict=True)]
    trainer_cls = soft_label_trainer() if soft else DPOTrainer
    return trainer_cls(model=model, args=dpo_trainer_config(cfg, ckpt_dir, scratch_dir, soft_labels=soft),
                       train_dataset=Dataset.from_list(rows), processing_class=tok,
                       peft_config=cfg.lora.peft_config() if cfg.lora.enabled else None)


def train_debater_dpo(cfg: DPOSettings, init_model: str | Path, pairs: list[dict[str, Any]], out_dir: str | Path,
                      ckpt_dir: str | Path | None = None) -> dict[str, Any]:
    """One DPO iteration (see the module docstring): ``init_model`` (a model directory with its
    tokenizer) trained on ``pairs`` with :func:`dpo_trainer`; saves model + tokenizer to ``out_dir``.

    With ``ckpt_dir`` the run checkpoints, resumes and stops on SIGTERM/SIGUSR1 like SFT
    (:func:`~rlhf_pipeline.trainer_checkpoints.train_resumable`). Returns metrics (also in
    ``out_dir/dpo_metrics.json``)."""
    from transformers import set_seed

    from ..models import load_causal_lm, load_tokenizer
    from ..trainer_checkpoints import save_trained, train_resumable

    if not pairs:
        raise PipelineError("no preference pairs to train on")
    labels = pair_labels(pairs)
    tok = load_tokenizer(str(init_model), padding_side="left")
    set_seed(cfg.seed)
    model = load_causal_lm(str(init_model))
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="dpo_trainer_") as scratch:
        trainer = dpo_trainer(cfg, model, tok, pairs, scratch, ckpt_dir)
        t0 = time.time()
        result, resumed_from = train_resumable(trainer, ckpt_dir, "DPO")
        logs = [h for h in trainer.state.log_history if "loss" in h]
    model = trainer.model
    if cfg.lora.enabled:
        model = model.merge_and_unload()
    metrics = {
        "train_loss": result.training_loss,
        "last_log": logs[-1] if logs else None,
        "n_pairs": len(pairs),
        "soft_labels": any(label != 1.0 for label in labels),
        "mean_label": sum(labels) / len(labels),
        "runtime_s": round(time.time() - t0, 1),
        "resumed_from": None if resumed_from is None else resumed_from.name,
        "config": dataclasses.asdict(cfg),
    }
    save_trained(trainer, model, tok, out_dir, metrics, "dpo_metrics.json", ckpt_dir)
    return metrics


def read_pairs(path: str | Path) -> list[dict[str, Any]]:
    return read_jsonl(path, required=["prompt", "chosen", "rejected"])


# ------------------------------------------------------------------------------------- experiment

STRENGTH_COLUMNS = ["debater", "checkpoint", "best_of_n", "bt_strength", "bt_lo", "bt_hi", "debate_accuracy",
                    "debate_accuracy_se", "debate_questions", "consultancy_accuracy", "consultancy_accuracy_se",
                    "consultancy_questions", "quote_validity"]


def _accuracy(df: Any) -> tuple[float, float, int]:
    """Mean over questions of the per-question mean p_correct, its standard error, n questions."""
    from ..stats import mean_se

    return mean_se(df.groupby("question_id")["p_correct"].mean())


def strength_table(rounds: Any, ratings: Any, checkpoints: Sequence[str], bon: dict[str, tuple[str, int]],
                   anchors: Sequence[str] = ()) -> Any:
    """One row per debater of the strength tournament (columns :data:`STRENGTH_COLUMNS`):
    ``bt_*`` from ``ratings`` (ratings.csv), judge accuracy (mean ``p_correct`` per question,
    averaged over questions, SE over questions, as judge.csv) in its self-play debates and in its
    consultancies. ``bon``: debater -> (checkpoint, n) for the best-of-N variants; ``anchors``: the
    reference debaters (``strength.anchors``), last, with an empty ``checkpoint``."""
    import pandas as pd

    ok = rounds[rounds["status"] == "ok"]
    rated = ratings.set_index("debater")
    rows = []
    for name in [d for c in checkpoints for d in [c, *[b for b, (cc, _) in bon.items() if cc == c]]] + list(anchors):
        ckpt, n = bon.get(name, ("" if name in anchors else name, 1))
        selfplay = ok[(ok["format"] == "debate") & (ok["debater_a"] == name) & (ok["debater_b"] == name)]
        consult = ok[(ok["format"] == "consultancy") & (ok["debater_a"] == name)]
        d_acc, d_se, d_n = _accuracy(selfplay)
        c_acc, c_se, c_n = _accuracy(consult)
        r = rated.loc[name] if name in rated.index else None

        def get(key: str, r: Any = r) -> float:
            return float(r[key]) if r is not None else float("nan")
        rows.append({"debater": name, "checkpoint": ckpt, "best_of_n": n, "bt_strength": get("bt_strength"),
                     "bt_lo": get("bt_lo"), "bt_hi": get("bt_hi"), "debate_accuracy": d_acc,
                     "debate_accuracy_se": d_se, "debate_questions": d_n, "consultancy_accuracy": c_acc,
                     "consultancy_accuracy_se": c_se, "consultancy_questions": c_n,
                     "quote_validity": get("quote_validity")})
    return pd.DataFrame(rows, columns=STRENGTH_COLUMNS)


def plot_strength(table: Any, path: str | Path) -> None:
    """Judge accuracy (debate, consultancy; ±1 SE) against each debater's Bradley-Terry strength."""
    from matplotlib.figure import Figure

    from ..plotting import save_figure

    fig = Figure(figsize=(6, 4.2))
    ax = fig.subplots()
    for col, label, marker in (("debate_accuracy", "debate (self-play)", "o"),
                               ("consultancy_accuracy", "consultancy", "s")):
        ax.errorbar(table["bt_strength"], table[col], yerr=table[f"{col}_se"], fmt=marker, capsize=3, label=label)
    for _, r in table.iterrows():
        ax.annotate(r["debater"], (r["bt_strength"], r["debate_accuracy"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("debater strength (Bradley-Terry, cross-play)")
    ax.set_ylabel("judge accuracy (mean p_correct)")
    ax.set_title("Judge accuracy against debater strength")
    ax.legend(fontsize=8)
    save_figure(fig, path)
