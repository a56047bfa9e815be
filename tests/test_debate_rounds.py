"""Debate rounds (formats, visibility, answer order, best-of-N, failures) and tournaments (schedule,
chunks, resume after a kill, determinism), with the deterministic / random backends and small
backends defined here that record what they were shown."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from rlhf_pipeline.debate import backends
from rlhf_pipeline.debate.backends import simple
from rlhf_pipeline.debate.config import DebateSection, TournamentConfig
from rlhf_pipeline.debate.rounds import (
    Match,
    answer_order,
    check_verdict,
    error_line,
    play_round,
    probs_by_answer,
    speech_seed,
    visible_to,
)
from rlhf_pipeline.debate.tournament import chunk_matches, pair_questions, run_chunk, schedule
from rlhf_pipeline.debate.types import Question, RoundRecord, Verdict
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import append_jsonl, read_jsonl
from rlhf_pipeline.seeding import derive_seed

SRC = Path(__file__).resolve().parents[1] / "src"
PASSAGE = ("Alice flew to Paris in 1999. Bob stayed in Rome all winter. The museum had 12 rooms. "
           "Carol sold the red boat to Dan. Eve painted the gate green.")


def question(i: int = 0, correct: int = 0) -> Question:
    return Question(f"q{i:02d}", f"s{i // 2}", PASSAGE, f"Where did Alice fly? ({i})", ["Paris", "Rome"], correct,
                    "test")


QUESTIONS = [question(i, i % 2) for i in range(6)]


def tcfg(**kw) -> TournamentConfig:
    return TournamentConfig(**{"debaters": ["x", "y"], "judge": "j", "rounds": 3, **kw})


def clock() -> float:
    """A constant clock: ``seconds`` fields are 0.0, so transcripts compare byte for byte."""
    return 0.0


class Recorder:
    """A debater that records every context it speaks in; its speech names speaker, role, turn and side."""

    def __init__(self, name: str, label=None):
        self.name, self.calls, self.label = name, [], label

    def speak(self, ctx):
        self.calls.append(ctx)
        if self.label is not None:
            return self.label(ctx)
        return f"{self.name} {ctx.role} t{ctx.turn} s{ctx.side} <quote>Alice flew to Paris</quote>"

    def provenance(self):
        return {"backend": "test-recorder"}


class Judge:
    """A judge that records its contexts and gives ``fn(ctx)`` as probabilities by shown position."""

    def __init__(self, fn=lambda ctx: [1.0, 0.0], name: str = "j"):
        self.name, self.fn, self.calls = name, fn, []

    def judge(self, ctx):
        self.calls.append(ctx)
        return Verdict(self.fn(ctx), True, "test")

    def provenance(self):
        return {"backend": "test-judge"}


def match(fmt="debate", debaters=None, sides=None, rid="r", seed=7, q=None) -> Match:
    debaters = {"debate": {"a": "x", "b": "y"}, "consultancy": {"a": "x"}, "double_consultancy": {"a": "x", "b": "x"},
                "empty": {}}[fmt] if debaters is None else debaters
    sides = {"debate": {"a": 0, "b": 1}, "consultancy": {"a": 1}, "double_consultancy": {"a": 1, "b": 0},
             "empty": {}}[fmt] if sides is None else sides
    return Match(f"{fmt}/{rid}", fmt, q or question(), debaters, sides, seed)


def seen(ctx) -> list[tuple[str, int]]:
    return [(s.role, s.turn) for s in ctx.visible]


# ------------------------------------------------------------------------------------- formats


def test_simultaneous_debate_hides_the_current_turn():
    x, y, j = Recorder("x"), Recorder("y"), Judge()
    rec = play_round(match(), tcfg(), {"x": x, "y": y}, j, tournament="t", clock=clock)
    assert rec.status == "ok" and rec.error is None
    order = [("debater_a", 0), ("debater_b", 0), ("debater_a", 1), ("debater_b", 1), ("debater_a", 2),
             ("debater_b", 2)]
    assert [(s.role, s.turn) for s in rec.speeches] == order
    assert [s.speaker for s in rec.speeches] == ["x", "y"] * 3 and [s.side for s in rec.speeches] == [0, 1] * 3
    for t in range(3):  # both see every speech of earlier turns, neither sees the other's turn-t speech
        assert seen(x.calls[t]) == order[: 2 * t] and seen(y.calls[t]) == order[: 2 * t]
        assert (x.calls[t].role, x.calls[t].side, y.calls[t].role, y.calls[t].side) == ("debater_a", 0, "debater_b", 1)
    assert [(s.role, s.turn) for s in j.calls[0].speeches] == order and len(j.calls) == 1
    # every speech raw and as shown, with its quote checked
    assert rec.speeches[0].raw.endswith("<quote>Alice flew to Paris</quote>")
    assert rec.speeches[0].shown.endswith("<v_quote>Alice flew to Paris</v_quote>")
    assert rec.speeches[0].quotes[0].status == "verified" and rec.speeches[0].quotes[0].method == "exact"
    assert rec.provenance == {"x": {"backend": "test-recorder"}, "y": {"backend": "test-recorder"},
                              "j": {"backend": "test-judge"}}


def test_sequential_debate_b_sees_a_of_the_same_turn():
    x, y = Recorder("x"), Recorder("y")
    rec = play_round(match(), tcfg(simultaneous=False), {"x": x, "y": y}, Judge(), tournament="t", clock=clock)
    order = [(s.role, s.turn) for s in rec.speeches]
    for t in range(3):
        assert seen(x.calls[t]) == order[: 2 * t]
        assert seen(y.calls[t]) == order[: 2 * t + 1] and seen(y.calls[t])[-1] == ("debater_a", t)


def test_visible_to_by_format():
    rec = play_round(match("double_consultancy"), tcfg(rounds=2), {"x": Recorder("x")}, Judge(), tournament="t")
    sp = rec.speeches
    assert [(s.role, s.turn) for s in visible_to("double_consultancy", True, "consultant_b", 2, sp)] == \
        [("consultant_b", 0), ("consultant_b", 1)]
    assert visible_to("debate", True, "debater_a", 0, sp) == []


def test_consultancy_one_consultant_sees_only_its_own_speeches():
    x, j = Recorder("x"), Judge()
    rec = play_round(match("consultancy"), tcfg(rounds=3), {"x": x}, j, tournament="t", clock=clock)
    assert [(s.role, s.turn, s.side, s.speaker) for s in rec.speeches] == [("consultant", t, 1, "x") for t in range(3)]
    assert [seen(c) for c in x.calls] == [[], [("consultant", 0)], [("consultant", 0), ("consultant", 1)]]
    assert all(c.format == "consultancy" and c.n_turns == 3 for c in x.calls)
    assert len(j.calls[0].speeches) == 3 and rec.debaters == {"a": "x"} and rec.sides == {"a": 1}


def test_double_consultancy_two_separate_transcripts():
    x, j = Recorder("x"), Judge()
    rec = play_round(match("double_consultancy"), tcfg(rounds=2), {"x": x}, j, tournament="t", clock=clock)
    want = [("consultant_a", 0, 1), ("consultant_a", 1, 1), ("consultant_b", 0, 0), ("consultant_b", 1, 0)]
    assert [(s.role, s.turn, s.side) for s in rec.speeches] == want
    assert [seen(c) for c in x.calls] == [[], [("consultant_a", 0)], [], [("consultant_b", 0)]]
    assert [(s.role, s.turn, s.side) for s in j.calls[0].speeches] == want


def test_empty_round_judge_alone():
    j = Judge(lambda ctx: [0.25, 0.75])
    rec = play_round(match("empty"), tcfg(), {}, j, tournament="t", clock=clock)
    assert rec.status == "ok" and rec.speeches == [] and j.calls[0].speeches == [] and len(j.calls) == 1
    assert rec.probs == probs_by_answer([0.25, 0.75], rec.answer_order) and rec.provenance == {"j": j.provenance()}


# ----------------------------------------------------------------------------- answer order, sides


def test_probs_by_answer_hand_values():
    assert probs_by_answer([0.8, 0.2], [0, 1]) == [0.8, 0.2]
    assert probs_by_answer([0.8, 0.2], [1, 0]) == [0.2, 0.8]


def test_answer_order_recorded_and_probs_mapped_back():
    orders = set()
    for i in range(16):
        j = Judge(lambda ctx: [1.0, 0.0])  # always the answer shown first
        rec = play_round(match(rid=str(i), seed=derive_seed(0, i)), tcfg(rounds=1), {"x": Recorder("x"),
                         "y": Recorder("y")}, j, tournament="t", clock=clock)
        order = rec.answer_order
        orders.add(tuple(order))
        assert order == answer_order(derive_seed(0, i)) == j.calls[0].answer_order
        assert j.calls[0].answers_shown == [rec.answers[order[0]], rec.answers[order[1]]]
        assert rec.probs[order[0]] == 1.0 and rec.probs[order[1]] == 0.0
        j2 = Judge(lambda ctx: [0.7, 0.3])
        rec2 = play_round(match(rid=str(i), seed=derive_seed(0, i)), tcfg(rounds=1), {"x": Recorder("x"),
                          "y": Recorder("y")}, j2, tournament="t", clock=clock)
        assert rec2.probs[order[0]] == 0.7 and rec2.probs[order[1]] == 0.3
    assert orders == {(0, 1), (1, 0)}  # the order is randomised per round


def test_every_question_twice_with_sides_swapped():
    ms = schedule("t", tcfg(debaters=["x", "y", "z"]), QUESTIONS[:2])
    by_fmt = {}
    for m in ms:
        by_fmt.setdefault(m.format, []).append(m)
    debate = by_fmt["debate"]
    assert len(debate) == 6 * 2 * 2  # 6 pairs (i <= j) x 2 questions x 2 side assignments
    for a0, a1 in zip(debate[::2], debate[1::2]):
        assert a0.question.id == a1.question.id and a0.debaters == a1.debaters
        assert a0.sides == {"a": 0, "b": 1} and a1.sides == {"a": 1, "b": 0}
        assert a0.round_id.endswith("/a0") and a1.round_id.endswith("/a1")
    assert [m.round_id for m in debate[:4]] == ["debate/x-vs-x/q00/a0", "debate/x-vs-x/q00/a1",
                                                "debate/x-vs-x/q01/a0", "debate/x-vs-x/q01/a1"]
    assert {tuple(m.debaters.values()) for m in debate} == {("x", "x"), ("x", "y"), ("x", "z"), ("y", "y"),
                                                            ("y", "z"), ("z", "z")}
    cons = by_fmt["consultancy"]
    assert [(m.debaters["a"], m.question.id, m.sides["a"]) for m in cons[:4]] == [
        ("x", "q00", 0), ("x", "q00", 1), ("x", "q01", 0), ("x", "q01", 1)]
    assert len(cons) == 3 * 2 * 2
    dc = by_fmt["double_consultancy"]
    assert all(m.debaters["a"] == m.debaters["b"] and m.sides["a"] + m.sides["b"] == 1 for m in dc)
    assert [m.round_id for m in by_fmt["empty"]] == ["empty/none/q00/r0", "empty/none/q00/r1",
                                                     "empty/none/q01/r0", "empty/none/q01/r1"]
    assert all(m.debaters == {} and m.sides == {} for m in by_fmt["empty"])
    assert len({m.round_id for m in ms}) == len(ms)
    assert len(schedule("t", tcfg(kind="self_play", debaters=["x", "y", "z"], formats=["debate"]), QUESTIONS[:2])) \
        == 3 * 2 * 2


def test_capped_round_robin_rotating_slices():
    pool = QUESTIONS[:5]
    slices = pair_questions("capped_round_robin", 3, pool, 2)
    assert [[q.id for q in s] for s in slices] == [["q00", "q01"], ["q02", "q03"], ["q04", "q00"]]
    assert [len(s) for s in pair_questions("capped_round_robin", 2, pool[:2], 5)] == [2, 2]
    ms = schedule("t", tcfg(kind="capped_round_robin", questions_per_pair=2), QUESTIONS[:5])
    ids = [m.round_id for m in ms]
    assert ids[:12:2] == ["debate/x-vs-x/q00/a0", "debate/x-vs-x/q01/a0", "debate/x-vs-y/q02/a0",
                          "debate/x-vs-y/q03/a0", "debate/y-vs-y/q04/a0", "debate/y-vs-y/q00/a0"]
    # consultancy: each debater on the questions it plays (the union over its pairs, pool order)
    assert [m.question.id for m in ms if m.format == "consultancy" and m.debaters["a"] == "x"][::2] == \
        ["q00", "q01", "q02", "q03"]
    assert [m.question.id for m in ms if m.format == "consultancy" and m.debaters["a"] == "y"][::2] == \
        ["q00", "q02", "q03", "q04"]
    assert len([m for m in ms if m.format == "empty"]) == 5 * 2
    # `questions` caps the pool: the first N
    capped = schedule("t", tcfg(questions=2, formats=["empty"]), QUESTIONS)
    assert [m.question.id for m in capped] == ["q00", "q00", "q01", "q01"]


def test_schedule_is_a_pure_function_of_config_questions_and_seed():
    a = schedule("t", tcfg(), QUESTIONS)
    assert a == schedule("t", tcfg(n_chunks=4), QUESTIONS)  # n_chunks changes nothing
    assert all(m.seed == derive_seed(0, m.round_id) for m in a)
    b = schedule("t", tcfg(seed=1), QUESTIONS)
    assert [m.round_id for m in a] == [m.round_id for m in b] and all(x.seed != y.seed for x, y in zip(a, b))


def test_schedule_bad_input():
    with pytest.raises(PipelineError, match="debate.tournaments.t: no questions to schedule"):
        schedule("t", tcfg(), [])
    with pytest.raises(PipelineError, match="question id 'q00' appears twice"):
        schedule("t", tcfg(), [question(0), question(0)])
    with pytest.raises(PipelineError, match="round id 'debate/a-vs-b-vs-c/q00/a0' occurs twice"):
        schedule("t", tcfg(debaters=["a", "a-vs-b", "b-vs-c", "c"], formats=["debate"]), [question(0)])


def test_chunk_assignment_same_for_1_and_4_chunks():
    ms = schedule("t", tcfg(debaters=["x", "y", "z"]), QUESTIONS)

    def key(m):
        return (m.round_id, tuple(m.debaters.items()), tuple(m.sides.items()), m.seed, m.question.id)

    chunks = [chunk_matches(ms, 4, k) for k in range(4)]
    assert sum(len(c) for c in chunks) == len(ms)
    assert {key(m) for c in chunks for m in c} == {key(m) for m in chunk_matches(ms, 1, 0)}
    assert [m.round_id for m in chunks[1]] == [m.round_id for m in ms[1::4]]  # match i -> chunk i % 4
    with pytest.raises(PipelineError, match="chunk 4 of n_chunks=4: expected 0 <= chunk < n_chunks"):
        chunk_matches(ms, 4, 4)


# ----------------------------------------------------------------------------------- best-of-N


def labelled(table: dict[int, str]):
    """A speech labeller: the label of the speech's seed (the test computes the seeds)."""
    return lambda ctx: table[ctx.seed]


