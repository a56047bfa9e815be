"""Rounds: one question played in one format, from the first speech to the judge's verdict.

:func:`play_round` turns a :class:`Match` (what the schedule says: question, format, who defends
which answer, the seed) into a :class:`~rlhf_pipeline.debate.types.RoundRecord`. Formats
(:data:`~rlhf_pipeline.debate.config.FORMATS`), with ``n = TournamentConfig.rounds`` turns:

- ``debate``: ``debater_a`` (slot a) and ``debater_b`` (slot b) defend ``sides["a"]`` and
  ``sides["b"]``; in each turn both speak. Simultaneous: in turn t each sees every speech of turns
  < t (both sides) but not the other's turn-t speech. Sequential: a speaks first and b also sees
  a's turn-t speech. The judge sees a's then b's speech within each turn, turn by turn.
- ``consultancy``: one ``consultant`` (slot a) gives n speeches for its side, each seeing its own
  earlier ones.
- ``double_consultancy``: ``consultant_a`` defends ``sides["a"]``, ``consultant_b`` the other
  answer, each in its own transcript (neither sees the other); the judge sees all of a's speeches,
  then all of b's.
- ``empty``: no speeches; the judge answers from the question alone (the baseline).

Every speech is the backend's raw text, checked by :func:`~rlhf_pipeline.debate.quotes.verify_quotes`
(``shown``, what the judge sees, and ``quotes``), with its wall time. The judge sees the answers in
a per-round random order (``answer_order``, drawn from the round's seed); its probabilities, by
shown position, are mapped back to answer indices (``RoundRecord.probs[i]`` is for ``answers[i]``).

**Best-of-N** (``n > 1`` in the speaker's ``best_of_n``: its own setting, else the tournament's):
each speech is chosen among n candidates (candidate c has seed
``speech_seed(round seed, role, turn, c)``; candidate 0 is the speech n = 1 would give). A
candidate's score is the judge's probability for the speaker's side on the transcript so far plus
the candidate plus one sampled opponent speech of the same turn, for each of ``opponent_n`` opponent
samples, combined by ``aggregate`` (min or mean). Opponent samples come from the real opponent's
backend (``opponent: real``) or from the speaker's own backend arguing the other side (``self``):

- simultaneous debate: the opponent does not see the candidate, so the same ``opponent_n`` samples
  (seeds ``derive_seed(round seed, role, turn, "opponent", j)``) score every candidate;
- sequential debate, debater a: the opponent answers each candidate (it sees it), seeds
  ``derive_seed(round seed, role, turn, c, "opponent", j)``;
- sequential debate, debater b, and both consultancies: no opponent speaks after the candidate
  this turn (b's opponent already has; consultants have none), so a candidate is scored once, on
  the speaker's transcript so far plus the candidate (for double consultancy the judge sees that
  consultant's transcript alone, as format ``consultancy``).

The highest score wins (the first on ties); every candidate is kept in ``Speech.alternatives`` as
``{"raw", "score", "selected", "unverified"}`` (``unverified``: how many of its quotes failed
verification). Judge calls for scoring use seeds ``derive_seed(round seed, "judge", role, turn, c, j)``;
the final verdict uses ``derive_seed(round seed, "judge")``.

**Branched rounds** (``TournamentConfig.branching``, the debate research code's ``BranchedJudge``): some
speech slots (:func:`branch_slots`: ``full`` every slot, ``half`` every slot of one speaker role drawn
from the round's seed, ``single_random`` one slot so drawn) are sampled twice, and every branch is played
on: a round with k branched slots has 2^k transcripts, each judged. A speech's ``branch`` is its path,
one index per slot up to its own; the speeches on the all-0 path are generated with the unbranched
round's seeds (the main transcript: ``speeches``, ``probs``, the round's verdict seed), the others with
``("branch", *path)`` appended to every seed of their making (candidates, opponents, scoring judge calls)
and their transcripts' verdicts with :func:`branch_seed`. So the main transcript is exactly the
unbranched round. ``branch_speeches`` holds the others, ``branches`` every transcript's verdict
(:func:`branch_transcripts` rebuilds them); a speech's score for training is the mean judge probability
for its side over the transcripts that contain it (:func:`rlhf_pipeline.debate.training.branch_pairs`).
A failed branched round is retried whole (no speech reused).

Every seed is a pure function of (tournament seed, round id, role, turn, candidate index, branch path),
never of the chunk or the clock, so a round replays identically wherever and whenever it runs.

**Failures**: any exception (``Exception``) from a debater or the judge, or a malformed answer (a
speech that is not a string, a verdict that is not two probabilities summing to 1), ends the round
with ``status="failed"``, ``error`` = one line ``"<ExceptionType>: <message>"``, ``probs`` None,
``failed_stage`` = ``speeches`` (a speech or its best-of-N scoring failed) or ``verdict`` (every speech
is complete; the final judging failed), and the speeches completed so far kept.
``KeyboardInterrupt``/``SystemExit`` are not caught.

**Retrying a failed round** (``prior``): the speeches of an earlier, failed attempt of the same round
are reused in speaking order as long as they match (role, turn, speaker, side), so a retry makes only
the calls that did not complete; with every speech complete, only the judge is asked again.

**Concurrent calls** (``width`` > 1, for backends that are safe to call from several threads: the API
backends): best-of-N candidates are generated, and scored, ``width`` at a time, each server's own
``concurrency`` limit still holding (:mod:`rlhf_pipeline.clients`). Every seed is fixed before any call,
so the round is the same as with ``width`` = 1.
"""

