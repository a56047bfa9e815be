"""Offline re-judging: a new judge decides saved rounds again, without generating any speech.

For every round of a tournament's transcripts whose speeches are complete (ok rounds, and failed ones
whose ``failed_stage`` is ``verdict``: only their judging failed), :func:`rejudge` rebuilds what the
judge saw (:func:`judge_context`: the question and answers, the recorded answer order, the speeches as
shown with their quote checks, the round's id and seed; the passage is empty, as judges never read it),
asks the new judge, and maps its verdict back onto the record (:func:`reapply_verdict`); a branched
round's every transcript likewise (``branches``, each with its own seed). Rounds whose
speeches are incomplete stay failed, and stay counted. Judge calls run ``concurrency`` at a time for an
API judge (:func:`~rlhf_pipeline.debate.rounds.call_width`). When more than ``max_failed_share`` of the
rounds are failed afterwards, nothing is written and a one-line PipelineError names the count and the
first error. The re-judged transcripts and the statistics of
:func:`rlhf_pipeline.debate.ratings.summarize` are written under ``out_dir``:

    out_dir/transcripts/chunk{k}.jsonl   the re-judged records, by their original chunk
    out_dir/rounds.csv, ratings.csv, judge.csv, calibration.csv, win_matrix.png, calibration.png

``out_dir`` is then itself a tournament directory (the ``offline`` backends can replay it). With the
unchanged judge, ``rounds.csv`` is the original byte for byte.

:func:`reapply_verdict` maps a verdict (probabilities by *shown position*) to probabilities by
*answer index* with the rounds module's own :func:`~rlhf_pipeline.debate.rounds.check_verdict` and
:func:`~rlhf_pipeline.debate.rounds.probs_by_answer`, so judging and re-judging check and map
verdicts identically.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import default_of
from ..errors import PipelineError
from ..io import atomic_dir, write_jsonl
from .config import TournamentConfig
from .rounds import branch_seed, branch_transcripts, call_width, check_verdict, error_line, fan_out, probs_by_answer
from .types import JudgeContext, Question, RoundRecord, Speech, Verdict

if TYPE_CHECKING:
    import os

    from .config import ModelConfig
    from .types import Judge

def reapply_verdict(record: RoundRecord, verdict: Verdict) -> RoundRecord:
    """A copy of ``record`` decided by ``verdict`` (pure): ``probs`` by answer index (via
    :func:`probs_by_answer` and the record's ``answer_order``), ``has_probabilities``, ``judge_raw``;
    ``status`` ok, no error or failed stage. The judge's name and provenance are the caller's to set."""
    if sorted(record.answer_order) != [0, 1]:
        raise PipelineError(f"round {record.round_id!r}: answer_order must be [0, 1] or [1, 0], "
                            f"got {list(record.answer_order)!r}")
    verdict = check_verdict(verdict, f"{record.judge} (round {record.round_id!r})")
    probs = probs_by_answer(verdict.probs, record.answer_order)
    return dataclasses.replace(record, probs=probs, has_probabilities=bool(verdict.has_probabilities),
                               judge_raw=verdict.raw, status="ok", error=None, failed_stage=None)


def judge_context(record: RoundRecord, speeches: list[Speech] | None = None, seed: int | None = None) -> JudgeContext:
    """What the judge saw in a saved round: question and answers (passage empty: judges never read
    it), the recorded answer order and speeches as shown (or ``speeches``: a branch's), the round id and
    seed (or ``seed``)."""
    question = Question(id=record.question_id, story_id=record.story_id, passage="", question=record.question,
                        answers=list(record.answers), correct_index=record.correct_index, source="")
    return JudgeContext(question=question, format=record.format, answer_order=list(record.answer_order),
                        speeches=list(record.speeches if speeches is None else speeches), round_id=record.round_id,
                        seed=record.seed if seed is None else seed)


def rejudgeable(record: RoundRecord) -> bool:
    """Whether ``record``'s speeches are complete: an ok round, or a round whose verdict alone failed."""
    return record.status == "ok" or record.failed_stage == "verdict"


def rejudge_record(record: RoundRecord, judge: Judge, provenance: dict[str, Any]) -> RoundRecord:
    """``record`` decided again by ``judge`` (whose ``provenance()`` is given); a record whose speeches
    are incomplete is returned unchanged; an error of the judge makes the round failed at the verdict
    (probabilities None, the error recorded), so one bad answer loses nothing else."""
    if not rejudgeable(record):
        return record
    models = {k: v for k, v in record.provenance.items() if k != record.judge or k in record.debaters.values()}
    models[judge.name] = provenance
    base = dataclasses.replace(record, judge=judge.name, provenance=models)
    try:  # a branched round: every transcript of its tree, the main one (all-0 path) first
        transcripts = branch_transcripts(record) or [([], list(record.speeches))]
        verdicts = [judge.judge(judge_context(record, speeches, branch_seed(record.seed, path)))
                    for path, speeches in transcripts]
        decided = reapply_verdict(base, verdicts[0])
        branches = []
        for (path, _), verdict in zip(transcripts if record.branch_speeches else [], verdicts):
            v = reapply_verdict(base, verdict)
            branches.append({"path": path, "probs": v.probs, "has_probabilities": v.has_probabilities,
                             "judge_raw": v.judge_raw})
        return dataclasses.replace(decided, branches=branches)
    except Exception as e:  # a judge error fails this round only, like a round's own judging
        return dataclasses.replace(base, probs=None, judge_raw="", status="failed", failed_stage="verdict",
                                   branches=[], error=f"re-judging: {error_line(e)}")


def rejudge(records: Iterable[RoundRecord], judge_name: str, judge_cfg: ModelConfig, prompts: dict[str, Any],
            out_dir: str | os.PathLike, bootstrap: int, seed: int,
            max_failed_share: float = default_of(TournamentConfig, "max_failed_share")) -> dict[str, Any]:
    """Re-judge saved rounds with the judge ``judge_name`` (``judge_cfg``, built by
    :func:`~rlhf_pipeline.debate.backends.build_judge`); write the re-judged transcripts and the
    tables of :func:`~rlhf_pipeline.debate.ratings.summarize` into ``out_dir``; return its headline
    numbers plus ``judge``, ``rejudged`` (rounds decided again), ``failed_before`` and
    ``failed_after``. PipelineError, nothing written, when more than ``max_failed_share`` of the rounds
    are failed afterwards (the tournament's setting)."""
    from tqdm.auto import tqdm

    from .backends import build_judge
    from .ratings import rounds_table, summarize

    records = list(records)
    rounds_table(records)  # the contract (and unique round ids) is checked before any judging
    judge = build_judge(judge_name, judge_cfg, prompts)
    provenance = judge.provenance()
    bar = tqdm(desc=f"re-judging with {judge_name}", unit="round", total=len(records))

    def one(record: RoundRecord) -> RoundRecord:
        new = rejudge_record(record, judge, provenance)
        bar.update()
        return new

    with bar:
        new = fan_out(one, records, call_width([judge]))
    failed = [r for r in new if r.status != "ok"]
    if len(failed) > max_failed_share * len(new):
        raise PipelineError(f"re-judging with {judge_name}: {len(failed)} of {len(new)} rounds failed (more than "
                            f"max_failed_share={max_failed_share:g}); first: round {failed[0].round_id}: "
                            f"{failed[0].error}; nothing written, a rerun judges them again")
    out = Path(out_dir)
    with atomic_dir(out / "transcripts") as tmp:  # whole: no chunk file of an earlier re-judging survives
        for chunk in sorted({r.chunk for r in new}):
            write_jsonl(tmp / f"chunk{chunk}.jsonl", [r.to_row() for r in new if r.chunk == chunk])
    summary = summarize(new, out, bootstrap, seed)
    return {**summary, "judge": judge_name, "rejudged": sum(rejudgeable(r) for r in records),
            "failed_before": sum(r.status != "ok" for r in records),
            "failed_after": sum(r.status != "ok" for r in new)}