def table_judge(p_a: dict[tuple[str, str], float]):
    """P(debater_a's side) from the labels of the last a and b speeches; by shown position."""
    def fn(ctx):
        la = [s.raw for s in ctx.speeches if s.role == "debater_a"][-1]
        lb = [s.raw for s in ctx.speeches if s.role == "debater_b"][-1]
        side_a = next(s.side for s in ctx.speeches if s.role == "debater_a")
        p = p_a[la, lb]
        return [p if i == side_a else 1 - p for i in ctx.answer_order]
    return Judge(fn)


@pytest.mark.parametrize("how, a_scores, a_pick, final", [("min", [0.6, 0.4], 0, 0.55), ("mean", [0.6, 0.65], 1, 0.8)])
def test_best_of_n_min_vs_mean_hand_values(how, a_scores, a_pick, final):
    m = match(seed=11)
    s = m.seed
    x_labels = {speech_seed(s, "debater_a", 0, c): f"A{c}" for c in range(2)}
    x_labels |= {derive_seed(s, "debater_b", 0, "opponent", j): f"P{j}" for j in range(2)}
    y_labels = {speech_seed(s, "debater_b", 0, c): f"B{c}" for c in range(2)}
    y_labels |= {derive_seed(s, "debater_a", 0, "opponent", j): f"O{j}" for j in range(2)}
    x, y = Recorder("x", labelled(x_labels)), Recorder("y", labelled(y_labels))
    # a's candidates vs the opponent samples O0, O1: A0 -> [.6, .6], A1 -> [.9, .4]
    # b's candidates vs a's samples P0, P1 (b's score = 1 - p_a): B0 -> [.5, .5], B1 -> [.7, .3]
    p_a = {("A0", "O0"): .6, ("A0", "O1"): .6, ("A1", "O0"): .9, ("A1", "O1"): .4,
           ("P0", "B0"): .5, ("P1", "B0"): .5, ("P0", "B1"): .3, ("P1", "B1"): .7,
           ("A0", "B0"): .55, ("A1", "B0"): .8}
    cfg = tcfg(rounds=1, best_of_n={"n": 2, "opponent_n": 2, "aggregate": how})
    rec = play_round(m, cfg, {"x": x, "y": y}, table_judge(p_a), tournament="t", clock=clock)
    assert rec.status == "ok", rec.error
    sa, sb = rec.speeches
    assert sa.raw == f"A{a_pick}"
    assert [alt["raw"] for alt in sa.alternatives] == ["A0", "A1"]
    assert [alt["score"] for alt in sa.alternatives] == pytest.approx(a_scores)
    assert [alt["selected"] for alt in sa.alternatives] == [a_pick == 0, a_pick == 1]
    # b: min .5 vs .3 -> B0; mean .5 vs .5 -> a tie, the first candidate wins
    assert sb.raw == "B0" and [alt["score"] for alt in sb.alternatives] == pytest.approx([0.5, 0.3 if how == "min"
                                                                                          else 0.5])
    assert rec.probs[0] == pytest.approx(final)  # a defends answer 0
    # simultaneous: the opponent samples are drawn once and shared by the candidates: 2 + 2 calls each
    assert len(x.calls) == 4 and len(y.calls) == 4
    assert {c.role for c in y.calls} == {"debater_b"} and {c.side for c in y.calls} == {1}