from __future__ import annotations

import math
import random
import re
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..errors import PipelineError
from ..seeding import derive_seed
from .config import BestOfNSettings, TournamentConfig
from .quotes import verify_quotes
from .types import Debater, Judge, JudgeContext, Question, RoundRecord, Speech, SpeechContext, Verdict

SLOTS = ("a", "b")
ERROR_CHARS = 500
"""Longest ``error`` text kept in a failed round (API errors can carry whole HTML pages)."""
PROB_TOLERANCE = 1e-6
"""How far a judge's two probabilities may sum from 1."""
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Match:
    """One scheduled round: everything that decides its content (see
    :func:`rlhf_pipeline.debate.tournament.schedule`)."""

    round_id: str
    """Readable and unique in its tournament, e.g. ``debate/weak-vs-strong/q0012/a0``."""
    format: str
    question: Question
    debaters: dict[str, str] = field(default_factory=dict)
    """Slot (``a``/``b``) -> debater name; empty for the empty round."""
    sides: dict[str, int] = field(default_factory=dict)
    """Slot -> answer index it defends."""
    seed: int = 0
    """The round's seed: :func:`derive_seed` of the tournament seed and the round id."""


# --------------------------------------------------------------------------------------- seeds


def speech_seed(round_seed: int, role: str, turn: int, candidate: int = 0) -> int:
    """The seed of candidate ``candidate`` of ``role``'s speech in ``turn``."""
    return derive_seed(round_seed, role, turn, candidate)


def answer_order(round_seed: int) -> list[int]:
    """The order the judge sees the two answers in (``[0, 1]`` or ``[1, 0]``), from the round's seed."""
    return [0, 1] if random.Random(derive_seed(round_seed, "answer_order")).random() < 0.5 else [1, 0]


def probs_by_answer(shown_probs: list[float], order: list[int]) -> list[float]:
    """Map probabilities by shown position to probabilities by answer index: ``order[k]`` is the
    answer shown at position k, so ``result[order[k]] = shown_probs[k]``."""
    out = [0.0, 0.0]
    for k, i in enumerate(order):
        out[i] = shown_probs[k]
    return out


def aggregate(scores: list[float], how: str) -> float:
    """Combine one candidate's scores against the opponent samples: ``min`` or ``mean``."""
    if how == "min":
        return min(scores)
    if how == "mean":
        return statistics.fmean(scores)
    raise PipelineError(f"best_of_n.aggregate: got {how!r}, expected 'min' or 'mean'")


# ------------------------------------------------------------------------------ speaking order


