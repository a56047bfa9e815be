"""A debater trained by the project's PPO (:func:`rlhf_pipeline.ppo.train_ppo`) with the judge's probability for
its side as the reward (``debate.training.ppo``; the ``debate-ppo`` stage, rule ``debate_ppo``).

**Prompts** (:func:`speech_prompts`): for every question of the dataset's train split (the first
``questions``) and each of its two answers, what a checkpoint debater is given when it speaks first: turn 0 of
a one-turn round (single-speech rounds, as the strength tournament's default ``rounds: 1``), nothing said yet,
rendered by the debater prompt set (``training.debater.prompt``) through
:func:`~rlhf_pipeline.debate.training.speech_prompt`, exactly as the SFT and DPO rows are; the ``debate``
template with an opponent, the ``consultancy`` one without. The PPO policy starts from checkpoint
``ppo.init`` (default the SFT debater), which is also its KL reference. Prompts are never truncated: a prompt
longer than ``hparams.max_prompt_length`` tokens, or one that leaves no room for a speech in the model's
context, stops the stage before training with one line.

**Reward** (:class:`JudgeReward`): one judged round per generated speech. The speech (the decoded response,
stripped, as an ``hf`` debater returns it) gets its quotes verified against the passage
(:func:`~rlhf_pipeline.debate.quotes.verify_quotes`, ``debate.quote_fuzzy_threshold``) exactly as in a round.
With an opponent (``ppo.opponent``: a checkpoint or a debater of ``debate.debaters``), the opponent gives one
speech for the other answer in the other slot (seed :func:`~rlhf_pipeline.debate.rounds.speech_seed` of the
round), the speaker's slot (``a``, read first, or ``b``) drawn per round, and the judge sees a ``debate``;
without one it sees a ``consultancy`` of the speech alone. The judge (``training.judge``, built by
:func:`~rlhf_pipeline.debate.backends.build_judge`) sees the answers in a per-round random order
(:func:`~rlhf_pipeline.debate.rounds.answer_order`); its probabilities are mapped back to answers and
checked (:func:`~rlhf_pipeline.debate.rounds.check_verdict`). The score is the judge's probability for the
speaker's answer. Best-of-N is off: one speech per prompt, judged once.

Per-round seed: :func:`~rlhf_pipeline.seeding.derive_seed` of (``ppo.seed``, ``train``, the training batch's
number, the sample's index in it, question id, side) in training, and of (``ppo.seed``, ``eval``, question id,
side) in evaluation, so every evaluation judges each eval prompt with the same answer order, slot and opponent
speech. The batch counter is the reward's state (``state_dict``), saved in every PPO checkpoint: a resumed run
judges as an uninterrupted one.

Per-sample terms (``ScoredBatch.terms``: their batch means in ``train_log.csv`` as ``term_<name>``, per sample
in the eval files and trajectories): ``judge_p`` (the score), ``judge_p_correct`` (the judge's probability for
the correct answer), ``correct_side`` (1 when the speaker defends the correct answer), ``verified_quotes``,
``unverified_quotes``, ``opponent_verified_quotes``, ``shown_first`` (1 when the speaker's answer is shown
first), ``slot_a`` (1 when the judge reads the speaker first); extras ``question_id`` and ``opponent_speech``.

Files under ``results/debate/ppo/`` (the PPO trainer's): ``model/`` (checkpoint debater ``ppo``: an ``hf``
debater speaking as ``training.debater``), ``train_log.csv``, ``eval/step{N}.jsonl``, ``trajectories/``,
``manifest.json`` (with each evaluation's mean ``judge_p``); resumable checkpoints under ``checkpoint_dir``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..config import bad
from ..errors import PipelineError
from ..seeding import derive_seed
from .config import DebatePPORun, DebatePPOSettings
from .quotes import verify_quotes
from .rounds import SLOTS, answer_order, check_verdict, probs_by_answer, speech_seed
from .types import Debater, Judge, JudgeContext, Question, Speech, SpeechContext

SPEAKER = "ppo"
"""The speaker's name in the judged rounds (the checkpoint it becomes)."""
TERMS = ("judge_p", "judge_p_correct", "correct_side", "verified_quotes", "unverified_quotes",
         "opponent_verified_quotes", "shown_first", "slot_a")