def test_best_of_n_self_opponent_and_sequential():
    m = match(seed=5)
    x, y = Recorder("x"), Recorder("y")
    cfg = tcfg(rounds=1, best_of_n={"n": 3, "opponent_n": 2, "opponent": "self"})
    rec = play_round(m, cfg, {"x": x, "y": y}, Judge(), tournament="t", clock=clock)
    assert rec.status == "ok"
    # x: 3 candidates as debater_a (side 0), 2 opponent samples arguing the other side as debater_b
    assert sorted((c.role, c.side) for c in x.calls) == [("debater_a", 0)] * 3 + [("debater_b", 1)] * 2
    assert all(len(s.alternatives) == 3 and sum(a["selected"] for a in s.alternatives) == 1 for s in rec.speeches)
    # sequential: b's samples answer each of a's candidates (3 x 2 + b's 3 candidates); b's candidates
    # are scored alone (a has already spoken this turn): no samples from x
    x, y = Recorder("x"), Recorder("y")
    rec = play_round(m, tcfg(rounds=1, simultaneous=False, best_of_n={"n": 3, "opponent_n": 2}), {"x": x, "y": y},
                     Judge(), tournament="t", clock=clock)
    assert rec.status == "ok" and len(x.calls) == 3 and len(y.calls) == 3 * 2 + 3
    assert sorted(len(c.visible) for c in y.calls) == [1] * 9  # each sees a candidate / a's speech


