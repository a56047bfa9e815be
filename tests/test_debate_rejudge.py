"""Offline re-judging (rlhf_pipeline.debate.rejudge): a verdict mapped back to the answers, the same judge
reproduces the tournament's tables, another judge changes the probabilities."""

from __future__ import annotations

import pytest
from debate_helpers import make_round

from rlhf_pipeline.debate.backends.simple import DeterministicJudge, load_records
from rlhf_pipeline.debate.config import ModelConfig
from rlhf_pipeline.debate.quotes import verify_quotes
from rlhf_pipeline.debate.ratings import summarize
from rlhf_pipeline.debate.rejudge import reapply_verdict, rejudge
from rlhf_pipeline.debate.types import JudgeContext, Question, RoundRecord, Speech, Verdict
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import write_jsonl

PASSAGE = ("Alice moved to Paris in 1999. Bob stayed in Rome for ten years. The museum in Paris has 12 rooms. "
           "Rome hosted the meeting.")


def _speech(role: str, speaker: str, side: int, raw: str) -> Speech:
    shown, checks = verify_quotes(raw, PASSAGE, 90.0)
    return Speech(role=role, speaker=speaker, side=side, turn=0, raw=raw, shown=shown, quotes=checks)


def _judged_tournament() -> list[RoundRecord]:
    """Rounds judged as the rounds module does: the deterministic judge on the full question, the
    verdict mapped back to answer indices by reapply_verdict."""
    q = Question("q1", "s1", PASSAGE, "Where did Alice move?", ["Paris", "Rome"], 0, "synthetic")
    good = "<quote>Alice moved to Paris in 1999.</quote> <quote>The museum in Paris has 12 rooms.</quote>"
    weak = "<quote>Rome hosted the meeting.</quote> <quote>Alice lived in Rome.</quote>"
    judge = DeterministicJudge("det", ModelConfig(type="deterministic"), {})
    recs = []
    for qid in ("q1", "q2"):
        for k, (side_a, order) in enumerate(((0, (1, 0)), (1, (0, 1)))):
            recs.append(make_round(qid, side_a=side_a, order=order, swap=f"a{k}"))
        recs.append(make_round(qid, fmt="consultancy", side_a=1, order=(1, 0), swap="c0"))
        recs.append(make_round(qid, fmt="empty", order=(0, 1), swap="e0"))
    recs.append(make_round("q3", status="failed"))
    out = []
    for n, r in enumerate(recs):
        r.seed = 1000 + n
        r.speeches = [_speech(s.role, s.speaker, s.side, good if s.side == 0 else weak) for s in r.speeches]
        if r.status == "ok":
            ctx = JudgeContext(q, r.format, r.answer_order, r.speeches, r.round_id, r.seed)
            r = reapply_verdict(r, judge.judge(ctx))
            r.judge, r.provenance = "det", {"det": judge.provenance()}
        out.append(r)
    return out


def test_reapply_verdict_maps_shown_positions_to_answers():
    rec = make_round("q1", order=(1, 0), p0=None)
    new = reapply_verdict(rec, Verdict([0.8, 0.2], True, "raw"))
    assert new.probs == [0.2, 0.8] and new.judge_raw == "raw" and new.status == "ok"
    assert rec.probs is None  # pure: the input is unchanged
    with pytest.raises(PipelineError, match=r"\(round 'debate/x-vs-y/q1/a0'\): probabilities \[0.8, 0.5\] are not two "
                       r"finite numbers in \[0, 1\] summing to 1"):
        reapply_verdict(rec, Verdict([0.8, 0.5]))


def test_rejudge_with_the_same_judge_reproduces_rounds_csv(tmp_path):
    original = _judged_tournament()
    # x quotes two verified sentences for Paris (answer 0), y one verified and one unverified:
    # p(answer 0) = 0.5 + 0.1 * (2 - 1) = 0.6
    assert original[0].probs == pytest.approx([0.6, 0.4])
    write_jsonl(tmp_path / "orig" / "transcripts" / "chunk0.jsonl", [r.to_row() for r in original])
    summarize(original, tmp_path / "orig", bootstrap=20, seed=0)
    saved = load_records(tmp_path / "orig")  # through the JSON transcript, as the CLI reads them
    head = rejudge(saved, "det", ModelConfig(type="deterministic"), {}, tmp_path / "new", bootstrap=20, seed=0,
                   max_failed_share=1)
    for name in ("rounds.csv", "ratings.csv", "judge.csv"):
        assert (tmp_path / "new" / name).read_bytes() == (tmp_path / "orig" / name).read_bytes(), name
    assert (head["rejudged"], head["failed_before"], head["failed_after"]) == (8, 1, 1)
    again = load_records(tmp_path / "new")  # the re-judged transcripts are a tournament directory
    assert [r.probs for r in again] == [r.probs for r in original]
    # replaying the saved verdicts with the offline judge reproduces them as well
    offline = ModelConfig(type="offline", transcripts=str(tmp_path / "orig"))
    rejudge(saved, "replay", offline, {}, tmp_path / "replay", bootstrap=20, seed=0, max_failed_share=1)
    assert (tmp_path / "replay" / "rounds.csv").read_bytes() == (tmp_path / "orig" / "rounds.csv").read_bytes()


