"""Backends without a model: ``deterministic`` and ``random`` (for tests and baselines) and
``offline`` (replays the speeches / verdicts of saved transcripts, for re-judging). All are pure
functions of their context, hence ``thread_safe``: they may share a chunk with concurrent API backends."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

from ...errors import PipelineError
from ..config import ModelConfig
from ..types import JudgeContext, RoundRecord, SpeechContext, Verdict

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sentences(passage: str) -> list[str]:
    """The passage's sentences (split after . ! ?), stripped, non-empty."""
    return [s.strip() for s in _SENTENCE.split(passage) if s.strip()]


class DeterministicDebater:
    """Quotes the first passage sentence that mentions its answer (else the first sentence), and
    names its turn: the same context always gives the same speech."""

    thread_safe = True

    def __init__(self, name: str, cfg: ModelConfig, prompts: dict[str, Any]):
        self.name, self.cfg = name, cfg

    def speak(self, ctx: SpeechContext) -> str:
        sents = sentences(ctx.question.passage) or [ctx.question.passage]
        answer = ctx.answer_defending
        quote = next((s for s in sents if answer.lower() in s.lower()), sents[0])
        return f"Turn {ctx.turn + 1}: the answer is {answer}. <quote>{quote}</quote>"

    def provenance(self) -> dict[str, Any]:
        return {"backend": "deterministic"}


class RandomDebater:
    """Quotes one passage sentence chosen at random (seeded by the speech's seed)."""

    thread_safe = True

    def __init__(self, name: str, cfg: ModelConfig, prompts: dict[str, Any]):
        self.name, self.cfg = name, cfg

    def speak(self, ctx: SpeechContext) -> str:
        rng = random.Random(f"{self.cfg.seed}/{ctx.seed}")
        sents = sentences(ctx.question.passage) or [ctx.question.passage]
        return f"I defend {ctx.answer_defending}. <quote>{rng.choice(sents)}</quote>"

    def provenance(self) -> dict[str, Any]:
        return {"backend": "random", "seed": self.cfg.seed}


class DeterministicJudge:
    """Favours the answer whose defenders showed more verified quotes: p = 0.5 + 0.1 * difference,
    clipped to [0.05, 0.95]; 0.5 when tied (e.g. the empty round)."""

    thread_safe = True

    def __init__(self, name: str, cfg: ModelConfig, prompts: dict[str, Any]):
        self.name, self.cfg = name, cfg

    def judge(self, ctx: JudgeContext) -> Verdict:
        count = {0: 0, 1: 0}
        for s in ctx.speeches:
            count[s.side] += sum(q.status == "verified" for q in s.quotes)
        first = ctx.answer_order[0]
        p = min(0.95, max(0.05, 0.5 + 0.1 * (count[first] - count[1 - first])))
        return Verdict([p, 1 - p], True, f"verified quotes per answer: {count}")

    def provenance(self) -> dict[str, Any]:
        return {"backend": "deterministic"}


class RandomJudge:
    """A uniform random probability for the first shown answer (seeded by the round's seed)."""

    thread_safe = True

    def __init__(self, name: str, cfg: ModelConfig, prompts: dict[str, Any]):
        self.name, self.cfg = name, cfg

    def judge(self, ctx: JudgeContext) -> Verdict:
        p = random.Random(f"{self.cfg.seed}/{ctx.seed}").random()
        return Verdict([p, 1 - p], True, "random")

    def provenance(self) -> dict[str, Any]:
        return {"backend": "random", "seed": self.cfg.seed}


def load_records(path: str | Path) -> list[RoundRecord]:
    """Every round of a transcript JSONL file, or of ``<dir>/transcripts/chunk*.jsonl``."""
    from ...io import read_jsonl

    path = Path(path)
    files = sorted((path / "transcripts").glob("chunk*.jsonl")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise PipelineError(f"{path}: no transcripts (a chunk*.jsonl file or a tournament directory)")
    return [RoundRecord.from_row(r) for f in files for r in read_jsonl(f, required=["round_id", "speeches"])]


class OfflineDebater:
    """Replays the speeches of saved transcripts: the speech of the same round, role and turn."""

    thread_safe = True

    def __init__(self, name: str, cfg: ModelConfig, prompts: dict[str, Any]):
        self.name, self.cfg = name, cfg
        self.speeches = {(r.round_id, s.role, s.turn): s.raw for r in load_records(cfg.transcripts)
                         for s in r.speeches}

    def speak(self, ctx: SpeechContext) -> str:
        key = (ctx.round_id, ctx.role, ctx.turn)
        if key not in self.speeches:
            raise PipelineError(f"offline debater {self.name}: no saved speech for round {key[0]}, {key[1]} "
                                f"turn {key[2]} in {self.cfg.transcripts}")
        return self.speeches[key]

    def provenance(self) -> dict[str, Any]:
        return {"backend": "offline", "transcripts": str(self.cfg.transcripts)}


class OfflineJudge:
    """Replays the verdicts of saved transcripts (by round id), mapped to the current answer order."""

    thread_safe = True

    def __init__(self, name: str, cfg: ModelConfig, prompts: dict[str, Any]):
        self.name, self.cfg = name, cfg
        self.records = {r.round_id: r for r in load_records(cfg.transcripts) if r.probs is not None}

    def judge(self, ctx: JudgeContext) -> Verdict:
        rec = self.records.get(ctx.round_id)
        if rec is None:
            raise PipelineError(f"offline judge {self.name}: no saved verdict for round {ctx.round_id} in "
                                f"{self.cfg.transcripts}")
        return Verdict([rec.probs[i] for i in ctx.answer_order], rec.has_probabilities, rec.judge_raw)

    def provenance(self) -> dict[str, Any]:
        return {"backend": "offline", "transcripts": str(self.cfg.transcripts)}