def test_best_of_n_consultancy_scores_candidate_alone():
    m = match("consultancy", seed=3)  # the consultant defends answer 1
    values = {speech_seed(m.seed, "consultant", 0, c): v for c, v in enumerate(["0.2", "0.9", "0.5"])}
    x = Recorder("x", labelled(values))

    def fn(ctx):
        p1 = float(ctx.speeches[-1].raw)  # the candidate's own number is P(answer 1)
        return [p1 if i == 1 else 1 - p1 for i in ctx.answer_order]

    rec = play_round(m, tcfg(rounds=1, best_of_n={"n": 3}), {"x": x}, Judge(fn), tournament="t", clock=clock)
    (sp,) = rec.speeches
    assert sp.raw == "0.9" and rec.probs[1] == pytest.approx(0.9)
    assert sp.alternatives == [{"raw": "0.2", "score": pytest.approx(0.2), "selected": False},
                               {"raw": "0.9", "score": pytest.approx(0.9), "selected": True},
                               {"raw": "0.5", "score": pytest.approx(0.5), "selected": False}]
    assert len(x.calls) == 3
    # double consultancy: each consultant's candidates are judged on its own transcript alone
    j = Judge(lambda ctx: [0.5, 0.5])
    rec = play_round(match("double_consultancy"), tcfg(rounds=2, best_of_n={"n": 2}), {"x": Recorder("x")}, j,
                     tournament="t", clock=clock)
    scoring, final = j.calls[:-1], j.calls[-1]
    assert len(scoring) == 2 * 2 * 2 and all(c.format == "consultancy" for c in scoring)
    assert all(len({s.role for s in c.speeches}) == 1 for c in scoring)
    assert final.format == "double_consultancy" and len(final.speeches) == 4