"""The per-sample terms of :meth:`JudgeReward.score_batch` (see the module docstring)."""


# ------------------------------------------------------------------------------------------ prompts


def speech_context(question: Question, side: int, fmt: str) -> SpeechContext:
    """What the speaker knows: turn 0 of a one-turn round of format ``fmt``, nothing said yet."""
    role = "debater_a" if fmt == "debate" else "consultant"  # a turn-0 prompt shows no role label
    return SpeechContext(question=question, side=side, role=role, format=fmt, turn=0, n_turns=1, visible=[],
                         round_id=f"ppo/{question.id}/{side}", seed=0)


def speech_prompts(tok: Any, prompts: dict[str, Any], prompt_name: str, questions: Sequence[Question],
                   fmt: str) -> list[tuple[str, Question, int]]:
    """``(prompt, question, side)`` for each question and each of its answers (side 0, then 1), the prompt as
    :func:`~rlhf_pipeline.debate.training.speech_prompt` renders it for the trainers."""
    from .training import speech_prompt

    return [(speech_prompt(tok, prompts, prompt_name, speech_context(q, side, fmt)), q, side)
            for q in questions for side in (0, 1)]


def check_prompt_lengths(tok: Any, texts: Sequence[str], settings: DebatePPOSettings, context: int | None,
                         where: str = DebatePPOSettings.section) -> int:
    """The longest prompt's token count (tokenised as PPO tokenises them); PipelineError naming
    ``where.hparams.max_prompt_length`` when it is longer (PPO would cut the passage), or when prompt and speech
    do not fit the model's ``context`` (its ``max_position_embeddings``; None: unknown, not checked)."""
    hp = settings.hparams
    longest = max(len(ids) for ids in tok(list(texts))["input_ids"])
    if longest > hp.max_prompt_length:
        bad(f"{where}.hparams.max_prompt_length", hp.max_prompt_length, f"at least {longest}, the longest speech "
            "prompt in tokens (prompts are never truncated)")
    if context is not None and longest + hp.max_new_tokens > context:
        bad(f"{where}.hparams.max_new_tokens", hp.max_new_tokens, f"at most {context - longest}: the longest "
            f"prompt ({longest} tokens) and a speech must fit the model's {context} positions")
    return longest


# ------------------------------------------------------------------------------------------- reward


@dataclass
class JudgedSpeech:
    """One speech's judged round."""

    question: Question
    judge_p: float
    """The judge's probability for the speaker's answer."""
    probs: list[float]
    """The judge's probabilities by answer index."""
    speech: Speech
    opponent: Speech | None
    order: list[int]
    slot: str


