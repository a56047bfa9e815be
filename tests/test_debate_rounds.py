"""Debate rounds (rlhf_pipeline.debate.rounds): formats, visibility, answer order, best-of-N, failures, with
small backends defined here that record what they were shown."""

import pytest
from debate_helpers import clock, question, tcfg

from rlhf_pipeline.debate.rounds import (
    Match,
    answer_order,
    branch_slots,
    check_verdict,
    error_line,
    play_round,
    probs_by_answer,
    speech_seed,
    visible_to,
)
from rlhf_pipeline.debate.types import Verdict
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.seeding import derive_seed


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
    assert sp.alternatives == [{"raw": "0.2", "score": pytest.approx(0.2), "selected": False, "unverified": 0},
                               {"raw": "0.9", "score": pytest.approx(0.9), "selected": True, "unverified": 0},
                               {"raw": "0.5", "score": pytest.approx(0.5), "selected": False, "unverified": 0}]
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


# ---------------------------------------------------------------------------------------- branching


def test_branch_slots_by_setting_drawn_from_the_round_seed():
    assert branch_slots("debate", 2, "none", 7) == [False] * 4
    assert branch_slots("debate", 2, "full", 7) == [True] * 4
    halves = {tuple(branch_slots("debate", 2, "half", seed)) for seed in range(40)}
    assert halves == {(True, False, True, False), (False, True, False, True)}  # one debater's every speech
    singles = {tuple(branch_slots("debate", 2, "single_random", seed)) for seed in range(60)}
    assert len(singles) == 4 and all(sum(s) == 1 for s in singles)
    assert branch_slots("consultancy", 2, "half", 3) == [True, True] and branch_slots("empty", 2, "full", 3) == []
    assert branch_slots("debate", 2, "half", 5) == branch_slots("debate", 2, "half", 5)  # a pure function


def test_full_branching_plays_every_branch_and_keeps_the_unbranched_round_as_main():
    def judge_fn(ctx):  # p(first shown) from the speeches' seeds: every transcript gets its own verdict
        return [0.1 + 0.8 * ((sum(int(s.raw.split()[-1]) for s in ctx.speeches) + ctx.seed) % 97) / 96, 0]

    def p(ctx):
        a = judge_fn(ctx)[0]
        return [a, 1 - a]

    def label(ctx):
        return f"{ctx.role} t{ctx.turn} {ctx.seed % 1000}"

    x, y, j = Recorder("x", label), Recorder("y", label), Judge(p)
    cfg = tcfg(rounds=1, branching="full")
    rec = play_round(match(), cfg, {"x": x, "y": y}, j, tournament="t", clock=clock)
    plain = play_round(match(), tcfg(rounds=1), {"x": Recorder("x", label), "y": Recorder("y", label)}, Judge(p),
                       tournament="t", clock=clock)
    assert rec.status == "ok" and len(rec.branches) == 4 and [b["path"] for b in rec.branches] == [
        [0, 0], [0, 1], [1, 0], [1, 1]]
    # the main transcript is the unbranched round: its speeches, seeds and verdict
    assert [s.raw for s in rec.speeches] == [s.raw for s in plain.speeches] and rec.probs == plain.probs
    assert [s.branch for s in rec.speeches] == [[0], [0, 0]] and rec.seed == plain.seed
    assert rec.branches[0]["probs"] == rec.probs
    # 2 first speeches, 4 second ones (simultaneous: b's never sees a's turn-0 speech, but each branch has its own)
    assert len(x.calls) == 2 and len(y.calls) == 4 and sorted(s.branch for s in rec.branch_speeches) == [
        [0, 1], [1], [1, 0], [1, 1]]
    assert len({s.raw for s in [*rec.speeches, *rec.branch_speeches]}) == 6  # every branch its own seed
    assert len(j.calls) == 4 and len({c.seed for c in j.calls}) == 4
    again = play_round(match(), cfg, {"x": Recorder("x", label), "y": Recorder("y", label)}, Judge(p),
                       tournament="t", clock=clock, width=4)  # concurrently: the same round
    assert again.to_row() == rec.to_row()


def test_sequential_branches_see_their_own_path():
    x, y = Recorder("x"), Recorder("y")
    rec = play_round(match(), tcfg(rounds=1, simultaneous=False, branching="full"), {"x": x, "y": y}, Judge(),
                     tournament="t", clock=clock)
    assert [len(c.visible) for c in y.calls] == [1, 1, 1, 1]  # b answers the a speech of its own branch
    firsts = {id(s) for s in [*rec.speeches, *rec.branch_speeches] if len(s.branch) == 1}
    assert {id(c.visible[0]) for c in y.calls} == firsts