# -------------------------------------------------------------------------------------- failures


class Boom:
    """Fails at ``fail_turn`` the way an API client does (an exception with a multi-line message)."""

    def __init__(self, name, fail_turn=1):
        self.name, self.fail_turn = name, fail_turn

    def speak(self, ctx):
        if ctx.turn == self.fail_turn:
            raise RuntimeError("API down\nretry later")
        return "fine"


    def provenance(self):
        return {"backend": "boom"}


def test_failing_debater_gives_a_failed_round_with_speeches_so_far():
    rec = play_round(match(), tcfg(), {"x": Boom("x"), "y": Recorder("y")}, Judge(), tournament="t", clock=clock)
    assert rec.status == "failed" and rec.error == "RuntimeError: API down retry later" and rec.probs is None
    assert [(s.role, s.turn) for s in rec.speeches] == [("debater_a", 0), ("debater_b", 0)]
    assert rec.provenance["x"] == {"backend": "boom"}


@pytest.mark.parametrize("judge, error", [
    (Judge(lambda ctx: (_ for _ in ()).throw(PipelineError("judge j: server said no"))),
     "PipelineError: judge j: server said no"),
    (Judge(lambda ctx: [0.7, 0.7]),
     "PipelineError: judge j: probabilities [0.7, 0.7] are not two finite numbers in [0, 1] summing to 1"),
    (Judge(lambda ctx: [float("nan"), 0.5]),
     "PipelineError: judge j: probabilities [nan, 0.5] are not two finite numbers in [0, 1] summing to 1"),
])
def test_failing_judge_keeps_every_speech(judge, error):
    rec = play_round(match(), tcfg(), {"x": Recorder("x"), "y": Recorder("y")}, judge, tournament="t", clock=clock)
    assert rec.status == "failed" and rec.error == error and rec.probs is None and len(rec.speeches) == 6