def speaking_order(fmt: str, n_turns: int) -> list[tuple[str, str, int]]:
    """``(slot, role, turn)`` of every speech of a round in the order they are produced, which is
    also the order the judge reads them in."""
    if fmt == "debate":
        return [(slot, f"debater_{slot}", t) for t in range(n_turns) for slot in SLOTS]
    if fmt == "consultancy":
        return [("a", "consultant", t) for t in range(n_turns)]
    if fmt == "double_consultancy":
        return [(slot, f"consultant_{slot}", t) for slot in SLOTS for t in range(n_turns)]
    if fmt == "empty":
        return []
    raise PipelineError(f"round format: got {fmt!r}, expected one of debate, consultancy, double_consultancy, empty")


def branch_slots(fmt: str, n_turns: int, branching: str, round_seed: int) -> list[bool]:
    """Which speech slots of a round (in :func:`speaking_order`) branch in two (module docstring):
    ``none``; ``full``: every slot; ``half``: every slot of one speaker role, drawn from the round's seed;
    ``single_random``: one slot, drawn from the round's seed."""
    order = speaking_order(fmt, n_turns)
    if branching == "none" or not order:
        return [False] * len(order)
    if branching == "full":
        return [True] * len(order)
    rng = random.Random(derive_seed(round_seed, "branching"))
    if branching == "half":
        chosen = rng.choice(list(dict.fromkeys(role for _, role, _ in order)))
        return [role == chosen for _, role, _ in order]
    if branching == "single_random":
        k = rng.randrange(len(order))
        return [i == k for i in range(len(order))]
    raise PipelineError(f"branching: got {branching!r}, expected one of none, full, half, single_random")


def branch_seed(judge_seed: int, path: Sequence[int]) -> int:
    """The judge's seed for the transcript ``path`` of a branched round (the main one keeps the round's)."""
    return derive_seed(judge_seed, "branch", *path) if any(path) else judge_seed


def branch_nodes(rec: RoundRecord) -> dict[tuple[int, ...], Speech]:
    """Every speech of a branched round by its ``branch`` path (main and off-main); empty when unbranched."""
    return {tuple(s.branch): s for s in [*rec.speeches, *rec.branch_speeches] if s.branch}


def branch_transcripts(rec: RoundRecord) -> list[tuple[list[int], list[Speech]]]:
    """``(path, speeches in speaking order)`` of every transcript of a branched round (its speeches'
    ``branch`` paths: every full-length path, in order; the main one, all 0, first); empty for an unbranched
    round. PipelineError naming the round when a speech on a path is missing."""
    nodes = branch_nodes(rec)
    if not nodes:
        return []
    depth = max(len(p) for p in nodes)
    out = []
    for path in sorted(p for p in nodes if len(p) == depth):
        missing = [path[: i + 1] for i in range(depth) if path[: i + 1] not in nodes]
        if missing:
            raise PipelineError(f"round {rec.round_id}: branch {list(path)} has no speech at {list(missing[0])}")
        out.append((list(path), [nodes[path[: i + 1]] for i in range(depth)]))
    return out


def visible_to(fmt: str, simultaneous: bool, role: str, turn: int, speeches: list[Speech]) -> list[Speech]:
    """The speeches (of those produced so far, in order) that ``role`` may see when it gives its
    ``turn``-th speech (see the module docstring)."""
    if fmt == "debate":
        return [s for s in speeches if s.turn < turn or (not simultaneous and s.turn == turn
                                                         and s.role == "debater_a" and role == "debater_b")]
    return [s for s in speeches if s.role == role and s.turn < turn]


def _judge_sorted(speeches: list[Speech]) -> list[Speech]:
    """Debate speeches in the judge's order: turn by turn, debater a before b."""
    return sorted(speeches, key=lambda s: (s.turn, s.role != "debater_a"))


def fan_out(fn: Callable[[Any], Any], items: Sequence[Any], width: int) -> list[Any]:
    """``[fn(x) for x in items]``, ``width`` calls at a time (in order; the first exception raised)."""
    if width <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=min(width, len(items))) as pool:
        return list(pool.map(fn, items))


def call_width(backends: Sequence[Any]) -> int:
    """How many calls may run at once on ``backends``: the largest ``concurrency`` among them when every
    one is ``thread_safe`` (API backends: their configured ``concurrency``; pure-Python baselines: safe,
    adding no width of their own), else 1 (local models: one call at a time)."""
    if not backends or not all(getattr(b, "thread_safe", False) for b in backends):
        return 1
    return max([int(getattr(b, "concurrency", 1)) for b in backends])


