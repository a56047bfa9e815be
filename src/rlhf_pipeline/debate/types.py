"""The debate file contract and the two model interfaces, shared by every debate module.

Dataset rows (``results/data/debate/{dataset}/{split}.jsonl``) are :class:`Question`. A debater turns
a :class:`SpeechContext` into raw speech text; a judge turns a :class:`JudgeContext` into a
:class:`Verdict`. Rounds (:mod:`rlhf_pipeline.debate.rounds`) build the contexts, verify quotes and
write one :class:`RoundRecord` per round as a JSON line of ``transcripts/chunk{k}.jsonl``.

Answer positions: a judge sees the two answers in a per-round random order (``answer_order``:
``answer_order[0]`` is the answer index shown first, as "(A)"); a :class:`Verdict` gives
probabilities by *shown position*, and the round maps them back to answer indices.
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import PipelineError

ROLES = ("debater_a", "debater_b", "consultant", "consultant_a", "consultant_b")
QUOTE_STATUSES = ("verified", "unverified")
STATUSES = ("ok", "failed")


@dataclass
class Question:
    """One row of a debate dataset split."""

    id: str
    story_id: str
    passage: str
    question: str
    answers: list[str]
    """Exactly two answers; the debate is about which is correct."""
    correct_index: int
    """0 or 1."""
    source: str
    """Dataset name (``synthetic``, ``quality``) and, where known, the origin of the row."""

    @classmethod
    def from_row(cls, row: dict[str, Any], where: str) -> Question:
        """Build from a JSON row; PipelineError naming ``where`` (file:line) and the field otherwise."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in row]
        if missing:
            raise PipelineError(f"{where}: missing field(s) {missing}; debate rows need {names}")
        for key in ("id", "story_id", "passage", "question", "source"):
            if not isinstance(row[key], str) or (key != "source" and not row[key].strip()):
                raise PipelineError(f"{where}: field {key!r} must be a non-empty string, got {row[key]!r}")
        answers = row["answers"]
        if not isinstance(answers, list) or len(answers) != 2 or not all(isinstance(a, str) and a.strip()
                                                                          for a in answers):
            raise PipelineError(f"{where}: field 'answers' must be a list of two non-empty strings, got {answers!r}")
        ci = row["correct_index"]
        if isinstance(ci, bool) or ci not in (0, 1):
            raise PipelineError(f"{where}: field 'correct_index' must be 0 or 1, got {ci!r}")
        return cls(**{n: row[n] for n in names})

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class QuoteCheck:
    """One ``<quote>...</quote>`` span of a speech, checked against the passage."""

    text: str
    """The quote as the speaker wrote it."""
    status: str
    """``verified`` or ``unverified``."""
    method: str | None
    """How it matched: ``exact``, ``normalized`` (case, whitespace, punctuation) or ``fuzzy``; None if not."""
    score: float
    """Similarity in [0, 100] of the best passage match (100 for exact/normalized)."""
    match: str | None
    """The passage text it matched (None when unverified)."""


@dataclass
class Speech:
    """One speech in a round, raw and as the judge saw it."""

    role: str
    """See :data:`ROLES`."""
    speaker: str
    """Debater name (config key)."""
    side: int
    """Answer index the speaker defends."""
    turn: int
    """0-based speech number of this speaker in the round."""
    raw: str
    """Exactly what the model produced (training data is this text, unchanged)."""
    shown: str
    """What the judge saw: every quote marked verified or unverified."""
    quotes: list[QuoteCheck] = field(default_factory=list)
    alternatives: list[dict[str, Any]] = field(default_factory=list)
    """Best-of-N: every candidate ``{"raw": str, "score": float, "selected": bool, "unverified": int}`` (its
    quotes that failed verification; absent in transcripts written before it was recorded)."""
    seconds: float = 0.0
    branch: list[int] = field(default_factory=list)
    """Branched rounds: the speech's place in the round's tree, one branch index per speech slot up to and
    including its own (all 0: the round's main transcript); empty in an unbranched round."""


@dataclass
class Verdict:
    """A judge's decision, by shown position: ``probs[0]`` is for the answer shown first."""

    probs: list[float]
    """Two probabilities summing to 1."""
    has_probabilities: bool = True
    """False for judges that only give a verdict (e.g. hosted chat models): probs are then 0/1."""
    raw: str = ""
    """The judge's raw output (or a description of the logits used)."""


