"""The published human debates of Michael et al. 2023 ("Debate Helps Supervise Unreliable Experts", QuALITY
stories) as a tournament of this project: ``results/debate/human/`` (``debate.human``).

**The source** is ``pub/debates-readable.jsonl`` of the julianmichael/debate repository, written by its
``debate/src-jvm/WriteDebates.scala`` through ``ReadableDebate.sessionsFromDebate``
(``debate/src-jvm/ReadableDebate.scala``, case classes ``ReadableDebate`` and ``ReadableTurn``), and read
by the debate research code (nyu-debate-modeling, ``data/loaders/quality_debates_loader.py``:
``QualityDebatesLoader``, ``QualityConsultancyLoader``; ``models/human_model.py``). One JSON object per
line, one judging session of one debate room::

    {"roomName": "...",            (later exports only)
     "storyId": "...", "storyTitle": "...", "story": "<the QuALITY story>",
     "question": "...", "answers": ["<answer 0>", "<answer 1>"],
     "debateId": "...", "judge": "<the judge's anonymised name>",
     "turns": [{"role": "Debater", "index": 0, "text": "...", "probabilities": null,
                "speaker": "<name>" (later exports), "chars": ..., "charLimit": ..., "quoteChars": ...,
                "quoteCharLimit": ...},
               {"role": "Judge", "index": null, "text": "...", "probabilities": [0.3, 0.7]}, ...],
     "isJudgeCorrect": true,
     "correctAnswer": "..."}       (only in debates the research code added itself, e.g. its GPT-4 debates)

**Conventions mapped here**, as the source and the research code use them:

- *Who defends what*: a ``Debater`` turn's ``index`` i is the debater ``Debater(i)`` of the room, who
  defends ``answers[i]``; index 0 is Debater A (``HumanModel``: ``Debater_A`` speaks the index-0 speeches).
  Both indices among the turns: format ``debate``, index 0 -> role ``debater_a`` (slot ``a``, side 0),
  index 1 -> ``debater_b`` (slot ``b``, side 1); one index i: format ``consultancy``, role ``consultant``
  (slot ``a``, side i) -- the research loaders' test (``0 in positions and 1 in positions`` / one
  position). Speeches keep the file's order (the export sorts each round's speeches by index, so A
  before B, turn by turn); ``turn`` counts each role's speeches from 0.
- *The judge*: ``Judge`` turns are the live judge's feedback between speeches, each with its
  ``probabilities`` over the answers *in the order of* ``answers`` (the judge saw them in that order, so
  ``answer_order`` is ``[0, 1]``). The verdict is the last ``Judge`` turn with probabilities (the research
  loader's choice): ``probs`` (renormalised to sum to 1), ``judge_raw`` its text. The judge's interim turns
  are not kept: a round of this project has no judge speeches. Sessions of an offline judge (a role
  ``Offline Judge (Stepped)`` / ``Offline Judge (Timed)``; the published export writes live sessions only)
  are skipped.
- *The correct answer*: ``correctAnswer`` when it is one of ``answers`` (the research code's first
  choice), else from the verdict and ``isJudgeCorrect`` (the export sets it to "the final probability of
  the correct answer > 0.5"): the answer the verdict favours if the judge was correct, the other if not;
  undetermined on a 0.5 verdict or without ``isJudgeCorrect`` (such a debate is skipped).
- *Settings* (the export's ``DebateSetting``: human or AI, debate or consultancy): a debate is ``ai`` when
  a turn's ``speaker`` or ``role`` is ``GPT-4`` (the research loaders drop those); its GPT-4 debater is
  named :data:`~rlhf_pipeline.debate.config.AI_DEBATER`, every human one
  :data:`~rlhf_pipeline.debate.config.HUMAN_DEBATER` (the people's anonymised names are in ``provenance``),
  the judge :data:`~rlhf_pipeline.debate.config.HUMAN_JUDGE`.
- *Quotes*: the export writes a quoted passage span as ``<quote>text</quote>`` followed by its token span
  ``<indices> (begin-end)</indices>`` (``quoteDelimiters`` and ``renderQuoteIndices`` of
  ``WriteDebates``); the research code's quote tags are ``<quote>``/``</quote>`` too. ``Speech.raw`` is
  the speech with the ``<indices>...</indices>`` markers removed (export markup, not the debater's text,
  and not what a trained debater should write); ``shown`` and ``quotes`` are
  :func:`~rlhf_pipeline.debate.quotes.verify_quotes` of it against the story, as for any tournament.

**Output** (:func:`convert_human_debates`): the questions (one :class:`~rlhf_pipeline.debate.types.Question`
per kept debate: ``id`` the room name, else ``{storyId}_{debateId}``, with ``/`` and ``-vs-`` made safe for
round ids; ``passage`` the story; ``source`` ``human/{setting}/{file}:{line}``) and the rounds, one
:class:`~rlhf_pipeline.debate.types.RoundRecord` per kept debate, with the round ids a tournament's schedule
gives (``debate/human-vs-human/<id>/a0``, ``consultancy/human/<id>/a{i}``) in tournament ``human``, chunk
0, seed 0, no timings, and ``provenance`` naming the source file, its sha256 and the line. A debate
without a verdict is kept only with ``judged_only: false`` and a ``correctAnswer``: a round whose verdict
failed (``failed_stage: verdict``), which ``debate_rejudge`` judges. So the ``offline`` backends replay the
directory by round id, role and turn, ``debate_summary`` and ``debate_rejudge`` read it as a tournament,
and ``debate.training.source: human`` trains the SFT debater on its speeches.

**Selection**, in this order, each skip counted (``skipped`` in the manifest) and logged: an offline
judge's session (``offline_judge``), no debater speech (``no_speeches``), a setting not in
``debate.human.settings`` (``setting``), no verdict with ``judged_only`` (``unjudged``), no determinable
correct answer (``no_correct_answer``), a question (story id and question text) already kept with
``deduplicate`` (``duplicate_question``), beyond ``max_debates`` (``over_max``). Every record is checked
first, kept or not: a line that is not a JSON object, a missing or mistyped field, an unknown role, a
debater turn without index 0/1, probabilities that are not two numbers in [0, 1] summing to 1, or two
debates with the same id raise a one-line PipelineError naming ``file:line`` and the field.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PipelineError
from ..io import iter_jsonl, write_jsonl
from .config import AI_DEBATER, HUMAN, HUMAN_DEBATER, HUMAN_JUDGE, HumanDebatesConfig
from .quotes import verify_quotes
from .types import Question, RoundRecord, Speech

log = logging.getLogger(__name__)

DEBATER_ROLE = "Debater"
JUDGE_ROLE = "Judge"
OFFLINE_JUDGE_PREFIX = "Offline Judge"
AI_NAME = "GPT-4"
"""The speaker (or role) of the research's AI debater."""
SKIP_REASONS = ("offline_judge", "no_speeches", "setting", "unjudged", "no_correct_answer", "duplicate_question",
                "over_max")