def test_malformed_backend_answers():
    rec = play_round(match(), tcfg(), {"x": Recorder("x", lambda ctx: None), "y": Recorder("y")}, Judge(),
                     tournament="t", clock=clock)
    assert rec.error == "PipelineError: debater x: speak() returned NoneType, expected str"
    with pytest.raises(PipelineError, match="judge j: judge\\(\\) returned dict, expected a Verdict"):
        check_verdict({"probs": [1, 0]}, "j")
    assert check_verdict(Verdict([1, 0]), "j").probs == [1.0, 0.0]
    assert error_line(ValueError()) == "ValueError"
    assert len(error_line(ValueError("x" * 2000))) == 500


# ------------------------------------------------------------------------------- chunks and resume


def section(**tournament) -> DebateSection:
    t = {"debaters": ["det", "rnd"], "judge": "dj", "rounds": 2, "n_chunks": 1, **tournament}
    return DebateSection.from_dict({
        "debaters": {"det": {"type": "deterministic"}, "rnd": {"type": "random", "seed": 3}},
        "judges": {"dj": {"type": "deterministic"}, "rj": {"type": "random"}},
        "tournaments": {"t": t}})


class Counting(simple.DeterministicDebater):
    """The deterministic debater, counting speak() calls per round id (class-wide)."""

    calls: ClassVar[dict[str, int]] = {}
    fail_on: ClassVar[str | None] = None

    def speak(self, ctx):
        Counting.calls[ctx.round_id] = Counting.calls.get(ctx.round_id, 0) + 1
        if ctx.question.id == Counting.fail_on:
            raise ConnectionError(f"endpoint unreachable for {ctx.question.id}")
        return super().speak(ctx)


@pytest.fixture
def counting(monkeypatch):
    """``type: deterministic`` debaters built by run_chunk are :class:`Counting` ones."""
    monkeypatch.setitem(backends._DEBATERS, "deterministic", Counting)
    monkeypatch.setattr(Counting, "calls", {})
    monkeypatch.setattr(Counting, "fail_on", None)
    return Counting


