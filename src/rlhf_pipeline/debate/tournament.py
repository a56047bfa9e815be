"""Tournaments: which rounds are played (:func:`schedule`), how they split into jobs
(:func:`chunk_matches`), and one job that plays its chunk and resumes after a kill (:func:`run_chunk`).

**Pairings** (``kind``), over the tournament's ``debaters`` in config order:

- ``self_play``: (d, d) for each debater d;
- ``round_robin``: every unordered pair (d_i, d_j) with i <= j, so each debater also meets itself;
- ``capped_round_robin``: the same pairs, but pair number p (in that order) gets its own slice of
  ``questions_per_pair`` questions: positions ``p * questions_per_pair + j`` (j = 0, 1, ...) of the
  question pool, wrapping around, so slices rotate through the pool deterministically (at most the
  whole pool per pair).

The question pool is the first ``questions`` questions of the list (all when null); self_play and
round_robin pairs all play the whole pool.

**Slots**: the judge reads slot a's speech before slot b's in every debate turn. With ``balanced_slots``
(the default) a pair of two different debaters (x, y), x earlier in config order, debates in both slot
orders, x in slot a and then y, each on all of the pair's questions (capped_round_robin: the pair's one
slice): on every question each of the two is in slot a as often as in slot b and defends each answer
from each slot, so a judge's bias toward the speaker it reads first cancels out of the ratings
(judge.csv measures it: ``slot_a_bias``). ``balanced_slots: false``: x is always in slot a (half the
cross-play rounds). A self-play pair (d, d) has one order.

**Rounds** (formats in ``formats`` order; within a format, pairing / debater, slot order, question, side):

- ``debate``: for each slot order (s, t) of each pair, s is slot a and t slot b; every question twice,
  slot a defending answer 0 then answer 1 (slot b the other) -- ``debate/s-vs-t/<question id>/a0``,
  ``.../a1`` (for x != y: ``debate/x-vs-y/...``, then ``debate/y-vs-x/...``);
- ``consultancy``: for each debater d, on the questions d plays (the union over its pairs, in pool
  order), the consultant defends 0 then 1 -- ``consultancy/d/<question id>/a0``, ``.../a1``;
- ``double_consultancy``: for each debater d on the questions it plays, consultant_a =
  consultant_b = d, consultant_a defending 0 then 1 -- ``double_consultancy/d/<question id>/a0``;
- ``empty``: every question played by any pair, twice (the two rounds differ only in their seed,
  hence in the answer order shown) -- ``empty/none/<question id>/r0``, ``.../r1``.

A round's seed is ``derive_seed(tournament seed, round_id)``. The schedule and every seed are a
pure function of the tournament config (not ``n_chunks``), the question list and the seed.

**Chunks**: match i of the schedule goes to chunk ``i % n_chunks``. A match's content does not
depend on ``n_chunks`` (only the ``chunk`` field of its record does), so the union of the chunks
of a split tournament is the unsplit tournament.

**Concurrency**: when every backend the chunk uses is ``thread_safe`` (the API backends and the
model-free baselines; not local ``hf`` models), up to ``concurrency`` rounds (the largest of its API
backends') are played at once, and within a round its best-of-N calls
(:func:`~rlhf_pipeline.debate.rounds.call_width`); each server's ``concurrency`` still caps the requests
in flight to it. Seeds are fixed by the schedule, so the transcripts are those of a sequential run.

**Resume and failures**: :func:`run_chunk` appends each finished round (ok or failed) as one JSON line
to ``<state_dir>/chunk<k>.partial.jsonl``, flushed and fsynced. On restart it reads that file
(skipping a truncated last line with a warning); a round counts as finished only when its latest line
is ok, so a rerun plays the rounds never recorded and retries the failed ones, reusing their finished
speeches (a failure at the verdict costs one judge call to retry). When every round has been played,
the chunk fails if more than ``max_failed_share`` of its rounds failed (default 0: any): a
PipelineError (the CLI exits 2 with one line: how many failed, the first error with its server) and no ``out_path``,
the state kept for the rerun. Otherwise it writes ``out_path`` atomically, rounds in schedule order
(failed ones included and counted), and deletes the state.
``<state_dir>/chunk<k>.fingerprint`` holds a hash of everything that shapes the chunk's rounds (the
tournament, debater and judge configs, the weights of local ``hf`` debaters (a retrained checkpoint
at the same path), prompts, quote threshold, questions, chunk split); state
left by a different configuration is discarded with a warning instead of being resumed. The state
directory must lie outside the job's declared outputs (Snakemake deletes those before a job starts).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from ..config import config_hash
from ..errors import PipelineError
from ..io import append_jsonl, atomic_file, read_jsonl, write_jsonl
from ..models.fingerprint import model_dir_hash
from ..seeding import derive_seed
from .backends import build_debater, build_judge
from .config import DebateSection, TournamentConfig
from .rounds import Match, call_width, play_round
from .types import Question, RoundRecord

__all__ = ["Match", "chunk_matches", "pair_questions", "pairings", "run_chunk", "schedule", "slot_orders"]

log = logging.getLogger(__name__)


def pairings(kind: str, debaters: list[str]) -> list[tuple[str, str]]:
    """The debater pairs (x, y) of a tournament ``kind``, x not after y in config order (see the module
    docstring); :func:`slot_orders` gives the slot orders a pair debates in."""
    if kind == "self_play":
        return [(d, d) for d in debaters]
    return [(debaters[i], debaters[j]) for i in range(len(debaters)) for j in range(i, len(debaters))]


def slot_orders(pair: tuple[str, str], balanced_slots: bool) -> list[tuple[str, str]]:
    """The (slot a, slot b) orders a pair debates in: ``(x, y)``, then ``(y, x)`` for two different
    debaters when ``balanced_slots``."""
    x, y = pair
    return [(x, y), (y, x)] if balanced_slots and x != y else [(x, y)]


def pair_questions(kind: str, n_pairs: int, pool: list[Question], per_pair: int) -> list[list[Question]]:
    """The questions each of ``n_pairs`` pairs plays: the whole pool, or for ``capped_round_robin``
    pair p's rotating slice ``pool[(p * per_pair + j) % len(pool)]``, j < min(per_pair, len(pool))."""
    if kind != "capped_round_robin":
        return [list(pool) for _ in range(n_pairs)]
    size = min(per_pair, len(pool))
    return [[pool[(p * per_pair + j) % len(pool)] for j in range(size)] for p in range(n_pairs)]