PROB_TOLERANCE = 1e-3
"""How far a judge's probabilities may sum from 1 (slider values written as decimals); they are renormalised."""
INDICES = re.compile(r"<indices>.*?</indices>", re.DOTALL)
_UNSAFE = re.compile(r"[/\s]+")


@dataclass
class SourceTurn:
    role: str
    index: int | None
    text: str
    probabilities: list[float] | None
    speaker: str | None
    ai: bool


@dataclass
class SourceDebate:
    """One checked record of the source file."""

    line: int
    id: str
    story_id: str
    story: str
    question: str
    answers: list[str]
    turns: list[SourceTurn]
    judge: str | None
    is_judge_correct: bool | None
    correct_answer: str | None
    offline: bool
    speakers: dict[int, list[str]] = field(default_factory=dict)

    @property
    def indices(self) -> list[int]:
        return sorted({t.index for t in self.turns if t.index is not None and t.role == DEBATER_ROLE})

    @property
    def format(self) -> str:
        return "debate" if self.indices == [0, 1] else "consultancy"

    @property
    def ai(self) -> bool:
        return any(t.ai for t in self.turns)

    @property
    def setting(self) -> str:
        return f"{'ai' if self.ai else 'human'}_{self.format}"

    @property
    def verdict(self) -> SourceTurn | None:
        """The last judge turn with probabilities."""
        return next((t for t in reversed(self.turns) if t.role == JUDGE_ROLE and t.probabilities is not None), None)

    def correct_index(self) -> int | None:
        if self.correct_answer is not None and self.correct_answer in self.answers:
            return self.answers.index(self.correct_answer)
        v = self.verdict
        if v is None or self.is_judge_correct is None or v.probabilities[0] == v.probabilities[1]:
            return None
        favoured = 0 if v.probabilities[0] > v.probabilities[1] else 1
        return favoured if self.is_judge_correct else 1 - favoured