class JudgeReward:
    """The PPO reward: the judge's probability for the speaker's answer in a round around each generated
    speech (see the module docstring). ``prompts``: prompt text -> (question, side), as built by
    :func:`speech_prompts`."""

    def __init__(self, judge: Judge, opponent: Debater | None, prompts: dict[str, tuple[Question, int]],
                 threshold: float, seed: int):
        self.judge, self.opponent, self.prompts = judge, opponent, prompts
        self.threshold, self.seed = threshold, seed
        self.fmt = "consultancy" if opponent is None else "debate"
        self.batches = 0
        """Training batches scored so far (the reward's state)."""
        self._eval_opponents: dict[tuple[str, int], Speech] = {}

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches = int(state["batches"])

    def __call__(self, prompts: list[str], responses: list[str]):
        """The judge's probabilities for the speakers' answers, judged as in evaluation (no state changes)."""
        return self.score_batch(prompts, responses, training=False).score

    def score_batch(self, prompts: list[str], responses: list[str], training: bool):
        """:class:`~rlhf_pipeline.ppo.hooks.ScoredBatch`: ``judge_p`` per speech with the terms and extras of the
        module docstring."""
        import numpy as np

        from ..ppo.hooks import ScoredBatch

        batch = self.batches
        if training:
            self.batches += 1
        rows = []
        for i, (prompt, response) in enumerate(zip(prompts, responses)):
            if prompt not in self.prompts:
                raise PipelineError(f"debate PPO reward: prompt {prompt[:80]!r}... is not a speech prompt of this run")
            q, side = self.prompts[prompt]
            seed = (derive_seed(self.seed, "train", batch, i, q.id, side) if training
                    else derive_seed(self.seed, "eval", q.id, side))
            rows.append(self.judge_speech(q, side, response, seed, cache=not training))
        terms = {
            "judge_p": [r.judge_p for r in rows],
            "judge_p_correct": [r.probs[r.question.correct_index] for r in rows],
            "correct_side": [float(r.speech.side == r.question.correct_index) for r in rows],
            "verified_quotes": [_count(r.speech, "verified") for r in rows],
            "unverified_quotes": [_count(r.speech, "unverified") for r in rows],
            "opponent_verified_quotes": [_count(r.opponent, "verified") for r in rows],
            "shown_first": [float(r.order[0] == r.speech.side) for r in rows],
            "slot_a": [float(r.slot == "a") for r in rows],
        }
        extras = {"question_id": [r.question.id for r in rows],
                  "opponent_speech": [r.opponent.raw if r.opponent is not None else "" for r in rows]}
        return ScoredBatch(np.asarray(terms["judge_p"], dtype=np.float64), terms, extras)

    def judge_speech(self, q: Question, side: int, response: str, seed: int, cache: bool = False) -> JudgedSpeech:
        """Judge ``response`` (defending ``q.answers[side]``) in one round seeded by ``seed``. ``cache``: reuse the
        opponent's speech for (question, side), whose seed is the same at every evaluation."""
        slot = SLOTS[0] if self.opponent is None or random.Random(derive_seed(seed, "slot")).random() < 0.5 \
            else SLOTS[1]
        role = "consultant" if self.opponent is None else f"debater_{slot}"
        raw = response.strip()
        shown, quotes = verify_quotes(raw, q.passage, self.threshold)
        speech = Speech(role=role, speaker=SPEAKER, side=side, turn=0, raw=raw, shown=shown, quotes=quotes)
        opponent = None
        if self.opponent is not None:
            key = (q.id, side)
            opponent = self._eval_opponents.get(key) if cache else None
            if opponent is None:
                opponent = self._opponent_speech(q, 1 - side, "debater_b" if slot == "a" else "debater_a", seed)
                if cache:
                    self._eval_opponents[key] = opponent
        speeches = [speech] if opponent is None else sorted([speech, opponent], key=lambda s: s.role)
        order = answer_order(seed)
        ctx = JudgeContext(question=q, format=self.fmt, answer_order=list(order), speeches=speeches,
                           round_id=f"ppo/{q.id}/{side}", seed=derive_seed(seed, "judge"))
        verdict = check_verdict(self.judge.judge(ctx), self.judge.name)
        probs = probs_by_answer(verdict.probs, order)
        return JudgedSpeech(question=q, judge_p=probs[side], probs=probs, speech=speech, opponent=opponent,
                            order=order, slot=slot)

    def _opponent_speech(self, q: Question, side: int, role: str, seed: int) -> Speech:
        ctx = SpeechContext(question=q, side=side, role=role, format="debate", turn=0, n_turns=1, visible=[],
                            round_id=f"ppo/{q.id}/{1 - side}", seed=speech_seed(seed, role, 0))
        raw = self.opponent.speak(ctx)
        if not isinstance(raw, str):
            raise PipelineError(f"debater {self.opponent.name}: speak() returned {type(raw).__name__}, expected str")
        shown, quotes = verify_quotes(raw, q.passage, self.threshold)
        return Speech(role=role, speaker=self.opponent.name, side=side, turn=0, raw=raw, shown=shown, quotes=quotes)