def _in_pool_order(pool: list[Question], chosen: list[list[Question]]) -> list[Question]:
    """The questions in any of ``chosen``, once each, in pool order."""
    ids = {q.id for qs in chosen for q in qs}
    return [q for q in pool if q.id in ids]


def schedule(tournament: str, cfg: TournamentConfig, questions: list[Question]) -> list[Match]:
    """Every round of tournament ``tournament``, in schedule order (see the module docstring)."""
    at = f"debate.tournaments.{tournament}"
    pool = list(questions[: cfg.questions] if cfg.questions else questions)
    if not pool:
        raise PipelineError(f"{at}: no questions to schedule (the dataset split is empty)")
    seen: set[str] = set()
    for q in pool:
        if q.id in seen:
            raise PipelineError(f"{at}: question id {q.id!r} appears twice in the question list; ids must be unique")
        seen.add(q.id)
    pairs = pairings(cfg.kind, cfg.debaters)
    per_pair = pair_questions(cfg.kind, len(pairs), pool, cfg.questions_per_pair)
    played = {d: _in_pool_order(pool, [qs for (x, y), qs in zip(pairs, per_pair) if d in (x, y)])
              for d in cfg.debaters}
    everything = _in_pool_order(pool, per_pair)

    rows: list[tuple[str, str, Question, dict[str, str], dict[str, int]]] = []
    for fmt in cfg.formats:
        if fmt == "debate":
            for pair, qs in zip(pairs, per_pair):
                rows += [(fmt, f"{x}-vs-{y}/{q.id}/a{s}", q, {"a": x, "b": y}, {"a": s, "b": 1 - s})
                         for x, y in slot_orders(pair, cfg.balanced_slots) for q in qs for s in (0, 1)]
        elif fmt == "consultancy":
            rows += [(fmt, f"{d}/{q.id}/a{s}", q, {"a": d}, {"a": s})
                     for d in cfg.debaters for q in played[d] for s in (0, 1)]
        elif fmt == "double_consultancy":
            rows += [(fmt, f"{d}/{q.id}/a{s}", q, {"a": d, "b": d}, {"a": s, "b": 1 - s})
                     for d in cfg.debaters for q in played[d] for s in (0, 1)]
        elif fmt == "empty":
            rows += [(fmt, f"none/{q.id}/r{r}", q, {}, {}) for q in everything for r in (0, 1)]
        else:
            raise PipelineError(f"{at}.formats: got {fmt!r}, expected one of debate, consultancy, "
                                "double_consultancy, empty")
    matches = []
    for fmt, rest, q, debaters, sides in rows:
        round_id = f"{fmt}/{rest}"
        matches.append(Match(round_id, fmt, q, debaters, sides, derive_seed(cfg.seed, round_id)))
    ids = [m.round_id for m in matches]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise PipelineError(f"{at}: round id {dup!r} occurs twice; debater names and question ids must keep "
                            "round ids unique (a name containing '-vs-' or '/' can collide)")
    return matches