def test_rejudge_with_a_random_judge_changes_probabilities(tmp_path):
    original = _judged_tournament()
    head = rejudge(original, "coin", ModelConfig(type="random", seed=5), {}, tmp_path, bootstrap=0, seed=0,
                   max_failed_share=1)
    new = {r.round_id: r for r in load_records(tmp_path)}
    changed = [r for r in original if r.status == "ok" and new[r.round_id].probs != r.probs]
    assert len(changed) == 8
    assert all(new[r.round_id].judge == "coin" and "coin" in new[r.round_id].provenance
               and "det" not in new[r.round_id].provenance for r in changed)
    failed = [r for r in new.values() if r.status == "failed"]
    assert len(failed) == 1 and failed[0].probs is None and head["failed_after"] == 1
    # the round's seed is passed again: re-judging twice gives the same probabilities
    rejudge(original, "coin", ModelConfig(type="random", seed=5), {}, tmp_path / "2", bootstrap=0, seed=0,
            max_failed_share=1)
    assert (tmp_path / "2" / "rounds.csv").read_bytes() == (tmp_path / "rounds.csv").read_bytes()


def test_a_round_whose_verdict_failed_is_judged_again_and_too_many_failures_write_nothing(tmp_path):
    original = _judged_tournament()
    broken = next(r for r in original if r.status == "failed")
    write_jsonl(tmp_path / "orig" / "transcripts" / "chunk0.jsonl", [r.to_row() for r in original])
    # its speeches are incomplete (failed_stage speeches, or unknown in older transcripts): it stays failed
    head = rejudge(original, "det", ModelConfig(type="deterministic"), {}, tmp_path / "a", bootstrap=0, seed=0,
                   max_failed_share=1)
    assert (head["rejudged"], head["failed_after"]) == (8, 1)
    # only its verdict failed (a judge outage): re-judging decides it
    broken.failed_stage = "verdict"
    head = rejudge(original, "det", ModelConfig(type="deterministic"), {}, tmp_path / "b", bootstrap=0, seed=0)
    assert (head["rejudged"], head["failed_before"], head["failed_after"]) == (9, 1, 0)
    new = {r.round_id: r for r in load_records(tmp_path / "b")}[broken.round_id]
    assert new.status == "ok" and new.probs is not None and new.failed_stage is None and new.error is None
    # a judge that fails: more than max_failed_share (default 0) of the rounds failed: one line, nothing written
    offline = ModelConfig(type="offline", transcripts=str(tmp_path / "orig"))  # has no verdict for the broken round
    with pytest.raises(PipelineError) as e:
        rejudge(original, "replay", offline, {}, tmp_path / "c", bootstrap=0, seed=0)
    assert str(e.value).startswith(f"re-judging with replay: 1 of 9 rounds failed (more than max_failed_share=0); "
                                   f"first: round {broken.round_id}: re-judging: PipelineError: offline judge replay: "
                                   "no saved verdict")
    assert not (tmp_path / "c").exists()


def test_rejudging_a_branched_round_decides_every_branch_with_its_own_seed(tmp_path):
    from debate_helpers import QUESTIONS, clock

    from rlhf_pipeline.debate.config import DebateSection
    from rlhf_pipeline.debate.tournament import run_chunk

    sec = DebateSection.from_dict({
        "debaters": {"det": {"type": "deterministic"}, "rnd": {"type": "random", "seed": 3}},
        "judges": {"rj": {"type": "random", "seed": 1}},
        "tournaments": {"t": {"debaters": ["det", "rnd"], "judge": "rj", "rounds": 1, "formats": ["debate"],
                              "branching": "full"}}})
    run_chunk("t", sec, QUESTIONS[:1], 0, tmp_path / "orig" / "transcripts" / "chunk0.jsonl", tmp_path / "s", {},
              clock=clock)
    saved = load_records(tmp_path / "orig")
    same = rejudge(saved, "rj", ModelConfig(type="random", seed=1), {}, tmp_path / "same", bootstrap=0, seed=0)
    assert same["failed_after"] == 0
    again = load_records(tmp_path / "same")
    assert [r.branches for r in again] == [r.branches for r in saved] and all(len(r.branches) == 4 for r in saved)
    rejudge(saved, "coin", ModelConfig(type="random", seed=9), {}, tmp_path / "coin", bootstrap=0, seed=0)
    coin = load_records(tmp_path / "coin")
    assert all(len(r.branches) == 4 and r.branches[0]["probs"] == r.probs for r in coin)
    assert [b["probs"] for r in coin for b in r.branches] != [b["probs"] for r in saved for b in r.branches]