def test_failed_rounds_recorded_and_the_rest_of_the_chunk_intact(tmp_path, counting):
    counting.fail_on = "q01"
    sec = section(formats=["debate", "empty"])
    counts = run_chunk("t", sec, QUESTIONS[:3], 0, tmp_path / "chunk0.jsonl", tmp_path / "state", {}, clock=clock)
    rows = read_jsonl(tmp_path / "chunk0.jsonl")
    failed = [r for r in rows if r["status"] == "failed"]
    # det plays q01 in det-vs-det and det-vs-rnd (2 sides each); rnd-vs-rnd and the empty rounds are fine
    assert sorted(r["round_id"] for r in failed) == ["debate/det-vs-det/q01/a0", "debate/det-vs-det/q01/a1",
                                                     "debate/det-vs-rnd/q01/a0", "debate/det-vs-rnd/q01/a1"]
    assert all(r["error"] == "ConnectionError: endpoint unreachable for q01" and r["probs"] is None for r in failed)
    assert counts == {"tournament": "t", "chunk": 0, "rounds": 3 * 3 * 2 + 3 * 2, "ok": 20, "failed": 4,
                      "played": 24, "resumed": 0}
    assert len(rows) == 24 and all(r["probs"] is not None for r in rows if r["status"] == "ok")
    assert not (tmp_path / "state" / "chunk0.partial.jsonl").exists()


def test_chunked_and_unchunked_tournaments_give_the_same_rounds(tmp_path):
    one = run_chunk("t", section(), QUESTIONS[:2], 0, tmp_path / "one.jsonl", tmp_path / "s1", {}, clock=clock)
    sec4 = section(n_chunks=4)
    for k in range(4):
        run_chunk("t", sec4, QUESTIONS[:2], k, tmp_path / f"c{k}.jsonl", tmp_path / "s4", {}, clock=clock)
    whole = read_jsonl(tmp_path / "one.jsonl")
    parts = [r for k in range(4) for r in read_jsonl(tmp_path / f"c{k}.jsonl")]
    assert one["rounds"] == len(whole) == len(parts)
    assert all(r["chunk"] == 0 for r in whole) and {r["chunk"] for r in parts} == {0, 1, 2, 3}
    strip = {r["round_id"]: {**r, "chunk": None} for r in whole}
    assert {r["round_id"]: {**r, "chunk": None} for r in parts} == strip


def test_same_config_gives_an_identical_transcript(tmp_path):
    sec = section(judge="rj", best_of_n={"n": 2, "opponent_n": 2})
    files = []
    for i in range(2):
        run_chunk("t", sec, QUESTIONS[:2], 0, tmp_path / f"{i}.jsonl", tmp_path / f"s{i}", {}, clock=clock)
        files.append((tmp_path / f"{i}.jsonl").read_bytes())
    assert files[0] == files[1]
    # with the real clock only the timings differ
    run_chunk("t", sec, QUESTIONS[:2], 0, tmp_path / "timed.jsonl", tmp_path / "s2", {})
    timed = read_jsonl(tmp_path / "timed.jsonl")
    assert any(r["seconds"] > 0 for r in timed)

    def untimed(r):
        return {**r, "seconds": 0.0, "speeches": [{**s, "seconds": 0.0} for s in r["speeches"]]}

    assert [untimed(r) for r in timed] == [json.loads(line) for line in files[0].decode().splitlines()]
    rec = RoundRecord.from_row(timed[0])  # the file reads back into the contract's types
    assert rec.speeches[0].quotes[0].status in ("verified", "unverified")


KILLER = """
import json, os, signal, sys
from rlhf_pipeline.debate import backends
from rlhf_pipeline.debate.backends import simple
from rlhf_pipeline.debate.config import DebateSection
from rlhf_pipeline.debate.tournament import run_chunk
from rlhf_pipeline.debate.types import Question

spec = json.load(open(sys.argv[1]))


class Killed(simple.DeterministicDebater):
    calls = 0

    def speak(self, ctx):
        Killed.calls += 1
        if Killed.calls > spec["kill_after"]:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: a real kill -9
        return super().speak(ctx)


backends._DEBATERS["deterministic"] = Killed
run_chunk("t", DebateSection.from_dict(spec["section"]), [Question(**q) for q in spec["questions"]], 0,
          spec["out"], spec["state"], {}, clock=lambda: 0.0)
"""