def chunk_matches(matches: list[Match], n_chunks: int, k: int) -> list[Match]:
    """The matches of chunk ``k`` of ``n_chunks``: match i goes to chunk ``i % n_chunks``."""
    if n_chunks < 1 or not 0 <= k < n_chunks:
        raise PipelineError(f"chunk {k} of n_chunks={n_chunks}: expected 0 <= chunk < n_chunks")
    return [m for i, m in enumerate(matches) if i % n_chunks == k]


# ------------------------------------------------------------------------------------ one chunk


def _fingerprint(tournament: str, section: DebateSection, cfg: TournamentConfig, k: int, matches: list[Match],
                 prompts: dict[str, Any]) -> str:
    """A hash of everything that shapes chunk ``k``'s rounds (state from another one is stale)."""
    names = sorted({d for m in matches for d in m.debaters.values()})
    return config_hash({
        "tournament": tournament, "chunk": k,
        # bootstrap (ratings) and max_failed_share (the job's verdict on failures) do not shape a round
        "config": {key: v for key, v in cfg.to_dict().items() if key not in ("bootstrap", "max_failed_share")},
        "debaters": {n: section.debaters[n].to_dict() for n in names},
        "judge": section.judges[cfg.judge].to_dict(), "prompts": prompts,
        "threshold": section.quote_fuzzy_threshold,
        "weights": {n: model_dir_hash(section.debaters[n].model) for n in names
                    if section.debaters[n].type == "hf" and section.debaters[n].model},
        "rounds": [[m.round_id, m.seed, m.question.to_row()] for m in matches],
    })


