"""Prompt sets for debaters and judges: loaded from a YAML file (``debate.prompts``, default
``config/debate/prompts.yaml``), never written in code.

The file maps a prompt-set name (``ModelConfig.prompt``, default ``default``) to::

    labels:        {debater_a: ..., debater_b: ..., consultant: ..., consultant_a: ..., consultant_b: ...}
    no_speeches:   what {transcript} is when there is no speech yet
    debater:
      system:      (optional) system message for chat models
      speech:      one speech of a debater's {transcript}
      debate:      a debater's turn in a debate
      consultancy: a consultant's turn (consultancy and double consultancy)
      extractive:  (optional; the extractive debater's speech)
    judge:
      system:      (optional) system message for chat models
      speech:      one speech of the judge's {transcript}
      debate / consultancy / double_consultancy / empty:   the judge prompt per round format

Each template may use only the placeholders of :data:`FIELDS` for its key (``{name}``; literal
braces are ``{{ }}``), checked when the file is loaded and again when rendered. Judge templates have
no ``{passage}``: judges never read it. ``{turn}`` is 1-based. Judge prompts end where the model's
answer starts: LM judges append ``answer_prefix`` (e.g. ``The correct answer is (``) and read the
answer letter that follows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import PipelineError
from .types import ROLES, JudgeContext, Speech, SpeechContext, render

DEBATER_FIELDS = ("passage", "question", "answer_defending", "answer_opposing", "transcript", "turn", "n_turns")
JUDGE_FIELDS = ("question", "answer_a", "answer_b", "transcript", "n_turns")
FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    "debater": {
        "system": DEBATER_FIELDS,
        "speech": ("label", "answer", "turn", "text"),
        "debate": DEBATER_FIELDS,
        "consultancy": DEBATER_FIELDS,
        "extractive": ("question", "answer_defending", "answer_opposing", "quotes", "turn", "n_turns"),
    },
    "judge": {
        "system": JUDGE_FIELDS,
        "speech": ("label", "letter", "answer", "turn", "text"),
        "debate": JUDGE_FIELDS,
        "consultancy": JUDGE_FIELDS,
        "double_consultancy": JUDGE_FIELDS,
        "empty": JUDGE_FIELDS,
    },
}
"""Section -> template key -> the placeholders it may use."""
OPTIONAL = {("debater", "system"), ("debater", "extractive"), ("judge", "system")}
"""Template keys a prompt set may leave out (a backend that needs one says so when it is built)."""
LETTERS = ("A", "B")


class Prompts(dict):
    """The loaded prompts file: prompt-set name -> set; ``path`` names the file in errors."""

    def __init__(self, sets: dict[str, Any], path: str):
        super().__init__(sets)
        self.path = path


def load_prompts(path: str | Path) -> Prompts:
    """Load and validate a prompts file (see the module docstring). A missing file, set, key or
    label, a non-string template, or a placeholder a key may not use raises one PipelineError line
    naming the file and the key (``<set>.<section>.<key>``)."""
    import yaml

    from ..io import read_text

    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: prompts file not found")
    try:
        obj = yaml.safe_load(read_text(path))
    except yaml.YAMLError as e:
        raise PipelineError(f"{path}: not valid YAML ({type(e).__name__})") from None
    if not isinstance(obj, dict) or not obj:
        raise PipelineError(f"{path}: expected a mapping of prompt-set names to prompt sets")
    for name, pset in obj.items():
        check_prompt_set(pset, f"{path}: {name}")
    return Prompts(obj, str(path))


def check_prompt_set(pset: Any, where: str) -> None:
    """PipelineError naming ``where.<key>`` unless ``pset`` is a complete, valid prompt set."""
    if not isinstance(pset, dict):
        raise PipelineError(f"{where}: expected a mapping (labels, no_speeches, debater, judge), "
                            f"got {type(pset).__name__}")
    labels = pset.get("labels")
    if not isinstance(labels, dict):
        raise PipelineError(f"{where}.labels: missing; expected a mapping of roles {list(ROLES)} to labels")
    for role in ROLES:
        if not isinstance(labels.get(role), str):
            raise PipelineError(f"{where}.labels.{role}: missing; expected the label of that speaker")
    if not isinstance(pset.get("no_speeches"), str):
        raise PipelineError(f"{where}.no_speeches: missing; expected the text of an empty transcript")
    for section, keys in FIELDS.items():
        templates = pset.get(section)
        if not isinstance(templates, dict):
            raise PipelineError(f"{where}.{section}: missing; expected a mapping with keys {sorted(keys)}")
        unknown = sorted(set(map(str, templates)) - set(keys))
        if unknown:
            raise PipelineError(f"{where}.{section}: unknown key(s) {unknown}; allowed: {sorted(keys)}")
        for key, fields in keys.items():
            if key not in templates and (section, key) in OPTIONAL:
                continue
            check_template(templates.get(key), f"{where}.{section}.{key}", fields)


def check_template(template: Any, where: str, fields: tuple[str, ...]) -> None:
    """PipelineError naming ``where`` unless ``template`` is a string using only ``fields``."""
    if template is None:
        raise PipelineError(f"{where}: missing; expected a template using {{placeholders}} from {list(fields)}")
    if not isinstance(template, str):
        raise PipelineError(f"{where}: expected a string template, got {type(template).__name__}")
    safe_render(template, where, **dict.fromkeys(fields, ""))


def safe_render(template: str, where: str, **fields: Any) -> str:
    """:func:`~rlhf_pipeline.debate.types.render`, with a malformed template (an unmatched brace)
    also reported as a PipelineError naming ``where``."""
    try:
        return render(template, where, **fields)
    except (ValueError, IndexError, KeyError, AttributeError) as e:
        raise PipelineError(f"{where}: malformed template ({e}); literal braces are written {{{{ }}}}") from None


def prompt_set(prompts: dict[str, Any], name: str, who: str) -> dict[str, Any]:
    """The prompt set ``name`` of a loaded prompts file; PipelineError naming the file, the set and
    the backend ``who`` that asked for it."""
    path = getattr(prompts, "path", "prompts")
    if name not in prompts:
        raise PipelineError(f"{path}: no prompt set {name!r} (asked for by {who}); sets: {sorted(prompts)}")
    return prompts[name]


def template(pset: dict[str, Any], section: str, key: str, where: str) -> str | None:
    """A template of a prompt set (None for a missing optional key); PipelineError naming
    ``where.<section>.<key>`` for a missing required one."""
    value = pset.get(section, {}).get(key)
    if value is None and (section, key) not in OPTIONAL:
        raise PipelineError(f"{where}.{section}.{key}: missing from the prompt set")
    return value


def _where(prompts: dict[str, Any], name: str) -> str:
    return f"{getattr(prompts, 'path', 'prompts')}: {name}"


def letter(answer_index: int, answer_order: list[int]) -> str:
    """The letter ("A"/"B") under which answer ``answer_index`` is shown, given the shown order."""
    return LETTERS[answer_order.index(answer_index)]


def format_transcript(speeches: list[Speech], pset: dict[str, Any], section: str, answers: list[str],
                      answer_order: list[int] | None = None, where: str = "prompts") -> str:
    """``{transcript}``: each speech as shown to the judge (``speech.shown``, quotes marked verified
    or unverified) under the ``<section>.speech`` template, with its speaker's role label, the answer
    it defends and, for the judge (``answer_order`` given), that answer's shown letter; speeches are
    joined by blank lines. No speeches: the set's ``no_speeches`` text."""
    if not speeches:
        return pset["no_speeches"]
    tmpl = template(pset, section, "speech", where)
    parts = []
    for s in speeches:
        fields: dict[str, Any] = dict(label=pset["labels"].get(s.role, s.role), answer=answers[s.side],
                                      turn=s.turn + 1, text=s.shown)
        if section == "judge":
            fields["letter"] = letter(s.side, answer_order or [0, 1])
        parts.append(safe_render(tmpl, f"{where}.{section}.speech", **fields))
    return "\n\n".join(parts)