def test_resume_after_kill_replays_nothing_and_matches_an_uninterrupted_run(tmp_path, counting):
    sec, qs = section(), QUESTIONS[:2]
    run_chunk("t", sec, qs, 0, tmp_path / "ref.jsonl", tmp_path / "ref_state", {}, clock=clock)
    reference = (tmp_path / "ref.jsonl").read_bytes()
    all_calls = dict(counting.calls)

    out, state = tmp_path / "out" / "chunk0.jsonl", tmp_path / "state"
    spec = {"section": sec.to_dict(), "questions": [q.to_row() for q in qs], "out": str(out), "state": str(state),
            "kill_after": 11}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "killer.py").write_text(KILLER)
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, str(tmp_path / "killer.py"), str(tmp_path / "spec.json")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    partial = state / "chunk0.partial.jsonl"
    assert not out.exists() and partial.exists()
    recorded = [r["round_id"] for r in read_jsonl(partial)]
    assert 0 < len(recorded) < reference.count(b"\n")
    with open(partial, "a") as f:  # a kill in the middle of a write leaves half a line
        f.write('{"round_id": "debate/det-vs-rnd/q01/a1", "tourn')

    counting.calls.clear()
    with pytest.warns(UserWarning, match="skipping truncated last line"):
        counts = run_chunk("t", sec, qs, 0, out, state, {}, clock=clock)
    assert counts["resumed"] == len(recorded) and counts["played"] == counts["rounds"] - len(recorded)
    assert not set(counting.calls) & set(recorded)  # finished rounds were not replayed
    assert counting.calls == {rid: n for rid, n in all_calls.items() if rid not in recorded}
    assert out.read_bytes() == reference
    assert not partial.exists() and not (state / "chunk0.fingerprint").exists()


def test_state_of_another_configuration_is_not_resumed(tmp_path, counting):
    sec, qs = section(formats=["debate"]), QUESTIONS[:1]
    state = tmp_path / "state"
    row = play_round(schedule("t", sec.tournaments["t"], qs)[0], sec.tournaments["t"], {"det": Counting(
        "det", sec.debaters["det"], {})}, simple.DeterministicJudge("dj", sec.judges["dj"], {}), tournament="t")
    append_jsonl(state / "chunk0.partial.jsonl", row.to_row())  # no fingerprint: not this configuration's
    counting.calls.clear()
    with pytest.warns(UserWarning, match="left by a different configuration of this chunk; starting afresh"):
        counts = run_chunk("t", sec, qs, 0, tmp_path / "out.jsonl", state, {}, clock=clock)
    assert counts["resumed"] == 0 and counts["played"] == 6 and row.round_id in counting.calls


def test_append_jsonl_redacts_and_refuses_nan(tmp_path):
    path = tmp_path / "log.jsonl"
    append_jsonl(path, {"round_id": "r1", "provenance": {"api_key": "sk-123", "model": "m"}})
    append_jsonl(path, {"round_id": "r2"})
    assert read_jsonl(path) == [{"round_id": "r1", "provenance": {"api_key": "<redacted>", "model": "m"}},
                                {"round_id": "r2"}]
    with pytest.raises(PipelineError, match=r"log.jsonl: probs\[0\] is nan; refusing to write invalid JSON"):
        append_jsonl(path, {"probs": [float("nan"), 1.0]})
    assert len(read_jsonl(path)) == 2


def test_a_debater_s_own_best_of_n_overrides_the_tournament_s(tmp_path):
    sec = DebateSection.from_dict({
        "debaters": {"det": {"type": "deterministic"}, "rnd": {"type": "random", "seed": 3, "best_of_n": {"n": 3}}},
        "judges": {"dj": {"type": "deterministic"}},
        "tournaments": {"t": {"debaters": ["det", "rnd"], "judge": "dj", "rounds": 2, "formats": ["debate"]}}})
    run_chunk("t", sec, QUESTIONS[:2], 0, tmp_path / "t.jsonl", tmp_path / "state", {}, clock=clock)
    speeches = [s for r in read_jsonl(tmp_path / "t.jsonl") for s in r["speeches"]]
    assert {len(s["alternatives"]) for s in speeches if s["speaker"] == "rnd"} == {3}
    assert {len(s["alternatives"]) for s in speeches if s["speaker"] == "det"} == {0}
    for s in speeches:
        if s["alternatives"]:
            best = max(a["score"] for a in s["alternatives"])
            chosen = [a for a in s["alternatives"] if a["selected"]]
            assert len(chosen) == 1 and chosen[0]["raw"] == s["raw"] and chosen[0]["score"] == best
