"""Tournament statistics (rlhf_pipeline.debate.ratings: rounds / ratings / judge tables, calibration, plots)
on round records built by hand; numbers checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from debate_helpers import make_round, quote_checks

from rlhf_pipeline.debate.ratings import (
    ROUND_COLUMNS,
    bradley_terry,
    calibration,
    judge_table,
    ratings_table,
    rounds_table,
    summarize,
    win_matrix,
)
from rlhf_pipeline.debate.types import RoundRecord
from rlhf_pipeline.errors import PipelineError


def pair_rounds(qid: str, a: str, b: str, a_wins: tuple[bool, bool]) -> list[RoundRecord]:
    """The two side-swapped debate rounds of one question (answer 0 correct); ``a_wins`` per round."""
    out = []
    for k, (side_a, won) in enumerate(zip((0, 1), a_wins)):
        p_side_a = 0.8 if won else 0.2
        p0 = p_side_a if side_a == 0 else 1 - p_side_a
        out.append(make_round(qid, a=a, b=b, side_a=side_a, p0=p0, swap=f"a{k}"))
    return out


# ------------------------------------------------------------------------------------------ rounds table


def test_rounds_table_columns_and_fields():
    recs = [make_round("q1", side_a=1, order=(1, 0), p0=0.3, quotes={"a": (2, 1), "b": (0, 3)}),
            make_round("q1", fmt="consultancy", side_a=0, p0=0.4, quotes={"a": (1, 0)}),
            make_round("q1", fmt="empty", p0=0.5),
            make_round("q2", swap="a1", p0=0.5)]
    df = rounds_table(recs)
    assert list(df.columns) == ROUND_COLUMNS
    assert list(df["round_id"]) == sorted(r.round_id for r in recs)
    deb = df[df["round_id"] == "debate/x-vs-y/q1/a0"].iloc[0]
    # x defends answer 1 (p = 0.7), y answer 0 (p = 0.3); answer 1 shown first
    assert (deb["side_a"], deb["side_b"], deb["p_a"], deb["p_b"]) == (1, 0, 0.7, 0.3)
    assert (deb["winner"], deb["correct_won"], deb["p_correct"]) == ("a", False, 0.3)
    assert (deb["first_position"], deb["p_first"]) == (1, 0.7)
    assert (deb["verified_a"], deb["unverified_a"], deb["verified_b"], deb["unverified_b"]) == (2, 1, 0, 3)
    con = df[df["format"] == "consultancy"].iloc[0]
    assert con["debater_b"] == "" and pd.isna(con["side_b"]) and math.isnan(con["p_b"]) and pd.isna(con["verified_b"])
    assert con["winner"] == ""  # the consultant's answer got 0.4: the undefended answer won
    emp = df[df["format"] == "empty"].iloc[0]
    assert emp["debater_a"] == "" and emp["winner"] == "" and emp["p_correct"] == 0.5
    assert df[df["round_id"] == "debate/x-vs-y/q2/a1"].iloc[0]["winner"] == "tie"


def test_bad_records_fail_with_one_line_naming_the_round():
    with pytest.raises(PipelineError, match=r"round 'debate/x-vs-y/q1/a0' of tournament 't' is recorded 2 times "
                       r"\(chunks \[0, 1\]\)"):
        rounds_table([make_round("q1"), make_round("q1", chunk=1)])
    with pytest.raises(PipelineError, match=r"round 'debate/x-vs-y/q1/a0' \(tournament 't', chunk 0\): status ok "
                       r"needs probs \[p0, p1\]"):
        rounds_table([make_round("q1", p0=None)])
    rec = make_round("q1")
    rec.sides = {"a": 0, "b": 0}
    with pytest.raises(PipelineError, match="slots a and b must defend different answers"):
        rounds_table([rec])
    rec = make_round("q1", fmt="consultancy")
    rec.debaters["b"] = "y"
    with pytest.raises(PipelineError, match=r"format consultancy needs debaters and sides for slots \['a'\]"):
        rounds_table([rec])


# ----------------------------------------------------------------------------------------- Bradley–Terry


def test_bradley_terry_two_debaters_is_the_log_odds():
    s = bradley_terry(np.array([[0.0, 7.0], [3.0, 0.0]]), alpha=1e-9)
    assert s[0] - s[1] == pytest.approx(math.log(7 / 3), abs=1e-6)
    assert s.sum() == pytest.approx(0.0, abs=1e-12)
    # the same through the rounds table: 5 questions x 2 side-swapped rounds, x wins 7 of 10
    outcomes = [(True, True), (True, True), (True, True), (True, False), (False, False)]
    recs = [r for k, w in enumerate(outcomes) for r in pair_rounds(f"q{k}", "x", "y", w)]
    rt = ratings_table(rounds_table(recs), bootstrap=0, seed=0, alpha=1e-9).set_index("debater")
    assert rt.loc["x", "bt_strength"] - rt.loc["y", "bt_strength"] == pytest.approx(math.log(7 / 3), abs=1e-6)
    assert rt.loc["x", "bt_comparisons"] == 10 and math.isnan(rt.loc["x", "bt_lo"])


def test_bradley_terry_ties_count_half():
    recs = pair_rounds("q0", "x", "y", (True, True)) + pair_rounds("q1", "x", "y", (False, True))
    recs[2].probs = [0.5, 0.5]  # q1 a0: a tie instead of y's win
    rt = ratings_table(rounds_table(recs), bootstrap=0, seed=0, alpha=1e-9).set_index("debater")
    # x: 3 wins + half a tie = 3.5 of 4; y: 0.5
    assert rt.loc["x", "bt_strength"] - rt.loc["y", "bt_strength"] == pytest.approx(math.log(3.5 / 0.5), abs=1e-6)
    assert rt.loc["x", "win_rate"] == pytest.approx(3.5 / 4)


def test_bradley_terry_three_debaters_hand_worked():
    # A beats B 8-2, B beats C 7-3, A beats C 9-1
    wins = np.array([[0, 8, 9], [2, 0, 7], [1, 3, 0]], dtype=float)
    s = bradley_terry(wins, alpha=1e-9)
    assert s[0] > s[1] > s[2]
    assert s.mean() == pytest.approx(0.0, abs=1e-12)
    # the maximum-likelihood equations: each debater's wins equal its expected wins under the fit
    n = wins + wins.T
    expected = (n / (1 + np.exp(s[None, :] - s[:, None]))).sum(axis=1)
    np.testing.assert_allclose(expected, wins.sum(axis=1), atol=1e-6)
    # regularisation shrinks towards equal strengths but keeps the order
    s_reg = bradley_terry(wins, alpha=1.0)
    assert s_reg[0] > s_reg[1] > s_reg[2] and s_reg[0] - s_reg[2] < s[0] - s[2]


def _round_robin() -> list[RoundRecord]:
    """Three debaters over six questions; strong > mid > weak mostly, with upsets."""
    rng = np.random.default_rng(7)
    p_win = {("strong", "mid"): 0.7, ("strong", "weak"): 0.85, ("mid", "weak"): 0.7}
    recs = []
    for q in range(6):
        for (a, b), p in p_win.items():
            recs += pair_rounds(f"q{q}", a, b, tuple(bool(rng.random() < p) for _ in range(2)))
    return recs


def test_bootstrap_intervals_contain_the_estimate_and_are_seeded():
    df = rounds_table(_round_robin())
    r1 = ratings_table(df, bootstrap=100, seed=3)
    r2 = ratings_table(df, bootstrap=100, seed=3)
    r3 = ratings_table(df, bootstrap=100, seed=4)
    pd.testing.assert_frame_equal(r1, r2)
    assert not np.allclose(r1["bt_lo"], r3["bt_lo"])
    assert list(r1["debater"]) == ["strong", "mid", "weak"]
    assert (r1["bt_lo"] <= r1["bt_strength"]).all() and (r1["bt_strength"] <= r1["bt_hi"]).all()
    assert (r1["bt_hi"] - r1["bt_lo"] > 0.1).all()


def test_bootstrap_keeps_side_swapped_rounds_together():
    # every question: each debater wins one of its two rounds, so every resample of QUESTIONS is a
    # tie (zero-width interval); resampling rounds independently would not be
    recs = [r for q in range(8) for r in pair_rounds(f"q{q}", "x", "y", (True, False))]
    rt = ratings_table(rounds_table(recs), bootstrap=50, seed=0)
    np.testing.assert_allclose(rt[["bt_strength", "bt_lo", "bt_hi"]].to_numpy(), 0.0, atol=1e-9)


# -------------------------------------------------------------------------------------------- win rates


def test_win_rates_when_correct_and_incorrect():
    # answer 0 is correct; side_a 0 means x defends the correct answer
    recs = (pair_rounds("q1", "x", "y", (True, False))  # x correct: wins; x wrong: loses
            + pair_rounds("q2", "x", "y", (True, True))  # x wins both
            + [make_round("q1", a="x", b="x", p0=0.9, quotes={"a": (1, 0), "b": (0, 1)}),  # self-play
               make_round("q1", fmt="consultancy", a="x", p0=0.2, quotes={"a": (2, 2)}),
               make_round("q3", a="x", b="y", status="failed")])
    recs[0].speeches[0].quotes = quote_checks(3, 1)  # x in q1/a0
    recs[0].speeches[1].quotes = quote_checks(1, 0)  # y in q1/a0
    rt = ratings_table(rounds_table(recs), bootstrap=0, seed=0).set_index("debater")
    x, y = rt.loc["x"], rt.loc["y"]
    assert (x["win_rate"], x["win_rate_correct"], x["win_rate_incorrect"]) == (0.75, 1.0, 0.5)
    assert (y["win_rate"], y["win_rate_correct"], y["win_rate_incorrect"]) == (0.25, 0.5, 0.0)
    assert (x["debates"], x["debates_correct"], x["debates_incorrect"]) == (4, 2, 2)
    assert x["self_play_rounds"] == 1 and y["self_play_rounds"] == 0
    # x: q1/a0 3 of 4, self-play both slots 1 of 2, consultancy 2 of 4 -> 6 of 10
    assert (x["quote_validity"], x["quotes"]) == (0.6, 10)
    assert (y["quote_validity"], y["quotes"]) == (1.0, 1)
    # rounds: 4 debates + self-play + consultancy + failed = 7 for x; y: 4 + failed
    assert (x["rounds"], x["failed"], y["rounds"], y["failed"]) == (7, 1, 5, 1)
    rates, counts = win_matrix(rounds_table(recs))
    assert list(rates.index) == ["x", "y"] and rates.loc["x", "y"] == 0.75 and rates.loc["y", "x"] == 0.25
    assert counts.loc["x", "y"] == 4 and math.isnan(rates.loc["x", "x"])


# ---------------------------------------------------------------------------------------------- judge


def test_judge_accuracy_se_baseline_and_first_position_bias():
    # answer 0 correct. Debate p_correct: q1 0.8, 0.6 -> 0.7; q2 0.4, 0.6 -> 0.5
    # accuracy 0.6, SE = std([0.7, 0.5], ddof=1) / sqrt(2) = 0.1414... / 1.4142... = 0.1
    recs = [make_round("q1", side_a=0, p0=0.8, order=(0, 1)), make_round("q1", side_a=1, p0=0.6, order=(1, 0),
                                                                          swap="a1"),
            make_round("q2", side_a=0, p0=0.4, order=(0, 1)), make_round("q2", side_a=1, p0=0.6, order=(0, 1),
                                                                          swap="a1"),
            make_round("q1", fmt="empty", p0=0.5, swap="e0"), make_round("q2", fmt="empty", p0=0.6, swap="e0",
                                                                         order=(1, 0)),
            make_round("q3", status="failed")]
    jt = judge_table(rounds_table(recs)).set_index("format")
    d, e = jt.loc["debate"], jt.loc["empty"]
    assert d["accuracy"] == pytest.approx(0.6) and d["accuracy_se"] == pytest.approx(0.1)
    assert (d["n_questions"], d["rounds"], d["failed"]) == (2, 4, 1)
    assert d["correct_won_rate"] == 0.75
    # empty: q1 0.5, q2 0.6 -> 0.55; SE = std([0.5, 0.6]) / sqrt(2) = 0.05
    assert e["accuracy"] == pytest.approx(0.55) and e["accuracy_se"] == pytest.approx(0.05)
    assert e["correct_won_rate"] == 0.5 and e["vs_empty"] == 0.0
    assert d["vs_empty"] == pytest.approx(0.05)
    # p_first: q1: 0.8 (answer 0 first), 0.4 (answer 1 first) -> 0.6; q2: 0.4, 0.6 -> 0.5
    # bias = mean(0.6, 0.5) - 0.5 = 0.05, SE = 0.05
    assert d["first_position_bias"] == pytest.approx(0.05) and d["first_position_bias_se"] == pytest.approx(0.05)
    # empty: p_first q1 0.5, q2 (answer 1 first) 0.4 -> bias -0.05
    assert e["first_position_bias"] == pytest.approx(-0.05)
    # ECE of debate: confidences 0.8, 0.6, 0.6, 0.6 -> bins [0.8, 0.85) acc 1, [0.6, 0.65) acc (0+1+1)/3
    assert d["ece"] == pytest.approx((1 * 0.2 + 3 * abs(2 / 3 - 0.6)) / 4)
    no_empty = judge_table(rounds_table(recs[:4]))
    assert math.isnan(no_empty["vs_empty"].iloc[0])


def test_slot_a_bias_is_averaged_per_question_with_its_se(tmp_path):
    # p_a (the judge's probability for slot a's answer; answer 0 correct):
    # q1: x-vs-y a0 0.8, a1 0.6; y-vs-x a0 0.6, a1 0.5 -> 0.625; q2: x-vs-y a0 0.5, a1 0.7 -> 0.6 (a failed round
    # not counted). bias = mean(0.125, 0.1) = 0.1125 (per round it would be 3.7 / 6 - 0.5 = 0.1167);
    # SE = std([0.125, 0.1], ddof=1) / sqrt(2) = 0.025 / 2 = 0.0125
    recs = [make_round("q1", side_a=0, p0=0.8), make_round("q1", side_a=1, p0=0.4, swap="a1"),
            make_round("q1", a="y", b="x", side_a=0, p0=0.6), make_round("q1", a="y", b="x", side_a=1, p0=0.5,
                                                                         swap="a1"),
            make_round("q2", side_a=0, p0=0.5), make_round("q2", side_a=1, p0=0.3, swap="a1"),
            make_round("q2", a="y", b="x", status="failed"),
            # double consultancy (one question: no SE): consultant_a's answer 0.7, then 0.5 -> bias 0.1
            make_round("q1", fmt="double_consultancy", a="x", b="x", side_a=0, p0=0.7),
            make_round("q1", fmt="double_consultancy", a="x", b="x", side_a=1, p0=0.5, swap="a1"),
            make_round("q1", fmt="consultancy", p0=0.9), make_round("q1", fmt="empty", p0=0.5)]
    jt = judge_table(rounds_table(recs)).set_index("format")
    assert jt.loc["debate", "slot_a_bias"] == pytest.approx(0.1125)
    assert jt.loc["debate", "slot_a_bias_se"] == pytest.approx(0.0125)
    assert jt.loc["double_consultancy", "slot_a_bias"] == pytest.approx(0.1)
    assert math.isnan(jt.loc["double_consultancy", "slot_a_bias_se"])
    # one slot or none: no speaking order
    assert jt.loc[["consultancy", "empty"], ["slot_a_bias", "slot_a_bias_se"]].isna().all().all()
    head = summarize(recs, tmp_path, bootstrap=0, seed=0)
    assert head["slot_a_bias"]["debate"] == pytest.approx(0.1125) and head["slot_a_bias"]["consultancy"] is None
    written = pd.read_csv(tmp_path / "judge.csv").set_index("format")
    assert written.loc["debate", "slot_a_bias_se"] == pytest.approx(0.0125)


def test_calibration_bins():
    # p_correct -> confidence, accuracy: 0.9 -> 0.9, 1; 0.05 -> 0.95, 0; 0.7 -> 0.7, 1; 0.35 -> 0.65, 0;
    # 0.5 -> 0.5, 0.5 (a tie counts half)
    ps = [0.9, 0.05, 0.7, 0.35, 0.5]
    recs = [make_round(f"q{k}", p0=p) for k, p in enumerate(ps)] + [make_round("q9", status="failed")]
    cal = calibration(rounds_table(recs), bins=5)  # bins of 0.1 over [0.5, 1]
    allc = cal[cal["format"] == "all"].set_index("bin")
    assert list(allc.index) == [0, 1, 2, 4]
    assert allc.loc[0, ["confidence", "accuracy", "count"]].tolist() == [0.5, 0.5, 1]
    assert allc.loc[1, ["confidence", "accuracy", "count"]].tolist() == pytest.approx([0.65, 0.0, 1])
    assert allc.loc[2, ["confidence", "accuracy", "count"]].tolist() == pytest.approx([0.7, 1.0, 1])
    assert allc.loc[4, ["confidence", "accuracy", "count"]].tolist() == pytest.approx([0.925, 0.5, 2])
    assert allc.loc[4, ["lo", "hi"]].tolist() == pytest.approx([0.9, 1.0])
    assert set(cal["format"]) == {"all", "debate"} and cal["count"].sum() == 10
    with pytest.raises(PipelineError, match="bins must be an integer >= 1"):
        calibration(rounds_table(recs), bins=0)


# --------------------------------------------------------------------------------- failed rounds, files


def test_failed_rounds_are_kept_counted_and_written(tmp_path):
    recs = _round_robin()[:6] + [make_round("q9", a="strong", b="mid", status="failed"),
                                 make_round("q9", fmt="consultancy", a="weak", status="failed")]
    head = summarize(recs, tmp_path, bootstrap=20, seed=0)
    assert head["rounds"] == 8 and head["failed"] == 2
    for name in ("rounds.csv", "ratings.csv", "judge.csv", "calibration.csv", "win_matrix.png", "calibration.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    rounds = pd.read_csv(tmp_path / "rounds.csv")
    failed = rounds[rounds["status"] == "failed"]
    assert len(failed) == 2 and failed["p_a"].isna().all() and failed["winner"].isna().all()
    assert failed["error"].tolist() == ["boom: server said 500"] * 2
    ratings = pd.read_csv(tmp_path / "ratings.csv").set_index("debater")
    assert ratings.loc["strong", "failed"] == 1 and ratings.loc["weak", "failed"] == 1
    judge = pd.read_csv(tmp_path / "judge.csv").set_index("format")
    assert judge.loc["debate", "failed"] == 1 and judge.loc["consultancy", "rounds"] == 0
    # statistics from the written rounds.csv equal those from memory
    pd.testing.assert_frame_equal(ratings_table(rounds, 20, 0), ratings_table(rounds_table(recs), 20, 0))
    pd.testing.assert_frame_equal(judge_table(rounds), judge_table(rounds_table(recs)))


def test_summarize_without_rounds_writes_every_file(tmp_path):
    head = summarize([], tmp_path, bootstrap=10, seed=0)
    assert head["rounds"] == 0
    assert pd.read_csv(tmp_path / "rounds.csv").columns.tolist() == ROUND_COLUMNS
    assert (tmp_path / "win_matrix.png").stat().st_size > 0 and (tmp_path / "calibration.png").stat().st_size > 0