def debater_prompt(prompts: dict[str, Any], name: str, ctx: SpeechContext) -> tuple[str | None, str]:
    """``(system, user)`` prompt of a debater's turn: the set's ``debater.debate`` template for a
    debate, ``debater.consultancy`` for (double) consultancy; the transcript holds ``ctx.visible``."""
    pset, where = prompt_set(prompts, name, "a debater"), _where(prompts, name)
    key = "debate" if ctx.format == "debate" else "consultancy"
    q = ctx.question
    fields = dict(passage=q.passage, question=q.question, answer_defending=ctx.answer_defending,
                  answer_opposing=ctx.answer_opposing, turn=ctx.turn + 1, n_turns=ctx.n_turns,
                  transcript=format_transcript(ctx.visible, pset, "debater", q.answers, where=where))
    system = template(pset, "debater", "system", where)
    return ((None if system is None else safe_render(system, f"{where}.debater.system", **fields)),
            safe_render(template(pset, "debater", key, where), f"{where}.debater.{key}", **fields))


def judge_prompt(prompts: dict[str, Any], name: str, ctx: JudgeContext) -> tuple[str | None, str]:
    """``(system, user)`` prompt of a judge: the set's ``judge.<format>`` template with the answers
    in shown order (``{answer_a}`` is shown first) and the speeches as shown. No passage."""
    pset, where = prompt_set(prompts, name, "a judge"), _where(prompts, name)
    answers = ctx.question.answers
    shown = ctx.answers_shown
    fields = dict(question=ctx.question.question, answer_a=shown[0], answer_b=shown[1],
                  n_turns=max((s.turn + 1 for s in ctx.speeches), default=0),
                  transcript=format_transcript(ctx.speeches, pset, "judge", answers, ctx.answer_order, where))
    system = template(pset, "judge", "system", where)
    return ((None if system is None else safe_render(system, f"{where}.judge.system", **fields)),
            safe_render(template(pset, "judge", ctx.format, where), f"{where}.judge.{ctx.format}", **fields))