def _count(speech: Speech | None, status: str) -> float:
    return float(sum(c.status == status for c in speech.quotes)) if speech is not None else 0.0


def build_reward(run: DebatePPORun, prompts: dict[str, Any], by_prompt: dict[str, tuple[Question, int]]
                 ) -> JudgeReward:
    """The run's :class:`JudgeReward`: its judge and opponent backends (``prompts``: the loaded prompts file)."""
    from .backends import build_debater, build_judge

    judge = build_judge(run.judge, run.judges[run.judge], prompts)
    opponent = (None if run.opponent is None
                else build_debater(run.settings.opponent or "opponent", run.opponent, prompts))
    return JudgeReward(judge, opponent, by_prompt, run.quote_fuzzy_threshold, run.settings.seed)


# --------------------------------------------------------------------------------------------- train


def eval_judge_p(eval_files: Sequence[str | os.PathLike]) -> dict[int, float]:
    """Each evaluation's mean ``judge_p``: step -> the mean over its eval speeches (``eval_files``: the PPO run's
    ``eval/step{N}.jsonl``)."""
    import numpy as np

    from ..io import read_jsonl

    out = {}
    for path in eval_files:
        rows = read_jsonl(path, required=["step", "term_judge_p"])
        out[int(rows[0]["step"])] = float(np.mean([r["term_judge_p"] for r in rows]))
    return dict(sorted(out.items()))


def train_debater_ppo(run: DebatePPORun, policy_dir: str, train_questions: Sequence[Question],
                      eval_questions: Sequence[Question], out_dir: str | os.PathLike,
                      ckpt_dir: str | os.PathLike) -> dict[str, Any]:
    """Train checkpoint ``ppo`` from ``policy_dir`` with :func:`rlhf_pipeline.ppo.train_ppo` against
    :class:`JudgeReward` on the speech prompts of ``train_questions``, evaluating on those of ``eval_questions``
    (see the module docstring); returns the PPO summary with ``eval_judge_p`` (step -> mean judge_p)."""
    from transformers import AutoConfig

    from ..ppo import train_ppo
    from ..ppo.run import load_policy_tokenizer
    from .prompts import load_prompts

    if not train_questions or not eval_questions:
        raise PipelineError(f"debate PPO: {len(train_questions)} training and {len(eval_questions)} eval questions; "
                            "both splits need at least one")
    prompts = load_prompts(run.prompts)
    tok = load_policy_tokenizer(policy_dir)
    train = speech_prompts(tok, prompts, run.debater.prompt, train_questions, run.format)
    evals = speech_prompts(tok, prompts, run.debater.prompt, eval_questions, run.format)
    context = getattr(AutoConfig.from_pretrained(policy_dir), "max_position_embeddings", None)
    longest = check_prompt_lengths(tok, [p for p, _, _ in train + evals], run.settings, context)
    by_prompt: dict[str, tuple[Question, int]] = {}
    for text, q, side in train + evals:
        by_prompt.setdefault(text, (q, side))
    reward = build_reward(run, prompts, by_prompt)
    info = {"reward": {"judge": run.judge, "opponent": run.settings.opponent, "format": run.format,
                       "init": run.settings.init, "prompt": run.debater.prompt, "seed": run.settings.seed}}
    summary = train_ppo(run.settings.hparams, policy_dir, reward, [p for p, _, _ in train], [p for p, _, _ in evals],
                        out_dir, ckpt_dir, run_info=info)
    return {**summary, "prompts": {"train": len(train), "eval": len(evals), "longest_tokens": longest},
            "eval_judge_p": eval_judge_p(summary["eval_files"])}
