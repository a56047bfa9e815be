"""A small debate world shared by the debate tests: a passage with one supporting sentence, its question, and
the speech and judge contexts built on it; questions on a second passage for rounds and tournaments, a
tournament's settings and a constant clock; round records built by hand."""

from __future__ import annotations

from pathlib import Path

import torch

from rlhf_pipeline.debate.config import TournamentConfig
from rlhf_pipeline.debate.quotes import verify_quotes
from rlhf_pipeline.debate.types import JudgeContext, Question, QuoteCheck, RoundRecord, Speech, SpeechContext

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "config/debate/prompts.yaml"
SUPPORT = "Mira Tosk sailed to Oslo in 1802 to buy grain."
PASSAGE = ("The harbour town of Vell had three bakers. " + SUPPORT + " Her brother Tam stayed home and repaired "
           "the mill. In 1805 a storm destroyed the northern pier. Tam later sailed to Lima with a cargo of wool. "
           "The mayor counted 412 sheep that spring. Children in Vell learned to swim before they could read. "
           "The mill was painted blue every summer.")
Q = Question("q1", "s1", PASSAGE, "Where did Mira Tosk sail to buy grain?", ["Oslo", "Lima"], 0, "toy")


def ctx(side=0, role="debater_a", turn=0, visible=(), seed=7, fmt="debate", n_turns=3) -> SpeechContext:
    return SpeechContext(Q, side, role, fmt, turn, n_turns, list(visible), "round-1", seed)


def speech(raw: str, side: int, role: str = "debater_a", turn: int = 0) -> Speech:
    shown, checks = verify_quotes(raw, PASSAGE, 90.0)
    return Speech(role, "x", side, turn, raw, shown, checks)


def jctx(speeches, order=(0, 1), fmt="debate") -> JudgeContext:
    return JudgeContext(Q, fmt, list(order), list(speeches), "round-1", 3)


ROUND_PASSAGE = ("Alice flew to Paris in 1999. Bob stayed in Rome all winter. The museum had 12 rooms. "
                 "Carol sold the red boat to Dan. Eve painted the gate green.")


def question(i: int = 0, correct: int = 0) -> Question:
    return Question(f"q{i:02d}", f"s{i // 2}", ROUND_PASSAGE, f"Where did Alice fly? ({i})", ["Paris", "Rome"], correct,
                    "test")


QUESTIONS = [question(i, i % 2) for i in range(6)]


def tcfg(**kw) -> TournamentConfig:
    return TournamentConfig(**{"debaters": ["x", "y"], "judge": "j", "rounds": 3, **kw})


def clock() -> float:
    """A constant clock: ``seconds`` fields are 0.0, so transcripts compare byte for byte."""
    return 0.0


SLOTS = {"debate": ("a", "b"), "consultancy": ("a",), "double_consultancy": ("a", "b"), "empty": ()}
ROLES = {"debate": {"a": "debater_a", "b": "debater_b"}, "consultancy": {"a": "consultant"},
         "double_consultancy": {"a": "consultant_a", "b": "consultant_b"}, "empty": {}}


def quote_checks(verified: int, unverified: int) -> list[QuoteCheck]:
    return ([QuoteCheck(f"v{i}", "verified", "exact", 100.0, f"v{i}") for i in range(verified)]
            + [QuoteCheck(f"u{i}", "unverified", None, 10.0, None) for i in range(unverified)])


def make_round(qid: str, fmt: str = "debate", a: str = "x", b: str = "y", side_a: int = 0, correct: int = 0,
               order: tuple[int, int] = (0, 1), p0: float | None = 0.7, swap: str = "a0",
               quotes: dict[str, tuple[int, int]] | None = None, status: str = "ok", chunk: int = 0) -> RoundRecord:
    """A round: ``p0`` is the judge's probability for answer 0; ``quotes``: slot -> (verified, unverified)."""
    slots = SLOTS[fmt]
    debaters = dict(zip(slots, (a, b)))
    sides = dict(zip(slots, (side_a, 1 - side_a)))
    quotes = quotes or {}
    speeches = [Speech(role=ROLES[fmt][s], speaker=debaters[s], side=sides[s], turn=0, raw="r", shown="s",
                       quotes=quote_checks(*quotes.get(s, (0, 0)))) for s in slots]
    pair = f"{a}-vs-{b}" if slots else "judge"
    return RoundRecord(round_id=f"{fmt}/{pair}/{qid}/{swap}", tournament="t", chunk=chunk, question_id=qid,
                       story_id="s0", question="Where?", answers=["Paris", "Rome"], format=fmt, debaters=debaters,
                       sides=sides, correct_index=correct, answer_order=list(order), speeches=speeches, judge="j",
                       probs=None if p0 is None or status == "failed" else [p0, 1 - p0], has_probabilities=True,
                       judge_raw="", provenance={}, status=status,
                       error="boom: server said 500" if status == "failed" else None)