@dataclass
class SpeechContext:
    """What a debater knows when it speaks."""

    question: Question
    side: int
    """The answer index this speaker defends."""
    role: str
    format: str
    turn: int
    n_turns: int
    visible: list[Speech]
    """The speeches this speaker may see, in order (simultaneous debate hides the current turn's)."""
    round_id: str
    seed: int
    """A seed for this speech (a pure function of the round and the turn): sampling is reproducible."""

    @property
    def answer_defending(self) -> str:
        return self.question.answers[self.side]

    @property
    def answer_opposing(self) -> str:
        return self.question.answers[1 - self.side]


@dataclass
class JudgeContext:
    """What a judge sees: the question, the answers in shown order, and the speeches as shown."""

    question: Question
    """Judges never read ``question.passage`` (it is empty when re-judging saved transcripts); they see
    the speeches, whose verified quotes come from it."""
    format: str
    answer_order: list[int]
    """``answer_order[k]`` = answer index shown at position k ("(A)" is k = 0)."""
    speeches: list[Speech]
    round_id: str
    seed: int

    @property
    def answers_shown(self) -> list[str]:
        return [self.question.answers[i] for i in self.answer_order]


class Debater(Protocol):
    """A debater backend: ``speak`` returns the raw speech for one turn."""

    name: str

    def speak(self, ctx: SpeechContext) -> str: ...

    def provenance(self) -> dict[str, Any]:
        """Backend, model name or path, revision/hash where known: recorded in every transcript."""
        ...


class Judge(Protocol):
    """A judge backend: ``judge`` returns a verdict by shown position."""

    name: str

    def judge(self, ctx: JudgeContext) -> Verdict: ...

    def provenance(self) -> dict[str, Any]: ...


@dataclass
class RoundRecord:
    """One round: a line of ``transcripts/chunk{k}.jsonl``."""

    round_id: str
    """Stable id: tournament, format, pairing, question and side assignment (a pure function of them)."""
    tournament: str
    chunk: int
    question_id: str
    story_id: str
    question: str
    answers: list[str]
    format: str
    debaters: dict[str, str]
    """Slot (``a``/``b``) -> debater name (empty for the empty round; consultancy uses ``a``)."""
    sides: dict[str, int]
    """Slot -> answer index defended."""
    correct_index: int
    answer_order: list[int]
    speeches: list[Speech]
    judge: str
    probs: list[float] | None
    """Judge probability per *answer index* (None when the round failed)."""
    has_probabilities: bool
    judge_raw: str
    provenance: dict[str, dict[str, Any]]
    """Name -> provenance of every model in the round (debaters and judge)."""
    status: str = "ok"
    error: str | None = None
    branches: list[dict[str, Any]] = field(default_factory=list)
    """Branched rounds: every transcript of the tree, ``{"path": [branch index per speech slot], "probs": [by
    answer index], "has_probabilities": bool, "judge_raw": str}``; the all-0 path is the main transcript
    (``speeches``, ``probs``). Empty in an unbranched round."""
    branch_speeches: list[Speech] = field(default_factory=list)
    """Branched rounds: the speeches off the main transcript (``Speech.branch`` not all 0), in generation order."""
    failed_stage: str | None = None
    """A failed round: ``speeches`` (a speech was not completed) or ``verdict`` (every speech is complete and
    only the judging failed: re-judging and a rerun retry just the judge); None when ok."""
    seconds: float = 0.0
    seed: int = 0
    """The seed the judge got (``JudgeContext.seed``): re-judging passes it again, so a seeded judge
    reproduces its verdict."""

    def to_row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RoundRecord:
        row = dict(row)
        for key in ("speeches", "branch_speeches"):
            row[key] = [Speech(**{**s, "quotes": [QuoteCheck(**q) for q in s.get("quotes", [])]})
                        for s in row.get(key, [])]
        return cls(**row)


_FORMATTER = string.Formatter()


def render(template: str, where: str, **fields: Any) -> str:
    """Fill a prompt template's named ``{placeholders}``; PipelineError naming ``where`` (the prompt
    set and key) for a placeholder that is not one of ``fields``. Literal braces are ``{{ }}``."""
    names = {name for _, name, _, _ in _FORMATTER.parse(template) if name is not None}
    unknown = sorted(n for n in names if n not in fields)
    if unknown:
        raise PipelineError(f"{where}: unknown placeholder(s) {unknown}; allowed: {sorted(fields)}")
    return template.format(**fields)