def _resume(partial: Path, stamp: Path, fingerprint: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    """The rounds already recorded in ``partial`` (round_id -> its latest row, ok or failed). Stale state
    (another fingerprint) is deleted; a truncated last line, rows of other rounds and superseded rows
    of a retried round are dropped and the file rewritten, so later appends start on a fresh line."""
    if partial.exists() and (not stamp.is_file() or stamp.read_text().strip() != fingerprint):
        warnings.warn(f"{partial}: left by a different configuration of this chunk; starting afresh", stacklevel=3)
        partial.unlink()
    if not partial.exists():
        with atomic_file(stamp) as tmp:
            Path(tmp).write_text(fingerprint + "\n")
        return {}
    rows = read_jsonl(partial, required=["round_id", "status"], allow_truncated_tail=True)
    done: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["round_id"] in ids:
            done.pop(row["round_id"], None)  # a retried round's latest line is its state
            done[row["round_id"]] = row
    if len(done) != len(rows) or not partial.read_bytes().endswith(b"\n"):
        foreign = sum(r["round_id"] not in ids for r in rows)
        if foreign:
            warnings.warn(f"{partial}: dropping {foreign} row(s) that are not rounds of this chunk", stacklevel=3)
        write_jsonl(partial, done.values())
    return done


def run_chunk(tournament: str, section: DebateSection, questions: list[Question], k: int, out_path: str | Path,
              state_dir: str | Path, prompts: dict[str, Any], *,
              clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Play chunk ``k`` of tournament ``tournament`` and write its transcript JSONL to ``out_path``.

    Builds only the backends the remaining rounds need, plays them (concurrently where the backends
    allow; a tqdm bar), records each finished round in ``state_dir`` at once and resumes from there
    after a kill or a failure (see the module docstring). ``clock``: the timer of the rounds'
    ``seconds`` fields. Returns the counts: ``rounds`` (in the chunk), ``ok``, ``failed``, ``played``
    (by this call), ``retried`` (of those, failed in an earlier call), ``resumed`` (finished by an
    earlier call) and ``concurrency`` (rounds played at once). PipelineError when more than
    ``max_failed_share`` of the rounds failed."""
    from tqdm.auto import tqdm

    if tournament not in section.tournaments:
        raise PipelineError(f"debate.tournaments: no tournament {tournament!r}; known: {sorted(section.tournaments)}")
    cfg = section.tournaments[tournament]
    matches = chunk_matches(schedule(tournament, cfg, questions), cfg.n_chunks, k)
    state_dir, out_path = Path(state_dir), Path(out_path)
    partial, stamp = state_dir / f"chunk{k}.partial.jsonl", state_dir / f"chunk{k}.fingerprint"
    recorded = _resume(partial, stamp, _fingerprint(tournament, section, cfg, k, matches, prompts),
                       {m.round_id for m in matches})
    done = {i: row for i, row in recorded.items() if row["status"] == "ok"}
    todo = [m for m in matches if m.round_id not in done]
    prior = {i: RoundRecord.from_row(row).speeches for i, row in recorded.items() if i not in done}

    names = list(dict.fromkeys(d for m in todo for d in m.debaters.values()))
    debaters = {n: build_debater(n, section.debaters[n], prompts) for n in names}
    judge = build_judge(cfg.judge, section.judges[cfg.judge], prompts) if todo else None
    width = call_width([*debaters.values(), judge]) if todo else 1
    best_of_n = {n: section.debaters[n].best_of_n for n in names if section.debaters[n].best_of_n is not None}

    def play(m: Match) -> RoundRecord:
        return play_round(m, cfg, debaters, judge, tournament=tournament, chunk=k,
                          threshold=section.quote_fuzzy_threshold, clock=clock, best_of_n=best_of_n,
                          prior=prior.get(m.round_id, ()), width=width)

    bar = tqdm(desc=f"{tournament} chunk {k}", unit="round", initial=len(done), total=len(matches))
    pool = ThreadPoolExecutor(max_workers=width) if width > 1 else None
    try:  # records are appended by this thread alone, in the order rounds finish
        finished = (f.result() for f in as_completed([pool.submit(play, m) for m in todo])) if pool else map(
            play, todo)
        for rec in finished:
            if rec.status != "ok":
                log.warning("%s chunk %d: round %s failed: %s", tournament, k, rec.round_id, rec.error)
            append_jsonl(partial, rec.to_row())
            bar.update()
    finally:
        bar.close()
        if pool:
            pool.shutdown(wait=False, cancel_futures=True)

    rows = _resume(partial, stamp, stamp.read_text().strip(), {m.round_id for m in matches}) if matches else {}
    missing = [m.round_id for m in matches if m.round_id not in rows]
    if missing:  # cannot happen unless the state file was edited while we ran
        raise PipelineError(f"{partial}: rounds {missing[:3]} are missing after the chunk finished")
    failed = [rows[m.round_id] for m in matches if rows[m.round_id]["status"] != "ok"]
    if len(failed) > cfg.max_failed_share * len(matches):
        raise PipelineError(
            f"{tournament} chunk {k}: {len(failed)} of {len(matches)} rounds failed (more than "
            f"max_failed_share={cfg.max_failed_share:g}); first: round {failed[0]['round_id']}: {failed[0]['error']}; "
            f"the {len(matches) - len(failed)} finished rounds are kept in {partial} and a rerun retries only the "
            "failed ones")
    write_jsonl(out_path, [rows[m.round_id] for m in matches])
    partial.unlink(missing_ok=True)
    stamp.unlink(missing_ok=True)
    return {"tournament": tournament, "chunk": k, "rounds": len(matches), "ok": len(matches) - len(failed),
            "failed": len(failed), "played": len(todo), "retried": len(prior), "resumed": len(done),
            "concurrency": width}