def error_line(e: BaseException) -> str:
    """``"<ExceptionType>: <message>"`` on one line, at most :data:`ERROR_CHARS` characters."""
    message = _SPACE.sub(" ", str(e)).strip()
    text = f"{type(e).__name__}: {message}" if message else type(e).__name__
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def check_verdict(verdict: Any, judge: str) -> Verdict:
    """The verdict, with its probabilities as floats; PipelineError naming the judge unless it is a
    :class:`Verdict` with two finite probabilities in [0, 1] summing to 1 (within 1e-6)."""
    if not isinstance(verdict, Verdict):
        raise PipelineError(f"judge {judge}: judge() returned {type(verdict).__name__}, expected a Verdict")
    p = verdict.probs
    ok = (isinstance(p, list | tuple) and len(p) == 2
          and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and 0 <= x <= 1
                  for x in p)
          and abs(p[0] + p[1] - 1) <= PROB_TOLERANCE)
    if not ok:
        raise PipelineError(f"judge {judge}: probabilities {p!r} are not two finite numbers in [0, 1] summing to 1")
    return Verdict([float(x) for x in p], bool(verdict.has_probabilities), str(verdict.raw))


# ---------------------------------------------------------------------------------------- round


class _Round:
    """One round in progress: the match, its backends and the speeches completed so far."""

    def __init__(self, match: Match, cfg: TournamentConfig, debaters: Mapping[str, Debater], judge: Judge,
                 threshold: float, clock: Callable[[], float], best_of_n: Mapping[str, BestOfNSettings],
                 width: int = 1):
        self.m, self.cfg, self.backends, self.judge = match, cfg, debaters, judge
        self.best_of_n, self.width = best_of_n, width
        self.threshold, self.clock = threshold, clock
        self.order = answer_order(match.seed)
        self.speeches: list[Speech] = []
        self.stage = "speeches"
        """Where a failure stops the round: ``speeches`` until every speech is made, then ``verdict``."""
        self.opponents: dict[tuple, Speech] = {}
        """Simultaneous best-of-N opponent samples, generated once and shared by the candidates."""

    def backend(self, name: str) -> Debater:
        if name not in self.backends:
            raise PipelineError(f"round {self.m.round_id}: no backend for debater {name!r}")
        return self.backends[name]

    def generate(self, speaker: str, role: str, side: int, turn: int, visible: list[Speech], seed: int) -> Speech:
        """One speech from ``speaker``'s backend, its quotes verified."""
        m = self.m
        ctx = SpeechContext(question=m.question, side=side, role=role, format=m.format, turn=turn,
                            n_turns=self.cfg.rounds, visible=list(visible), round_id=m.round_id, seed=seed)
        raw = self.backend(speaker).speak(ctx)
        if not isinstance(raw, str):
            raise PipelineError(f"debater {speaker}: speak() returned {type(raw).__name__}, expected str")
        shown, quotes = verify_quotes(raw, m.question.passage, self.threshold)
        return Speech(role=role, speaker=speaker, side=side, turn=turn, raw=raw, shown=shown, quotes=quotes)

    def verdict(self, fmt: str, speeches: list[Speech], seed: int) -> tuple[list[float], Verdict]:
        """The judge on ``speeches``: (probabilities by answer index, the checked verdict)."""
        ctx = JudgeContext(question=self.m.question, format=fmt, answer_order=list(self.order),
                           speeches=list(speeches), round_id=self.m.round_id, seed=seed)
        v = check_verdict(self.judge.judge(ctx), self.judge.name)
        return probs_by_answer(v.probs, self.order), v

    def speak(self, slot: str, role: str, turn: int, before: list[Speech] | None = None,
              tag: tuple = ()) -> Speech:
        """The speech of ``slot`` in ``turn`` (best of n candidates when ``best_of_n.n > 1``), after the
        speeches ``before`` (default: the round's so far); ``tag``: appended to every seed of a speech off the
        main transcript of a branched round (``("branch", *path)``; empty on the main transcript)."""
        m = self.m
        start = self.clock()
        speaker, side = m.debaters[slot], m.sides[slot]
        bon = self.best_of_n.get(speaker) or self.cfg.best_of_n
        visible = visible_to(m.format, self.cfg.simultaneous, role, turn,
                             self.speeches if before is None else before)
        seeds = [derive_seed(m.seed, role, turn, c, *tag) if tag else speech_seed(m.seed, role, turn, c)
                 for c in range(bon.n)]
        candidates = fan_out(lambda s: self.generate(speaker, role, side, turn, visible, s), seeds, self.width)
        if bon.n == 1:
            speech = candidates[0]
        else:
            if m.format == "debate" and self.cfg.simultaneous:  # the shared opponent samples, made once
                fan_out(lambda j: self.opponent(slot, role, side, turn, visible, bon, j, tag), range(bon.opponent_n),
                        self.width)
            scores = fan_out(lambda c: self.score(c, candidates[c], slot, visible, bon, tag), range(bon.n),
                             self.width)
            best = max(range(bon.n), key=lambda c: (scores[c], -c))
            speech = candidates[best]
            speech.alternatives = [{"raw": cand.raw, "score": score, "selected": c == best,
                                    "unverified": sum(q.status != "verified" for q in cand.quotes)}
                                   for c, (cand, score) in enumerate(zip(candidates, scores))]
        speech.seconds = round(self.clock() - start, 3)
        return speech

    def tree(self, branched: list[bool]) -> dict[tuple[int, ...], Speech]:
        """Every speech of a branched round by its path (module docstring); each slot's speeches ``width``
        at a time."""
        nodes: dict[tuple[int, ...], Speech] = {}
        frontier: list[tuple[int, ...]] = [()]
        for k, (slot, role, turn) in enumerate(speaking_order(self.m.format, self.cfg.rounds)):
            paths = [p + (c,) for p in frontier for c in ((0, 1) if branched[k] else (0,))]

            def make(path: tuple[int, ...], k: int = k, slot: str = slot, role: str = role,
                     turn: int = turn) -> Speech:
                before = [nodes[path[: i + 1]] for i in range(k)]
                speech = self.speak(slot, role, turn, before, ("branch", *path) if any(path) else ())
                speech.branch = list(path)
                return speech

            nodes.update(zip(paths, fan_out(make, paths, self.width)))
            frontier = paths
        return nodes

    def score(self, c: int, cand: Speech, slot: str, visible: list[Speech], bon: BestOfNSettings,
              tag: tuple = ()) -> float:
        """Candidate ``c``'s best-of-N score (see the module docstring)."""
        m = self.m
        role, turn, side = cand.role, cand.turn, cand.side
        judge_seed = [m.seed, "judge", role, turn, c, *tag]
        answered = m.format == "debate" and (self.cfg.simultaneous or slot == "a")
        if not answered:
            fmt = "debate" if m.format == "debate" else "consultancy"
            return self.verdict(fmt, [*visible, cand], derive_seed(*judge_seed, 0))[0][side]
        scores = []
        for j in range(bon.opponent_n):
            if self.cfg.simultaneous:  # the opponent has not seen the candidate: one set of samples for all
                opp = self.opponent(slot, role, side, turn, visible, bon, j, tag)
            else:  # sequential, debater a: the opponent answers this candidate
                other = "b" if slot == "a" else "a"
                opp_speaker = m.debaters[other] if bon.opponent == "real" else cand.speaker
                opp = self.generate(opp_speaker, f"debater_{other}", 1 - side, turn, [*visible, cand],
                                    derive_seed(m.seed, role, turn, c, "opponent", j, *tag))
            shown = _judge_sorted([*visible, cand, opp])
            scores.append(self.verdict("debate", shown, derive_seed(*judge_seed, j))[0][side])
        return aggregate(scores, bon.aggregate)

    def opponent(self, slot: str, role: str, side: int, turn: int, visible: list[Speech], bon: BestOfNSettings,
                 j: int, tag: tuple = ()) -> Speech:
        """Simultaneous debate: opponent sample ``j`` against ``slot``'s candidates (made once, then shared)."""
        other = "b" if slot == "a" else "a"
        speaker = self.m.debaters[other] if bon.opponent == "real" else self.m.debaters[slot]
        seed = derive_seed(self.m.seed, role, turn, "opponent", j, *tag)
        if (speaker, seed) not in self.opponents:
            self.opponents[speaker, seed] = self.generate(speaker, f"debater_{other}", 1 - side, turn, visible, seed)
        return self.opponents[speaker, seed]


