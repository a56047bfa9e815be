"""Debate tournaments (rlhf_pipeline.debate.tournament): the schedule (every question twice with sides swapped,
two different debaters in both slot orders, capped round robins, a pure function of config, questions and seed),
chunks, resume after a kill, determinism, with the deterministic / random backends."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
from debate_helpers import PROMPTS, QUESTIONS, clock, question, tcfg

from rlhf_pipeline.debate import backends
from rlhf_pipeline.debate.backends import simple
from rlhf_pipeline.debate.config import DebateSection
from rlhf_pipeline.debate.rounds import play_round
from rlhf_pipeline.debate.tournament import chunk_matches, pair_questions, run_chunk, schedule
from rlhf_pipeline.debate.types import RoundRecord
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import append_jsonl, read_jsonl
from rlhf_pipeline.seeding import derive_seed

SRC = Path(__file__).resolve().parents[1] / "src"


def test_every_question_twice_with_sides_swapped():
    ms = schedule("t", tcfg(debaters=["x", "y", "z"]), QUESTIONS[:2])
    by_fmt = {}
    for m in ms:
        by_fmt.setdefault(m.format, []).append(m)
    debate = by_fmt["debate"]
    # 3 self-play pairs + 3 pairs of different debaters in both slot orders, x 2 questions x 2 side assignments
    assert len(debate) == (3 + 3 * 2) * 2 * 2
    for a0, a1 in zip(debate[::2], debate[1::2]):
        assert a0.question.id == a1.question.id and a0.debaters == a1.debaters
        assert a0.sides == {"a": 0, "b": 1} and a1.sides == {"a": 1, "b": 0}
        assert a0.round_id.endswith("/a0") and a1.round_id.endswith("/a1")
    assert [m.round_id for m in debate[:4]] == ["debate/x-vs-x/q00/a0", "debate/x-vs-x/q00/a1",
                                                "debate/x-vs-x/q01/a0", "debate/x-vs-x/q01/a1"]
    assert {tuple(m.debaters.values()) for m in debate} == {("x", "x"), ("x", "y"), ("y", "x"), ("x", "z"),
                                                            ("z", "x"), ("y", "y"), ("y", "z"), ("z", "y"),
                                                            ("z", "z")}
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
    # the pair x, y plays its one slice in both slot orders
    assert ids[:16:2] == ["debate/x-vs-x/q00/a0", "debate/x-vs-x/q01/a0", "debate/x-vs-y/q02/a0",
                          "debate/x-vs-y/q03/a0", "debate/y-vs-x/q02/a0", "debate/y-vs-x/q03/a0",
                          "debate/y-vs-y/q04/a0", "debate/y-vs-y/q00/a0"]
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


@pytest.mark.parametrize("kind", ["round_robin", "capped_round_robin"])
def test_cross_play_gives_each_debater_both_slots_and_each_side_in_each_slot(kind):
    ms = [m for m in schedule("t", tcfg(kind=kind, debaters=["x", "y", "z"], questions_per_pair=2), QUESTIONS[:5])
          if m.format == "debate"]
    rounds: dict[tuple[str, frozenset], list[tuple]] = {}
    for m in ms:
        a, b = m.debaters["a"], m.debaters["b"]
        rounds.setdefault((m.question.id, frozenset((a, b))), []).append((m.round_id, a, b, m.sides["a"]))
    assert {pair for _, pair in rounds} == {frozenset(p) for p in ("x", "y", "z", "xy", "xz", "yz")}
    for (q, pair), got in rounds.items():
        if len(pair) == 1:  # self-play: one slot order, sides swapped
            (d,) = pair
            assert got == [(f"debate/{d}-vs-{d}/{q}/a{s}", d, d, s) for s in (0, 1)]
            continue
        x, y = sorted(pair)  # config order
        for d in pair:  # on every question, each debater in slot a exactly as often as in slot b
            assert sum(a == d for _, a, _, _ in got) == sum(b == d for _, _, b, _ in got) == 2
        # ... and defending each answer from each slot once: x-vs-y a0, a1, then y-vs-x a0, a1
        assert got == [(f"debate/{x}-vs-{y}/{q}/a0", x, y, 0), (f"debate/{x}-vs-{y}/{q}/a1", x, y, 1),
                       (f"debate/{y}-vs-{x}/{q}/a0", y, x, 0), (f"debate/{y}-vs-{x}/{q}/a1", y, x, 1)]
    assert len({m.round_id for m in ms}) == len(ms)


def test_balanced_slots_false_keeps_config_order_in_slot_a():
    kw = {"debaters": ["x", "y", "z"], "formats": ["debate", "consultancy"]}
    balanced = schedule("t", tcfg(**kw), QUESTIONS[:2])
    unbalanced = schedule("t", tcfg(balanced_slots=False, **kw), QUESTIONS[:2])
    debate = [m for m in unbalanced if m.format == "debate"]
    assert len(debate) == 6 * 2 * 2 and {(m.debaters["a"], m.debaters["b"]) for m in debate} == {
        ("x", "x"), ("x", "y"), ("x", "z"), ("y", "y"), ("y", "z"), ("z", "z")}
    # the balanced schedule adds the rounds with the later debater in slot a; the others are the same rounds
    added = [m for m in balanced if m not in unbalanced]
    assert {(m.debaters["a"], m.debaters["b"]) for m in added} == {("y", "x"), ("z", "x"), ("z", "y")}
    assert len(added) == 3 * 2 * 2 and [m for m in balanced if m in unbalanced] == unbalanced


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


FAILED_Q01 = ["debate/det-vs-det/q01/a0", "debate/det-vs-det/q01/a1", "debate/det-vs-rnd/q01/a0",
              "debate/det-vs-rnd/q01/a1", "debate/rnd-vs-det/q01/a0", "debate/rnd-vs-det/q01/a1"]
"""det plays q01 in det-vs-det, det-vs-rnd and rnd-vs-det (2 sides each); rnd-vs-rnd and the empty rounds are
fine."""


def test_a_failed_round_fails_the_chunk_and_a_rerun_retries_only_it(tmp_path, counting):
    counting.fail_on = "q01"
    sec = section(formats=["debate", "empty"])
    out, state = tmp_path / "chunk0.jsonl", tmp_path / "state"
    with pytest.raises(PipelineError) as e:
        run_chunk("t", sec, QUESTIONS[:3], 0, out, state, {}, clock=clock)
    assert str(e.value).startswith("t chunk 0: 6 of 30 rounds failed (more than max_failed_share=0); first: round "
                                   "debate/det-vs-det/q01/a0: ConnectionError: endpoint unreachable for q01; the 24 "
                                   "finished rounds are kept in ")
    assert "\n" not in str(e.value) and not out.exists()  # no transcript: Snakemake sees the job fail
    recorded = read_jsonl(state / "chunk0.partial.jsonl")
    assert sorted(r["round_id"] for r in recorded if r["status"] == "failed") == FAILED_Q01
    assert all(r["failed_stage"] == "speeches" for r in recorded if r["status"] == "failed")
    # a second failing attempt keeps failing, still without an output, and keeps one line per round
    with pytest.raises(PipelineError, match="6 of 30 rounds failed"):
        run_chunk("t", sec, QUESTIONS[:3], 0, out, state, {}, clock=clock)
    assert len(read_jsonl(state / "chunk0.partial.jsonl")) == 30
    # the server is back: a plain rerun plays exactly the failed rounds
    counting.fail_on, before = None, dict(counting.calls)
    counts = run_chunk("t", sec, QUESTIONS[:3], 0, out, state, {}, clock=clock)
    assert {r for r in counting.calls if counting.calls[r] != before.get(r)} == set(FAILED_Q01)
    assert counts == {"tournament": "t", "chunk": 0, "rounds": 30, "ok": 30, "failed": 0, "played": 6,
                      "retried": 6, "resumed": 24, "concurrency": 1}
    rows = read_jsonl(out)
    assert len(rows) == 30 and all(r["status"] == "ok" for r in rows) and not state.joinpath(
        "chunk0.partial.jsonl").exists()
    whole = run_chunk("t", sec, QUESTIONS[:3], 0, tmp_path / "whole.jsonl", tmp_path / "s2", {}, clock=clock)
    assert whole["ok"] == 30 and read_jsonl(tmp_path / "whole.jsonl") == rows  # as if nothing had failed


def test_failures_within_max_failed_share_are_kept_and_counted(tmp_path, counting):
    counting.fail_on = "q01"
    sec = section(formats=["debate", "empty"], max_failed_share=0.25)  # 6 of 30 = 0.2
    counts = run_chunk("t", sec, QUESTIONS[:3], 0, tmp_path / "chunk0.jsonl", tmp_path / "state", {}, clock=clock)
    rows = read_jsonl(tmp_path / "chunk0.jsonl")
    failed = [r for r in rows if r["status"] == "failed"]
    assert sorted(r["round_id"] for r in failed) == FAILED_Q01
    assert all(r["error"] == "ConnectionError: endpoint unreachable for q01" and r["probs"] is None for r in failed)
    assert counts == {"tournament": "t", "chunk": 0, "rounds": 3 * 4 * 2 + 3 * 2, "ok": 24, "failed": 6,
                      "played": 30, "retried": 0, "resumed": 0, "concurrency": 1}
    assert len(rows) == 30 and all(r["probs"] is not None for r in rows if r["status"] == "ok")
    assert not (tmp_path / "state" / "chunk0.partial.jsonl").exists()
    with pytest.raises(PipelineError, match=r"t chunk 0: 6 of 30 rounds failed \(more than max_failed_share=0.1\)"):
        run_chunk("t", section(formats=["debate", "empty"], max_failed_share=0.1), QUESTIONS[:3], 0,
                  tmp_path / "c.jsonl", tmp_path / "s2", {}, clock=clock)


class FlakyJudge(simple.DeterministicJudge):
    """The deterministic judge, failing while ``down`` is set; counts its calls."""

    down: ClassVar[bool] = True
    calls: ClassVar[int] = 0

    def judge(self, ctx):
        FlakyJudge.calls += 1
        if FlakyJudge.down:
            raise TimeoutError("no answer within timeout_s=60.0 (after 3 retries)")
        return super().judge(ctx)


def test_a_round_whose_verdict_failed_is_retried_with_its_speeches(tmp_path, counting, monkeypatch):
    monkeypatch.setitem(backends._JUDGES, "deterministic", FlakyJudge)
    monkeypatch.setattr(FlakyJudge, "down", True)
    sec = section(debaters=["det"], formats=["debate"])
    with pytest.raises(PipelineError, match="first: round debate/det-vs-det/q00/a0: TimeoutError: no answer"):
        run_chunk("t", sec, QUESTIONS[:2], 0, tmp_path / "c.jsonl", tmp_path / "state", {}, clock=clock)
    recorded = read_jsonl(tmp_path / "state" / "chunk0.partial.jsonl")
    assert all(r["failed_stage"] == "verdict" and len(r["speeches"]) == 4 for r in recorded)  # 2 turns x 2
    speeches = dict(counting.calls)
    monkeypatch.setattr(FlakyJudge, "down", False)
    monkeypatch.setattr(FlakyJudge, "calls", 0)
    counts = run_chunk("t", sec, QUESTIONS[:2], 0, tmp_path / "c.jsonl", tmp_path / "state", {}, clock=clock)
    assert counts["retried"] == counts["rounds"] == 4 and FlakyJudge.calls == 4 and counting.calls == speeches
    fresh = run_chunk("t", sec, QUESTIONS[:2], 0, tmp_path / "f.jsonl", tmp_path / "s2", {}, clock=clock)
    assert fresh["ok"] == 4 and read_jsonl(tmp_path / "c.jsonl") == read_jsonl(tmp_path / "f.jsonl")


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
    assert counts["resumed"] == 0 and counts["played"] == 8 and row.round_id in counting.calls


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


def _api_section(url: str, concurrency: int) -> DebateSection:
    api = {"type": "openai_compatible", "model": "echo", "base_url": url, "concurrency": concurrency,
           "max_retries": 0, "timeout_s": 10, "best_of_n": {"n": 2}}
    return DebateSection.from_dict({
        "debaters": {"x": api, "y": {**api, "seed": 1}},
        "judges": {"j": {k: v for k, v in api.items() if k != "best_of_n"}},
        "tournaments": {"t": {"debaters": ["x", "y"], "judge": "j", "rounds": 1,
                              "formats": ["debate", "consultancy"]}}})


def test_api_rounds_run_concurrently_with_the_transcripts_of_a_sequential_run(tmp_path):
    from rlhf_pipeline.debate.prompts import load_prompts
    from rlhf_pipeline.miniature.serve import start_echo

    runs = {}
    for c in (1, 4):  # a server each: a server's request limit is sized by its first user in the process
        server, url, chat = start_echo(latency_s=0.02)
        try:
            counts = run_chunk("t", _api_section(url, c), QUESTIONS[:1], 0, tmp_path / f"c{c}.jsonl",
                               tmp_path / f"s{c}", load_prompts(PROMPTS), clock=clock)
        finally:
            server.shutdown()
            server.server_close()
        runs[c] = (counts, chat, [{k: v for k, v in r.items() if k != "provenance"}
                                  for r in read_jsonl(tmp_path / f"c{c}.jsonl")])
    (one, chat1, rows1), (four, chat4, rows4) = runs[1], runs[4]
    assert one["concurrency"] == 1 and four["concurrency"] == 4 and one["ok"] == four["ok"] == one["rounds"] == 12
    assert chat1.peak == 1 and 2 <= chat4.peak <= 4  # calls overlapped, never beyond the setting
    assert chat1.requests == chat4.requests and rows1 == rows4  # best-of-N included: the same rounds
    assert all(len(s["alternatives"]) == 2 for r in rows4 for s in r["speeches"])


def test_branched_rounds_chunk_resume_and_round_trip_like_any_round(tmp_path):
    sec = section(formats=["debate", "consultancy"], rounds=1, branching="half", judge="rj")
    one = run_chunk("t", sec, QUESTIONS[:2], 0, tmp_path / "one.jsonl", tmp_path / "s1", {}, clock=clock)
    rows = read_jsonl(tmp_path / "one.jsonl")
    assert one["ok"] == one["rounds"] and all(len(r["branches"]) == 2 for r in rows)  # half: one speaker, 1 turn
    recs = [RoundRecord.from_row(r) for r in rows]
    assert all(r.to_row() == row for r, row in zip(recs, rows))  # branch speeches read back as Speech
    sec3 = section(formats=["debate", "consultancy"], rounds=1, branching="half", judge="rj", n_chunks=3)
    parts = []
    for k in range(3):
        run_chunk("t", sec3, QUESTIONS[:2], k, tmp_path / f"c{k}.jsonl", tmp_path / "s3", {}, clock=clock)
        parts += read_jsonl(tmp_path / f"c{k}.jsonl")
    assert {r["round_id"]: {**r, "chunk": 0} for r in parts} == {r["round_id"]: r for r in rows}
    run_chunk("t", section(formats=["debate", "consultancy"], rounds=1, judge="rj"), QUESTIONS[:2], 0,
              tmp_path / "p.jsonl", tmp_path / "sp", {}, clock=clock)
    plain = read_jsonl(tmp_path / "p.jsonl")
    main = ("speeches", "probs", "answer_order", "seed")
    assert [{k: r[k] for k in main} for r in plain] == [
        {k: (r[k] if k != "speeches" else [{**s, "branch": []} for s in r[k]]) for k in main} for r in rows]