# ------------------------------------------------------------------------------------------ reading


def _get(row: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...], optional: bool = False,
         prefix: str = "") -> Any:
    """``row[key]`` of type ``kind`` (None when ``optional`` and absent or null); PipelineError naming ``where``
    and the field (``prefix + key``) otherwise."""
    name = prefix + key
    if key not in row or row[key] is None:
        if optional:
            return None
        raise PipelineError(f"{where}: missing field {name!r}")
    value = row[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise PipelineError(f"{where}: field {name!r} must be {names}, got {value!r:.80}")
    return value


def _text(row: dict[str, Any], key: str, where: str) -> str:
    value = _get(row, key, where, str)
    if not value.strip():
        raise PipelineError(f"{where}: field {key!r} must be a non-empty string, got {value!r}")
    return value


def _probabilities(value: Any, where: str, n: int) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != n or not all(
            isinstance(p, int | float) and not isinstance(p, bool) and math.isfinite(p) and 0 <= p <= 1
            for p in value):
        raise PipelineError(f"{where}: must be {n} probabilities in [0, 1], got {value!r:.80}")
    total = sum(value)
    if abs(total - 1) > PROB_TOLERANCE:
        raise PipelineError(f"{where}: probabilities must sum to 1, got {value!r} (sum {total:g})")
    return [float(p) / total for p in value]


def _safe_id(text: str) -> str:
    """An id usable inside a round id: no ``/`` or whitespace, no ``-vs-``."""
    return _UNSAFE.sub("_", text.strip()).replace("-vs-", "_vs_")


def parse_debate(row: Any, path: str | os.PathLike, line: int) -> SourceDebate:
    """One source record, checked (module docstring); PipelineError naming ``file:line`` and the field."""
    where = f"{path}:{line}"
    if not isinstance(row, dict):
        raise PipelineError(f"{where}: expected a JSON object (one debate), got {type(row).__name__}")
    story_id = str(_get(row, "storyId", where, (str, int)))
    debate_id = str(_get(row, "debateId", where, (str, int)))
    room = _get(row, "roomName", where, str, optional=True)
    answers = _get(row, "answers", where, list)
    if len(answers) != 2 or not all(isinstance(a, str) and a.strip() for a in answers):
        raise PipelineError(f"{where}: field 'answers' must be a list of two non-empty strings, got {answers!r:.120}")
    turns_raw = _get(row, "turns", where, list)
    turns: list[SourceTurn] = []
    speakers: dict[int, list[str]] = {}
    offline = False
    for k, t in enumerate(turns_raw):
        at = f"{where}: field 'turns[{k}]"
        if not isinstance(t, dict):
            raise PipelineError(f"{at}' must be an object, got {t!r:.80}")
        role = _get(t, "role", where, str, prefix=f"turns[{k}].")
        speaker = _get(t, "speaker", where, str, optional=True, prefix=f"turns[{k}].")
        ai = AI_NAME in (role, speaker)
        text = _get(t, "text", where, str, prefix=f"turns[{k}].")
        if role.startswith(OFFLINE_JUDGE_PREFIX):
            offline = True
        elif role not in (DEBATER_ROLE, JUDGE_ROLE, AI_NAME):
            raise PipelineError(f"{at}.role' must be {DEBATER_ROLE!r}, {JUDGE_ROLE!r} or {OFFLINE_JUDGE_PREFIX!r}..., "
                                f"got {role!r}")
        index = t.get("index")
        if role in (DEBATER_ROLE, AI_NAME):
            if isinstance(index, bool) or index not in (0, 1):
                raise PipelineError(f"{at}.index' must be 0 or 1 for a debater's turn, got {index!r}")
            role = DEBATER_ROLE
            if speaker:
                speakers.setdefault(index, [])
                if speaker not in speakers[index]:
                    speakers[index].append(speaker)
        else:
            index = None
        probs = _probabilities(t.get("probabilities"), f"{at}.probabilities'", len(answers))
        turns.append(SourceTurn(role, index, text, probs, speaker, ai))
    is_correct = row.get("isJudgeCorrect")
    if is_correct is not None and not isinstance(is_correct, bool):
        raise PipelineError(f"{where}: field 'isJudgeCorrect' must be true, false or null, got {is_correct!r:.80}")
    correct = _get(row, "correctAnswer", where, str, optional=True)
    judge = _get(row, "judge", where, str, optional=True)
    return SourceDebate(line=line, id=_safe_id(room or f"{story_id}_{debate_id}"), story_id=story_id,
                        story=_text(row, "story", where), question=_text(row, "question", where).strip(),
                        answers=[a.strip() for a in answers], turns=turns, judge=judge,
                        is_judge_correct=is_correct, correct_answer=correct.strip() if correct else None,
                        offline=offline, speakers=speakers)


def read_human_debates(path: str | os.PathLike) -> list[SourceDebate]:
    """Every record of the source file, checked, in file order; PipelineError for a missing file, a file
    without records, a malformed record or a repeated debate id."""
    debates: list[SourceDebate] = []
    first: dict[str, int] = {}
    for line, row in iter_jsonl(path):
        d = parse_debate(row, path, line)
        if not d.offline:  # an offline judge's session repeats the live session's debate (and id)
            if d.id in first:
                raise PipelineError(f"{path}:{line}: field 'roomName'/'debateId': debate id {d.id!r} repeats line "
                                    f"{first[d.id]}; every debate needs its own")
            first[d.id] = line
        debates.append(d)
    if not debates:
        raise PipelineError(f"{path}: no debates; expected one JSON object per line (debates-readable.jsonl)")
    return debates


# ------------------------------------------------------------------------------------------ selection


def select(debates: list[SourceDebate], cfg: HumanDebatesConfig) -> tuple[list[tuple[SourceDebate, int]],
                                                                         dict[str, int]]:
    """``(kept, skipped)``: ``(debate, correct index)`` of the debates kept, and the count per skip reason."""
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    kept: list[tuple[SourceDebate, int]] = []
    seen: set[tuple[str, str]] = set()
    for d in debates:
        correct = d.correct_index()
        if d.offline:
            reason = "offline_judge"
        elif not d.indices:
            reason = "no_speeches"
        elif d.setting not in cfg.settings:
            reason = "setting"
        elif cfg.judged_only and d.verdict is None:
            reason = "unjudged"
        elif correct is None:
            reason = "no_correct_answer"
        elif cfg.deduplicate and (d.story_id, d.question) in seen:
            reason = "duplicate_question"
        elif cfg.max_debates is not None and len(kept) >= cfg.max_debates:
            reason = "over_max"
        else:
            kept.append((d, correct))
            seen.add((d.story_id, d.question))
            continue
        skipped[reason] += 1
    return kept, skipped


# ------------------------------------------------------------------------------------------ conversion


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _name(d: SourceDebate, index: int) -> str:
    return AI_DEBATER if any(t.ai for t in d.turns if t.index == index) else HUMAN_DEBATER


def to_question(d: SourceDebate, correct: int, source_name: str) -> Question:
    return Question(id=d.id, story_id=d.story_id, passage=d.story, question=d.question, answers=list(d.answers),
                    correct_index=correct, source=f"{HUMAN}/{d.setting}/{source_name}:{d.line}")


def to_record(d: SourceDebate, correct: int, threshold: float, source: dict[str, Any]) -> RoundRecord:
    """The debate as a round of tournament ``human`` (module docstring)."""
    fmt = d.format
    if fmt == "debate":
        slots = {0: ("a", "debater_a"), 1: ("b", "debater_b")}
        debaters = {"a": _name(d, 0), "b": _name(d, 1)}
        sides = {"a": 0, "b": 1}
        round_id = f"debate/{debaters['a']}-vs-{debaters['b']}/{d.id}/a0"
    else:
        i = d.indices[0]
        slots = {i: ("a", "consultant")}
        debaters, sides = {"a": _name(d, i)}, {"a": i}
        round_id = f"consultancy/{debaters['a']}/{d.id}/a{i}"
    speeches: list[Speech] = []
    turns: Counter[str] = Counter()
    for t in d.turns:
        if t.role != DEBATER_ROLE:
            continue
        slot, role = slots[t.index]
        raw = INDICES.sub("", t.text)
        shown, quotes = verify_quotes(raw, d.story, threshold)
        speeches.append(Speech(role=role, speaker=debaters[slot], side=t.index, turn=turns[role], raw=raw,
                               shown=shown, quotes=quotes))
        turns[role] += 1
    verdict = d.verdict
    where = {**source, "line": d.line}
    provenance = {name: {**where, "backend": "human",
                         "people": [p for i, s in sorted(slots.items()) if debaters[s[0]] == name
                                    for p in d.speakers.get(i, [])]}
                  for name in sorted(set(debaters.values()))}
    provenance[HUMAN_JUDGE] = {**where, "backend": "human", "people": [d.judge] if d.judge else []}
    return RoundRecord(
        round_id=round_id, tournament=HUMAN, chunk=0, question_id=d.id, story_id=d.story_id, question=d.question,
        answers=list(d.answers), format=fmt, debaters=debaters, sides=sides, correct_index=correct,
        answer_order=[0, 1], speeches=speeches, judge=HUMAN_JUDGE,
        probs=list(verdict.probabilities) if verdict else None, has_probabilities=verdict is not None,
        judge_raw=verdict.text if verdict else "", provenance=provenance,
        status="ok" if verdict else "failed",
        error=None if verdict else f"no judge verdict in {source['source']}:{d.line}",
        failed_stage=None if verdict else "verdict")


def convert_human_debates(cfg: HumanDebatesConfig, questions_out: str | os.PathLike,
                          transcripts_out: str | os.PathLike, threshold: float) -> dict[str, Any]:
    """Read ``cfg.path``, keep the debates ``cfg`` selects and write their questions and rounds (module
    docstring); return what the manifest records: the source, its sha256 and the counts."""
    if not cfg.path:
        raise PipelineError("config debate.human.path: got None, expected the published debates-readable.jsonl")
    path = Path(cfg.path)
    debates = read_human_debates(path)
    kept, skipped = select(debates, cfg)
    for reason, n in skipped.items():
        if n:
            log.info("%s: skipped %d debate(s): %s", path, n, reason)
    if not kept:
        raise PipelineError(f"{path}: no debate kept of {len(debates)} (skipped: "
                            f"{ {k: v for k, v in skipped.items() if v} }); see debate.human")
    source = {"source": str(path), "sha256": sha256_of(path)}
    questions = [to_question(d, correct, path.name) for d, correct in kept]
    records = [to_record(d, correct, threshold, source) for d, correct in kept]
    write_jsonl(questions_out, [q.to_row() for q in questions])
    write_jsonl(transcripts_out, [r.to_row() for r in records])
    return {**source, "debates": len(debates), "kept": dict(Counter(d.setting for d, _ in kept)),
            "unjudged_kept": sum(r.status != "ok" for r in records), "skipped": skipped}