def play_round(match: Match, cfg: TournamentConfig, debaters: Mapping[str, Debater], judge: Judge, *,
               tournament: str, chunk: int = 0, threshold: float = 90.0,
               clock: Callable[[], float] = time.perf_counter,
               best_of_n: Mapping[str, BestOfNSettings] | None = None, prior: Sequence[Speech] = (),
               width: int = 1) -> RoundRecord:
    """Play one round (see the module docstring); never raises for a backend failure.

    ``debaters``: debater name -> backend (at least the names in ``match.debaters``); ``cfg``
    supplies ``rounds`` (turns), ``simultaneous`` and the default ``best_of_n``; ``best_of_n``: debater
    name -> its own best-of-N settings (those not named use the tournament's); ``threshold``: the fuzzy quote
    threshold (``debate.quote_fuzzy_threshold``); ``clock``: the timer of the ``seconds`` fields
    (inject a constant one for byte-identical transcripts); ``prior``: the speeches of an earlier, failed
    attempt (reused while they match); ``width``: calls at a time within the round (module docstring)."""
    start = clock()
    r = _Round(match, cfg, debaters, judge, threshold, clock, best_of_n or {}, width)
    q = match.question
    rec = RoundRecord(round_id=match.round_id, tournament=tournament, chunk=chunk, question_id=q.id,
                      story_id=q.story_id, question=q.question, answers=list(q.answers), format=match.format,
                      debaters=dict(match.debaters), sides=dict(match.sides), correct_index=q.correct_index,
                      answer_order=list(r.order), speeches=r.speeches, judge=judge.name, probs=None,
                      has_probabilities=False, judge_raw="", provenance={},
                      seed=derive_seed(match.seed, "judge"))
    try:
        for name in dict.fromkeys(match.debaters.values()):
            rec.provenance[name] = dict(r.backend(name).provenance())
        rec.provenance[judge.name if judge.name not in rec.provenance else f"judge/{judge.name}"] = \
            dict(judge.provenance())
        branched = branch_slots(match.format, cfg.rounds, cfg.branching, match.seed)
        if any(branched):
            _play_branched(r, rec, branched)
            return rec
        reusable = list(prior)
        for slot, role, turn in speaking_order(match.format, cfg.rounds):
            old = reusable.pop(0) if reusable else None
            if old is None or (old.role, old.turn, old.speaker, old.side) != (role, turn, match.debaters[slot],
                                                                               match.sides[slot]):
                reusable, old = [], None  # a later speech saw this one: nothing after it is reused either
            r.speeches.append(old or r.speak(slot, role, turn))
        r.stage = "verdict"
        probs, v = r.verdict(match.format, r.speeches, rec.seed)
        rec.probs, rec.has_probabilities, rec.judge_raw = probs, v.has_probabilities, v.raw
    except Exception as e:  # any backend failure: record it, lose nothing else
        rec.status, rec.error, rec.probs, rec.failed_stage = "failed", error_line(e), None, r.stage
    finally:
        rec.speeches = list(r.speeches)
        rec.seconds = round(clock() - start, 3)
    return rec


def _play_branched(r: _Round, rec: RoundRecord, branched: list[bool]) -> None:
    """The speeches and verdicts of a branched round into ``rec`` (module docstring)."""
    nodes = r.tree(branched)
    paths = [p for p in nodes if len(p) == len(branched)]
    main = (0,) * len(branched)
    r.speeches.extend(nodes[main[: i + 1]] for i in range(len(main)))
    rec.branch_speeches = [s for p, s in nodes.items() if any(p)]
    r.stage = "verdict"
    verdicts = fan_out(lambda p: r.verdict(rec.format, [nodes[p[: i + 1]] for i in range(len(p))],
                                           branch_seed(rec.seed, p)), paths, r.width)
    rec.branches = [{"path": list(p), "probs": probs, "has_probabilities": v.has_probabilities, "judge_raw": v.raw}
                    for p, (probs, v) in zip(paths, verdicts)]
    probs, v = verdicts[paths.index(main)]
    rec.probs, rec.has_probabilities, rec.judge_raw = probs, v.has_probabilities, v.raw
