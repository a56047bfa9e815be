"""Debate datasets: ``results/data/debate/{dataset}/{split}.jsonl``, one :class:`Question` per line
(``id, story_id, passage, question, answers: [a, b], correct_index, source``), for the splits
``train``, ``val`` and ``test``. No story (passage) is in two splits. Every row is validated before
any file is written; the files are written atomically, with a ``summary.json`` beside them
(``questions``, ``stories`` and ``correct_index_1`` per split, ``skipped``: QuALITY questions
skipped per reason).

``synthetic``: the embedded world of invented facts
===================================================

Each story is a short passage of plain sentences (one fact each, ending in "."; ``facts_per_story``
of them, in the order drawn) about a small invented world: three people, four towns, four days,
three objects, three action verbs, two kinds of countable items and two counting verbs
(:data:`STORY_SIZES`; one more of each per 6 facts beyond 8), drawn per story from the lists below
(:data:`FIRST_NAMES`, :data:`SURNAMES`, :data:`TOWNS`, :data:`DAYS`, :data:`OBJECTS`,
:data:`ACTIONS`, :data:`ITEMS`, :data:`COUNT_VERBS`). With probability :data:`NAME_CLASH_P` two of
the three people share a first name or a surname ("Mira Voss" and "Mira Quill"). A fact is one of
five kinds (drawn with :data:`FACT_WEIGHTS`; a fact that breaks a rule below is redrawn)::

    home     "Mira Voss lives in Oslo."                 a person's one home town
    work     "Mira Voss works in Bergen."               a person's one work town
    action   "Mira Voss bought the kettle on Friday."   (person, verb, object) at most once
    visit    "Mira Voss visited Porto on Monday."       one visit per (person, day); a person's home,
                                                        work and visited towns all differ
    count    "Mira Voss packed 7 crates in Ghent."      (person, verb, items) at most once; counts 2..15,
                                                        all different within a story

An action (count) fact repeats the verb and object (items) of an earlier one, by another person,
with probability :data:`REUSE_P`. With the small per-story vocabularies, facts collide on purpose:
two people act on the same object ("Tomas Quill sold the kettle on Monday."), two people bought the
same thing, a person lives in one town and works in another, two people pack the same items. These
collisions are what makes a quote that mentions the right words not necessarily the right fact.

Questions (``questions_per_story`` per story; the kind is in ``source``, see below), each answerable
from the passage alone and with exactly one correct answer among the two:

one fact::

    where_home   "Where does Mira Voss live?"                      a town     (home)
    where_work   "Where does Mira Voss work?"                      a town     (work)
    where_visit  "Which town did Mira Voss visit on Monday?"       a town     (visit)
    when_visit   "On which day did Mira Voss visit Porto?"         a day      (visit)
    when_action  "On which day did Mira Voss buy the kettle?"      a day      (action)
    who_action   "Who bought the kettle?"                          a person   (action; only one buyer)
    how_many     "How many crates did Mira Voss pack?"             a number   (count)

two facts (the first fact identifies a person the question does not name; the second is a fact
about that person that the question cannot be matched to without the first)::

    home_of_actor     "Where does the person who bought the kettle live?"          action + home
    home_of_visitor   "Where does the person who visited Porto on Monday live?"    visit + home
    day_of_resident   "On which day did the person who lives in Oslo buy the kettle?"
                      home + action; asked only when two people bought the kettle, so the day
                      is not found from the kettle fact alone
    count_of_visitor  "How many crates did the person who visited Porto on Monday pack?"
                      visit + count; asked only when two people packed crates

The distractor (the wrong answer) is always the same kind of thing as the correct answer (a town for
a where-question, a day for a when-question, a person for a who-question, a number for a how-many
question), so both answers are plausible from the question alone. It is drawn from the passage where
possible, so that a debater arguing for it can quote a real sentence:

- with probability :data:`RELATED_P` (when there is one) a *related* value: one from a fact that
  shares the question's person, object, day, items or verb (for "Where does Mira Voss live?" her
  work town or a town she visited; for "Who bought the kettle?" the person who sold it; for a
  two-fact question the other person's value, e.g. the home of the other kettle buyer);
- else any other value of that kind in the passage;
- else (the passage has no other value of that kind) one from the global list, not in the passage.

``source`` records ``synthetic/{one_fact|two_fact}/{question kind}/{related|passage|outside}`` (the
last part: where the distractor came from).

Why a MiniLM quoting debater and judge are above chance but not perfect: the honest side can quote
the sentence that holds the question's person/object/day and its answer, while the dishonest side's
best quote usually differs from the question in one word (the person, the day or the verb), which an
embedding similarity notices only partly: near-identical names, similar verbs (bought / sold /
borrowed) and related distractors make wrong quotes look right, and two-fact questions defeat
single-sentence matching (the sentence with the right answer does not mention what the question
mentions). Measured on the default (seed 0, all 240 questions): each side quotes the passage
sentences most similar (MiniLM cosine) to "question answer"; a judge that scores each answer by its
side's best quote against "question answer" (softmax, inverse temperature 10) puts p > 0.5 on the
correct answer for 83% of the questions (mean probability 0.64): 96% of one-fact and 47% (chance)
of two-fact questions. Word-overlap retrieval does about as well as MiniLM retrieval here; a debater
quoting random sentences loses clearly (p on the correct answer 0.87 when only the dishonest side
quotes at random, 0.22 when only the honest side does).

Sizes and splits: ``n_stories`` stories; ``round(two_fact_fraction * n_stories *
questions_per_story)`` of the questions are two-fact (which ones: a seeded shuffle over all
questions). A story that cannot supply its questions is redrawn (same seed, next attempt), so the
share is exact. Stories are split by a seeded shuffle: ``round(val_fraction * n)`` to val,
``round(test_fraction * n)`` to test (Python's ``round``), the rest to train. Within each split
``correct_index`` is balanced (``n // 2`` rows with 1, the others 0, in seeded random order). Rows
are in story order, questions in the order drawn. Same seed -> byte-identical files.

``quality``: QuALITY (Pang et al., 2022) in the debate setup (Michael et al., 2023)
===================================================================================

``dataset.path`` is one of

- a folder of QuALITY files: for each source split one file whose name ends in the split's name,
  as in the release (``QuALITY.v1.0.1.htmlstripped.train``, ``QuALITY.v1.0.1.dev``) or as
  ``train.jsonl`` / ``dev.jsonl`` (``validation`` is accepted for ``dev``; a ``.json``/``.jsonl``
  suffix is allowed). Where a split has an ``htmlstripped`` file and a raw one, the htmlstripped
  one is read; any other ambiguity is an error naming the files. ``test`` files are ignored: the
  release's test split has no gold labels;
- one such file (its split from its name; a file whose name names no split is read as ``dev``);
- otherwise a hub dataset name, loaded like every dataset of the workflow
  (:func:`rlhf_pipeline.data.source.load_source`: ``datasets.load_dataset(path)``): its ``train`` split
  is train, its ``validation`` (or ``dev``) split is dev, e.g. ``tasksource/QuALITY``.

Rows may be the release's *articles* (one JSON object per article and question writer:
``article_id``, ``set_unique_id``, ``article``, ``questions: [{question, question_unique_id,
options, gold_label, difficult, validation, ...}]``) or *flat* rows, one per question, with the
question's fields beside the article's (the hub copy ``tasksource/QuALITY``; ``hard`` is accepted
for ``difficult``). Mapping: ``story_id`` = ``article_id``; ``id`` = ``question_unique_id`` (else
``{set_unique_id}-q{k}``, ``k`` the question's position in its article, or a flat row's line or row
number); ``passage`` = ``article``; ``answers`` = the gold option and the distractor (texts
stripped); ``source`` = ``quality/{train|dev}/{set_unique_id}``.

Selection, in this order, each skip counted in ``summary.json`` and logged (never silent):

1. ``exclude_stories``: questions of these ``article_id`` s are dropped (``excluded_story``);
2. ``difficult_only``: only questions with ``difficult`` = 1 are kept (``not_difficult``);
3. ``gold_label`` (1-based) must be an integer option number (``bad_gold_label`` otherwise);
4. the distractor is the annotators' most-chosen best distractor: the majority of
   ``validation[*].untimed_best_distractor`` (1-based) among the votes that name an existing option
   other than the gold one; ties go to the lowest option number; a question without such a vote, or
   whose distractor's text equals the gold text, is skipped (``no_distractor``);
5. a dev story that also occurs in train is dropped from dev (``story_in_train``).

Splits, by story: train is QuALITY's train; QuALITY's dev stories are shuffled (seeded by
``dataset.seed``) and the first half (rounded down) go to val, the rest to test. ``correct_index``
is balanced within each split as for ``synthetic``. Malformed rows (not JSON, no ``article`` or
``article_id``, options that are not a list of strings) raise a PipelineError naming ``file:line``
(or the hub split and row) and the field.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.prepare import SPLITS, validate_splits
from ..data.source import load_source
from ..errors import PipelineError
from ..io import iter_jsonl, write_json, write_jsonl
from .config import DebateDatasetConfig, SyntheticDebateConfig
from .types import Question

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# The synthetic world: vocabularies
# --------------------------------------------------------------------------------------------

FIRST_NAMES = ("Mira", "Tomas", "Elena", "Jonas", "Ada", "Felix", "Nora", "Viktor", "Lena", "Oskar", "Iris", "Anton",
               "Clara", "Emil", "Vera", "Hugo", "Selma", "Ivo", "Greta", "Pavel")
SURNAMES = ("Voss", "Quill", "Brandt", "Okafor", "Lindqvist", "Marsh", "Petrov", "Halden", "Sorensen", "Castell",
            "Moreau", "Ferris", "Takeda", "Novak", "Reyes", "Albrecht")
TOWNS = ("Oslo", "Bergen", "Lisbon", "Porto", "Turin", "Geneva", "Leeds", "Cork", "Graz", "Ghent", "Lyon", "Malmo",
         "Tartu", "Bari", "Riga", "Aarhus", "Utrecht", "Brno", "Basel", "Nantes")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
OBJECTS = ("kettle", "lantern", "violin", "bicycle", "map", "clock", "typewriter", "telescope", "compass", "camera",
           "piano", "rug", "mirror", "radio")
ACTIONS = {"bought": "buy", "sold": "sell", "repaired": "repair", "painted": "paint", "borrowed": "borrow",
           "found": "find", "lost": "lose", "cleaned": "clean"}
"""Action verbs, past tense -> base form. Several are near-synonyms or opposites on purpose."""
ITEMS = ("apples", "letters", "crates", "lamps", "books", "coins", "tickets", "candles", "baskets", "jars")
COUNT_VERBS = {"carried": "carry", "ordered": "order", "packed": "pack", "delivered": "deliver", "counted": "count"}
COUNTS = tuple(range(2, 16))
"""Numbers in count facts (each story uses each number at most once)."""

STORY_SIZES = {"people": 3, "towns": 4, "days": 4, "objects": 3, "actions": 3, "items": 2, "count_verbs": 2}
"""How many of each vocabulary a story draws (small on purpose: facts collide)."""
FACT_WEIGHTS = {"home": 0.2, "work": 0.1, "action": 0.3, "visit": 0.2, "count": 0.2}
NAME_CLASH_P = 0.5
"""Probability that two of a story's people share a first name or a surname."""
REUSE_P = 0.35
"""Probability that an action (count) fact repeats the verb and object (items) of an earlier one."""
RELATED_P = 0.7
"""Probability that the distractor is a related value of the passage, when there is one."""
STORY_ATTEMPTS = 200
"""Redraws of a story that cannot supply its questions before giving up (a PipelineError)."""

ANSWER_KINDS = ("town", "day", "person", "number")
QUESTION_KINDS = {
    # kind: (answer kind, two-fact)
    "where_home": ("town", False), "where_work": ("town", False), "where_visit": ("town", False),
    "when_visit": ("day", False), "when_action": ("day", False), "who_action": ("person", False),
    "how_many": ("number", False),
    "home_of_actor": ("town", True), "home_of_visitor": ("town", True), "day_of_resident": ("day", True),
    "count_of_visitor": ("number", True),
}


@dataclass(frozen=True)
class Fact:
    """One sentence of a synthetic passage (see the module docstring for the kinds)."""

    kind: str
    person: str
    town: str | None = None
    day: str | None = None
    verb: str | None = None
    """Past tense (action and count facts)."""
    thing: str | None = None
    """The object (action facts, singular) or the items (count facts, plural)."""
    n: int | None = None

    def sentence(self) -> str:
        """The fact as a plain sentence ending in "."."""
        if self.kind == "home":
            return f"{self.person} lives in {self.town}."
        if self.kind == "work":
            return f"{self.person} works in {self.town}."
        if self.kind == "action":
            return f"{self.person} {self.verb} the {self.thing} on {self.day}."
        if self.kind == "visit":
            return f"{self.person} visited {self.town} on {self.day}."
        if self.kind == "count":
            return f"{self.person} {self.verb} {self.n} {self.thing} in {self.town}."
        raise ValueError(f"unknown fact kind {self.kind!r}")

    def values(self) -> dict[str, str]:
        """Answer kind -> the value of that kind this fact mentions."""
        out = {"person": self.person}
        if self.town is not None:
            out["town"] = self.town
        if self.day is not None:
            out["day"] = self.day
        if self.n is not None:
            out["number"] = str(self.n)
        return out


@dataclass
class Candidate:
    """A question a story can ask: its text, correct answer and the related distractor values."""

    kind: str
    question: str
    correct: str
    related: list[str] = field(default_factory=list)

    @property
    def answer_kind(self) -> str:
        return QUESTION_KINDS[self.kind][0]

    @property
    def two_fact(self) -> bool:
        return QUESTION_KINDS[self.kind][1]


# --------------------------------------------------------------------------------------------
# The synthetic world: stories
# --------------------------------------------------------------------------------------------

def make_cast(rng: random.Random, n: int) -> list[str]:
    """``n`` distinct full names; with probability :data:`NAME_CLASH_P` two share a first name or a
    surname."""
    firsts = rng.sample(FIRST_NAMES, n)
    lasts = rng.sample(SURNAMES, n)
    if n >= 2 and rng.random() < NAME_CLASH_P:
        if rng.random() < 0.5:
            firsts[1] = firsts[0]
        else:
            lasts[1] = lasts[0]
    names = [f"{f} {s}" for f, s in zip(firsts, lasts)]
    rng.shuffle(names)
    return names


def _allowed(fact: Fact, facts: list[Fact]) -> bool:
    """Whether ``fact`` keeps the story consistent (the uniqueness rules of the module docstring)."""
    same = [f for f in facts if f.person == fact.person]
    if fact in facts:
        return False
    if fact.kind in ("home", "work"):
        return (not any(f.kind == fact.kind for f in same)
                and not any(f.kind in ("home", "work", "visit") and f.town == fact.town for f in same))
    if fact.kind == "action":
        return not any(f.kind == "action" and (f.verb, f.thing) == (fact.verb, fact.thing) for f in same)
    if fact.kind == "visit":
        return not any((f.kind == "visit" and f.day == fact.day)
                       or (f.kind in ("home", "work", "visit") and f.town == fact.town) for f in same)
    if fact.kind == "count":
        return (not any(f.kind == "count" and (f.verb, f.thing) == (fact.verb, fact.thing) for f in same)
                and not any(f.n == fact.n for f in facts if f.kind == "count"))
    raise ValueError(f"unknown fact kind {fact.kind!r}")


def _vocab(rng: random.Random, n_facts: int) -> dict[str, list[str]]:
    """The story's own small vocabularies (:data:`STORY_SIZES`, grown for long passages)."""
    grow = max(0, (n_facts - 8) // 6)
    size = {k: v + grow for k, v in STORY_SIZES.items()}
    return {
        "people": make_cast(rng, min(size["people"], len(SURNAMES))),
        "towns": rng.sample(TOWNS, min(size["towns"], len(TOWNS))),
        "days": rng.sample(DAYS, min(size["days"], len(DAYS))),
        "objects": rng.sample(OBJECTS, min(size["objects"], len(OBJECTS))),
        "actions": rng.sample(sorted(ACTIONS), min(size["actions"], len(ACTIONS))),
        "items": rng.sample(ITEMS, min(size["items"], len(ITEMS))),
        "count_verbs": rng.sample(sorted(COUNT_VERBS), min(size["count_verbs"], len(COUNT_VERBS))),
    }


def _propose(rng: random.Random, kind: str, v: dict[str, list[str]], facts: list[Fact]) -> Fact:
    """A random fact of ``kind`` over the story's vocabularies; an action or count fact repeats the
    verb and object/items of an earlier one (by someone else) with probability :data:`REUSE_P`."""
    person = rng.choice(v["people"])
    if kind in ("home", "work"):
        return Fact(kind, person, town=rng.choice(v["towns"]))
    if kind == "visit":
        return Fact(kind, person, town=rng.choice(v["towns"]), day=rng.choice(v["days"]))
    earlier = [f for f in facts if f.kind == kind]
    if earlier and rng.random() < REUSE_P:
        base = rng.choice(earlier)
        verb, thing = base.verb, base.thing
    else:
        pool_v, pool_t = ("actions", "objects") if kind == "action" else ("count_verbs", "items")
        verb, thing = rng.choice(v[pool_v]), rng.choice(v[pool_t])
    if kind == "action":
        return Fact(kind, person, day=rng.choice(v["days"]), verb=verb, thing=thing)
    return Fact(kind, person, town=rng.choice(v["towns"]), verb=verb, thing=thing, n=rng.choice(COUNTS))


def make_facts(rng: random.Random, n_facts: int) -> list[Fact]:
    """``n_facts`` consistent facts in passage order (see the module docstring)."""
    v = _vocab(rng, n_facts)
    kinds, weights = list(FACT_WEIGHTS), list(FACT_WEIGHTS.values())
    facts: list[Fact] = []
    for _ in range(1000 * n_facts):
        if len(facts) == n_facts:
            break
        fact = _propose(rng, rng.choices(kinds, weights)[0], v, facts)
        if _allowed(fact, facts):
            facts.append(fact)
    else:
        raise PipelineError(f"debate.dataset.synthetic.facts_per_story: {n_facts} facts do not fit one story's "
                            "vocabularies; expected a smaller number")
    return facts


def _unique(values: Iterable[str]) -> list[str]:
    """Values in first-seen order without repeats."""
    return list(dict.fromkeys(values))


def candidates(facts: list[Fact]) -> list[Candidate]:
    """Every question the facts answer unambiguously (the kinds of the module docstring), with the
    related distractor values of each."""
    out: list[Candidate] = []
    by_person: dict[str, list[Fact]] = {}
    for f in facts:
        by_person.setdefault(f.person, []).append(f)
    home = {f.person: f.town for f in facts if f.kind == "home"}
    residents = Counter(home.values())
    actions = [f for f in facts if f.kind == "action"]
    visits = [f for f in facts if f.kind == "visit"]
    counts = [f for f in facts if f.kind == "count"]
    doers = Counter((f.verb, f.thing) for f in actions)
    counters = Counter((f.verb, f.thing) for f in counts)
    visitors = Counter((f.town, f.day) for f in visits)

    def towns_of(person: str) -> list[str]:
        return [f.town for f in by_person[person] if f.town is not None]

    for f in facts:
        p = f.person
        if f.kind in ("home", "work"):
            verb = "live" if f.kind == "home" else "work"
            out.append(Candidate(f"where_{f.kind}", f"Where does {p} {verb}?", f.town, towns_of(p)))
        elif f.kind == "visit":
            out.append(Candidate("where_visit", f"Which town did {p} visit on {f.day}?", f.town,
                                 towns_of(p) + [g.town for g in visits if g.day == f.day]))
            out.append(Candidate("when_visit", f"On which day did {p} visit {f.town}?", f.day,
                                 [g.day for g in visits if g.person == p or g.town == f.town]
                                 + [g.day for g in actions if g.person == p]))
            if visitors[(f.town, f.day)] == 1:
                if p in home:
                    out.append(Candidate("home_of_visitor", f"Where does the person who visited {f.town} on {f.day} "
                                         "live?", home[p], [t for q, t in home.items() if q != p] + towns_of(p)))
                for c in counts:
                    if c.person == p and counters[(c.verb, c.thing)] > 1:
                        out.append(Candidate(
                            "count_of_visitor", f"How many {c.thing} did the person who visited {f.town} on "
                            f"{f.day} {COUNT_VERBS[c.verb]}?", str(c.n),
                            [str(g.n) for g in counts if (g.verb, g.thing) == (c.verb, c.thing)]))
        elif f.kind == "action":
            base = ACTIONS[f.verb]
            out.append(Candidate("when_action", f"On which day did {p} {base} the {f.thing}?", f.day,
                                 [g.day for g in by_person[p] if g.day]
                                 + [g.day for g in actions if g.thing == f.thing]))
            if doers[(f.verb, f.thing)] == 1:
                out.append(Candidate("who_action", f"Who {f.verb} the {f.thing}?", p,
                                     [g.person for g in actions if g.thing == f.thing or g.verb == f.verb]
                                     + [q for q in by_person if _clash(p, q)]))
                if p in home:
                    out.append(Candidate("home_of_actor", f"Where does the person who {f.verb} the {f.thing} live?",
                                         home[p], [home[g.person] for g in actions if g.thing == f.thing
                                                   and g.person in home] + list(home.values())))
            elif p in home and residents[home[p]] == 1:
                out.append(Candidate("day_of_resident", f"On which day did the person who lives in {home[p]} {base} "
                                     f"the {f.thing}?", f.day,
                                     [g.day for g in actions if (g.verb, g.thing) == (f.verb, f.thing)]))
        elif f.kind == "count":
            out.append(Candidate("how_many", f"How many {f.thing} did {p} {COUNT_VERBS[f.verb]}?", str(f.n),
                                 [str(g.n) for g in counts if g.thing == f.thing or g.person == p]))
    for c in out:
        c.related = [r for r in _unique(c.related) if r != c.correct]
    return out


def _clash(a: str, b: str) -> bool:
    """Two different names sharing a first name or a surname."""
    fa, la = a.split(" ", 1)
    fb, lb = b.split(" ", 1)
    return a != b and (fa == fb or la == lb)


def passage_values(facts: list[Fact]) -> dict[str, list[str]]:
    """Answer kind -> the values of that kind the passage mentions, in passage order."""
    out: dict[str, list[str]] = {k: [] for k in ANSWER_KINDS}
    for f in facts:
        for kind, value in f.values().items():
            out[kind].append(value)
    return {k: _unique(v) for k, v in out.items()}


def global_values(kind: str) -> list[str]:
    """Every value of an answer kind in the world's vocabularies."""
    return {"town": list(TOWNS), "day": list(DAYS), "number": [str(n) for n in COUNTS],
            "person": [f"{f} {s}" for f in FIRST_NAMES for s in SURNAMES]}[kind]


def pick_distractor(rng: random.Random, cand: Candidate, in_passage: dict[str, list[str]]) -> tuple[str, str]:
    """``(distractor, origin)``: a value of the correct answer's kind other than it, ``related``
    with probability :data:`RELATED_P` when there is one, else another ``passage`` value, else one
    from ``outside`` the passage."""
    related = [r for r in cand.related if r != cand.correct]
    others = [v for v in in_passage[cand.answer_kind] if v != cand.correct and v not in related]
    if related and (not others or rng.random() < RELATED_P):
        return rng.choice(related), "related"
    if others:
        return rng.choice(others), "passage"
    outside = [v for v in global_values(cand.answer_kind) if v != cand.correct and v not in related]
    return rng.choice(outside), "outside"


def choose_questions(rng: random.Random, cands: list[Candidate], n: int, n_two: int) -> list[Candidate] | None:
    """``n`` distinct questions, ``n_two`` of them two-fact, spread over question kinds (round robin
    over the kinds in random order); None if the candidates do not allow it."""
    picked: list[Candidate] = []
    for two, want in ((True, n_two), (False, n - n_two)):
        pool: dict[str, list[Candidate]] = {}
        seen = set()
        for c in cands:
            if c.two_fact == two and c.question not in seen:
                seen.add(c.question)
                pool.setdefault(c.kind, []).append(c)
        if sum(map(len, pool.values())) < want:
            return None
        for group in pool.values():
            rng.shuffle(group)
        kinds = sorted(pool)
        rng.shuffle(kinds)
        got: list[Candidate] = []
        while len(got) < want:
            for k in kinds:
                if pool[k] and len(got) < want:
                    got.append(pool[k].pop())
        picked += got
    rng.shuffle(picked)
    return picked


@dataclass
class Story:
    """One synthetic passage and its questions (correct answer first, before balancing)."""

    story_id: str
    facts: list[Fact]
    questions: list[tuple[Candidate, str, str]]
    """``(question, distractor, distractor origin)``."""

    @property
    def passage(self) -> str:
        return " ".join(f.sentence() for f in self.facts)


def make_story(seed: int, index: int, s: SyntheticDebateConfig, n_two: int) -> Story:
    """Story ``index`` of the world seeded ``seed``, with ``questions_per_story`` questions of which
    ``n_two`` are two-fact (redrawn, attempt by attempt, until the facts allow them)."""
    story_id = f"synthetic-{seed}-{index:04d}"
    for attempt in range(STORY_ATTEMPTS):
        rng = random.Random(f"debate/synthetic/story/{seed}/{index}/{attempt}")
        facts = make_facts(rng, s.facts_per_story)
        chosen = choose_questions(rng, candidates(facts), s.questions_per_story, n_two)
        if chosen is None:
            continue
        values = passage_values(facts)
        return Story(story_id, facts, [(c, *pick_distractor(rng, c, values)) for c in chosen])
    raise PipelineError(f"debate.dataset.synthetic.questions_per_story: {s.questions_per_story} questions ({n_two} "
                        f"two-fact) do not fit a story of facts_per_story={s.facts_per_story} facts; expected fewer "
                        "questions, more facts or a lower two_fact_fraction")


def two_fact_flags(n_stories: int, per_story: int, fraction: float, seed: int) -> list[int]:
    """Two-fact questions per story: ``round(fraction * total)`` flags over all questions, placed by
    a seeded shuffle."""
    total = n_stories * per_story
    n_two = round(fraction * total)
    flags = [1] * n_two + [0] * (total - n_two)
    random.Random(f"debate/synthetic/two_fact/{seed}").shuffle(flags)
    return [sum(flags[i * per_story:(i + 1) * per_story]) for i in range(n_stories)]


def split_stories(story_ids: list[str], sizes: dict[str, int], seed: int, salt: str) -> dict[str, list[str]]:
    """Story ids per split: a seeded shuffle, then ``sizes[split]`` ids to each split named in
    ``sizes`` (in order; fewer if the ids run out), the rest to ``train``; each split's ids in their
    original order."""
    order = sorted(story_ids)
    random.Random(f"debate/{salt}/split/{seed}").shuffle(order)
    out: dict[str, list[str]] = {}
    start = 0
    for split, k in sizes.items():
        out[split] = order[start:start + k]
        start += len(out[split])
    out["train"] = order[start:]
    rank = {sid: i for i, sid in enumerate(story_ids)}
    return {s: sorted(ids, key=rank.__getitem__) for s, ids in out.items()}


def balance(rows: list[tuple[str, str, str, str, str, str, str]], seed: int, salt: str) -> list[Question]:
    """Questions from ``(id, story_id, passage, question, correct, distractor, source)`` with the
    correct answer at index 1 for ``len(rows) // 2`` of them and at index 0 for the others, in a
    seeded random order."""
    rng = random.Random(f"debate/{salt}/balance/{seed}")
    flags = [i % 2 for i in range(len(rows))]
    rng.shuffle(flags)
    out = []
    for (qid, story, passage, question, correct, distractor, source), ci in zip(rows, flags):
        answers = [correct, distractor] if ci == 0 else [distractor, correct]
        out.append(Question(qid, story, passage, question, answers, ci, source))
    return out


def make_synthetic(cfg: DebateDatasetConfig) -> dict[str, list[Question]]:
    """The ``synthetic`` dataset: questions per split (see the module docstring)."""
    s = cfg.synthetic
    flags = two_fact_flags(s.n_stories, s.questions_per_story, s.two_fact_fraction, cfg.seed)
    stories = [make_story(cfg.seed, i, s, k) for i, k in enumerate(flags)]
    n = len(stories)
    ids = split_stories([st.story_id for st in stories], {"val": round(s.val_fraction * n),
                                                          "test": round(s.test_fraction * n)}, cfg.seed, "synthetic")
    by_id = {st.story_id: st for st in stories}
    out = {}
    for split in SPLITS:
        rows = []
        for sid in ids[split]:
            st = by_id[sid]
            for j, (c, distractor, origin) in enumerate(st.questions):
                hops = "two_fact" if c.two_fact else "one_fact"
                rows.append((f"{sid}-q{j}", sid, st.passage, c.question, c.correct, distractor,
                             f"synthetic/{hops}/{c.kind}/{origin}"))
        out[split] = balance(rows, cfg.seed, f"synthetic/{split}")
    return out


# --------------------------------------------------------------------------------------------
# QuALITY
# --------------------------------------------------------------------------------------------

QUALITY_SPLIT_NAMES = {"train": "train", "dev": "dev", "validation": "dev", "val": "dev", "test": "test"}
"""Last name token (before a .json/.jsonl suffix) -> QuALITY source split."""
SKIP_REASONS = ("excluded_story", "not_difficult", "bad_gold_label", "no_distractor", "story_in_train")


@dataclass
class QualityQuestion:
    """One QuALITY question with its article, as read (before selection)."""

    where: str
    """``file:line`` (or hub split and row) and the question's position, for messages."""
    split: str
    """Source split: ``train`` or ``dev``."""
    story_id: str
    set_id: str
    question_id: str
    article: str
    question: str
    options: list[str]
    gold_label: Any
    difficult: Any
    validation: list[Any]


def quality_split_of(name: str) -> str | None:
    """The QuALITY split a file name names (``QuALITY.v1.0.1.htmlstripped.dev`` -> ``dev``,
    ``train.jsonl`` -> ``train``), or None."""
    tokens = [t for t in re.split(r"[._\-]", name.lower()) if t]
    if tokens and tokens[-1] in ("json", "jsonl"):
        tokens = tokens[:-1]
    return QUALITY_SPLIT_NAMES.get(tokens[-1]) if tokens else None


def quality_files(path: Path) -> dict[str, Path]:
    """Source split -> the file to read, for a QuALITY folder or file (module docstring)."""
    if path.is_file():
        return {quality_split_of(path.name) or "dev": path}
    found: dict[str, list[Path]] = {}
    for f in sorted(path.iterdir()):
        split = quality_split_of(f.name) if f.is_file() and not f.name.startswith(".") else None
        if split is not None:
            found.setdefault(split, []).append(f)
    for f in found.pop("test", []):
        log.info("quality: ignoring %s (QuALITY's test split has no gold labels; val and test come from dev)", f)
    out = {}
    for split, files in found.items():
        stripped = [f for f in files if "htmlstripped" in f.name.lower()]
        if stripped and len(stripped) < len(files):
            log.info("quality: reading %s for split %r, not %s", [f.name for f in stripped], split,
                     [f.name for f in files if f not in stripped])
        files = stripped or files
        if len(files) > 1:
            raise PipelineError(f"debate.dataset.path: {path}: several files for QuALITY split {split!r} "
                                f"{[f.name for f in files]}; keep one")
        out[split] = files[0]
    if not out:
        raise PipelineError(f"debate.dataset.path: {path}: no QuALITY file; expected files named like "
                            "QuALITY.v1.0.1.htmlstripped.train / .dev or train.jsonl / dev.jsonl")
    return out


def _text(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PipelineError(f"{where}: field {key!r} must be a non-empty string, got {value!r:.60}")
    return value


def _id(value: Any, where: str, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise PipelineError(f"{where}: field {key!r} must be a non-empty string or integer id, got {value!r:.60}")
    return str(value)


def quality_questions(row: dict[str, Any], where: str, split: str, index: int = 0) -> list[QualityQuestion]:
    """The questions of one QuALITY row: an article with ``questions: [...]`` or a flat row with one
    ``question`` (module docstring); PipelineError naming ``where`` and the field when malformed.
    ``index``: the row's position, for the id of a flat row without ``question_unique_id``."""
    if not isinstance(row, dict):
        raise PipelineError(f"{where}: expected a JSON object (a QuALITY article), got {type(row).__name__}")
    story = _id(row.get("article_id"), where, "article_id")
    set_id = str(row.get("set_unique_id") or story)
    article = _text(row.get("article"), where, "article")
    if "questions" in row:
        qs = row["questions"]
        if not isinstance(qs, list):
            raise PipelineError(f"{where}: field 'questions' must be a list of questions, got {type(qs).__name__}")
        items = [(q, f"{where}: questions[{k}]", k) for k, q in enumerate(qs)]
    elif "question" in row:
        items = [(row, where, index)]
    else:
        raise PipelineError(f"{where}: no 'questions' (a QuALITY article) or 'question' (a flat row) field")
    out = []
    for q, at, k in items:
        if not isinstance(q, dict):
            raise PipelineError(f"{at}: expected a JSON object, got {type(q).__name__}")
        options = q.get("options")
        if not isinstance(options, list) or len(options) < 2 or not all(isinstance(o, str) for o in options):
            raise PipelineError(f"{at}: field 'options' must be a list of at least two strings, got {options!r:.80}")
        validation = q.get("validation") or []
        if not isinstance(validation, list):
            raise PipelineError(f"{at}: field 'validation' must be a list, got {type(validation).__name__}")
        qid = q.get("question_unique_id")
        out.append(QualityQuestion(
            where=at, split=split, story_id=story, set_id=set_id,
            question_id=_id(qid, at, "question_unique_id") if qid is not None else f"{set_id}-q{k}",
            article=article, question=_text(q.get("question"), at, "question"), options=options,
            gold_label=q.get("gold_label"), difficult=q.get("difficult", q.get("hard")), validation=validation))
    return out


def read_quality_file(path: Path, split: str) -> list[QualityQuestion]:
    """Every question of a QuALITY JSONL file (one JSON object per line)."""
    out = []
    for lineno, row in iter_jsonl(path):
        out += quality_questions(row, f"{path}:{lineno}", split, lineno)
    if not out:
        raise PipelineError(f"{path}: no QuALITY questions; expected one JSON article per line")
    return out


def read_quality_hub(dsd: Any, name: str) -> list[QualityQuestion]:
    """Every question of a QuALITY DatasetDict (a hub copy): ``train`` -> train, ``validation`` or
    ``dev`` -> dev; other splits are ignored (logged)."""
    if not hasattr(dsd, "keys"):
        raise PipelineError(f"debate.dataset.path: {name} holds a single split, not a DatasetDict with named splits")
    out = []
    for split_name in dsd:
        split = QUALITY_SPLIT_NAMES.get(split_name)
        if split not in ("train", "dev"):
            log.info("quality: ignoring split %r of %s (train and dev are read)", split_name, name)
            continue
        for i, row in enumerate(dsd[split_name]):
            out += quality_questions(row, f"{name} split {split_name!r} row {i}", split, i)
    if not out:
        raise PipelineError(f"debate.dataset.path: {name}: no QuALITY questions in a train, validation or dev split "
                            f"(found splits {list(dsd)})")
    return out


def read_quality(path: str) -> list[QualityQuestion]:
    """QuALITY questions from a local file or folder, else a hub dataset of that name (loaded by
    :func:`rlhf_pipeline.data.source.load_source`, as every dataset of the workflow)."""
    local = Path(path)
    if local.exists():
        files = quality_files(local)
        return [q for split in ("train", "dev") if split in files for q in read_quality_file(files[split], split)]
    dsd, _ = load_source("quality", path, default=path)
    return read_quality_hub(dsd, path)


def majority_distractor(validation: list[Any], gold: int, options: list[str]) -> int | None:
    """The most-voted ``untimed_best_distractor`` (1-based) among votes naming an existing option
    other than ``gold`` (1-based) whose text differs from the gold text; ties -> the lowest option
    number; None without such a vote."""
    gold_text = options[gold - 1].strip()
    votes = Counter()
    for v in validation:
        d = v.get("untimed_best_distractor") if isinstance(v, dict) else None
        if (isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= len(options) and d != gold
                and options[d - 1].strip() and options[d - 1].strip() != gold_text):
            votes[d] += 1
    if not votes:
        return None
    return min(votes, key=lambda d: (-votes[d], d))


def _difficult(value: Any) -> bool:
    return value is True or (isinstance(value, int | float) and value == 1)


def select_quality(questions: list[QualityQuestion], cfg: DebateDatasetConfig
                   ) -> tuple[list[tuple[QualityQuestion, int, int]], dict[str, int]]:
    """``(kept, skipped)``: ``(question, gold, distractor)`` (1-based) of the questions the research
    setup keeps, and the count of each skip reason (module docstring, steps 1-5)."""
    exclude = {str(s) for s in cfg.exclude_stories}
    train_stories = {q.story_id for q in questions if q.split == "train"}
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    kept = []
    for q in questions:
        if q.story_id in exclude:
            skipped["excluded_story"] += 1
            continue
        if cfg.difficult_only:
            if q.difficult is None:
                raise PipelineError(f"{q.where}: no 'difficult' annotation; expected QuALITY's difficult (0/1), or "
                                    "debate.dataset.difficult_only: false")
            if not _difficult(q.difficult):
                skipped["not_difficult"] += 1
                continue
        gold = q.gold_label
        if isinstance(gold, bool) or not isinstance(gold, int) or not 1 <= gold <= len(q.options) \
                or not q.options[gold - 1].strip():
            skipped["bad_gold_label"] += 1
            continue
        distractor = majority_distractor(q.validation, gold, q.options)
        if distractor is None:
            skipped["no_distractor"] += 1
            continue
        if q.split == "dev" and q.story_id in train_stories:
            skipped["story_in_train"] += 1
            continue
        kept.append((q, gold, distractor))
    return kept, skipped


def make_quality(cfg: DebateDatasetConfig, questions: list[QualityQuestion] | None = None
                 ) -> tuple[dict[str, list[Question]], dict[str, int]]:
    """The ``quality`` dataset: questions per split and the skip counts (module docstring);
    ``questions`` (e.g. from :func:`read_quality_hub`) instead of reading ``cfg.path``."""
    if questions is None:
        if not cfg.path:
            raise PipelineError("debate.dataset.path: null; expected a QuALITY JSONL path or hub name for "
                                "name: quality")
        questions = read_quality(cfg.path)
    kept, skipped = select_quality(questions, cfg)
    for reason, n in skipped.items():
        if n:
            (log.info if reason in ("excluded_story", "not_difficult") else log.warning)(
                "quality: skipped %d question(s): %s", n, reason)
    dev_stories = _unique(q.story_id for q, _, _ in kept if q.split == "dev")
    dev = split_stories(dev_stories, {"val": len(dev_stories) // 2}, cfg.seed, "quality")
    split_of = dict.fromkeys(dev["val"], "val") | dict.fromkeys(dev["train"], "test")
    rows: dict[str, list] = {s: [] for s in SPLITS}
    for q, gold, d in kept:
        split = "train" if q.split == "train" else split_of[q.story_id]
        rows[split].append((q.question_id, q.story_id, q.article.strip(), q.question.strip(),
                            q.options[gold - 1].strip(), q.options[d - 1].strip(), f"quality/{q.split}/{q.set_id}"))
    return {s: balance(rows[s], cfg.seed, f"quality/{s}") for s in SPLITS}, skipped


# --------------------------------------------------------------------------------------------
# The stage and the reader
# --------------------------------------------------------------------------------------------

def check_questions(splits: dict[str, list[Question]], cfg: DebateDatasetConfig) -> None:
    """:func:`~rlhf_pipeline.data.prepare.validate_splits` with the split tournaments debate
    (``cfg.split``) required: every row valid (:meth:`Question.from_row`), ids unique, no story in
    two splits; PipelineError otherwise."""
    seen_id: dict[str, str] = {}
    story_split: dict[str, str] = {}

    def check(split: str, questions: list[Question]) -> None:
        for i, q in enumerate(questions):
            where = f"debate dataset {cfg.name}: split {split!r} row {i}"
            Question.from_row(q.to_row(), where)
            if q.id in seen_id:
                raise PipelineError(f"{where}: duplicate id {q.id!r} (also in split {seen_id[q.id]!r})")
            seen_id[q.id] = split
            if story_split.setdefault(q.story_id, split) != split:
                raise PipelineError(f"{where}: story {q.story_id!r} is also in split {story_split[q.story_id]!r}; "
                                    "splits must not share stories")

    validate_splits(splits, f"debate dataset {cfg.name}", check, required=(cfg.split,),
                    hint="it is the split tournaments debate (debate.dataset.split)")


def prepare_debate_data(cfg: DebateDatasetConfig, out_dir: str | os.PathLike) -> dict[str, int]:
    """Write ``{out_dir}/{train,val,test}.jsonl`` (and ``summary.json``) for ``cfg``; return rows
    per split. Everything is built and validated before any file is written."""
    if cfg.name == "synthetic":
        splits, skipped = make_synthetic(cfg), {}
    elif cfg.name == "quality":
        splits, skipped = make_quality(cfg)
    else:
        raise PipelineError(f"debate.dataset.name: {cfg.name!r}; expected one of ['synthetic', 'quality']")
    check_questions(splits, cfg)
    out = Path(out_dir)
    for split in SPLITS:
        write_jsonl(out / f"{split}.jsonl", [q.to_row() for q in splits[split]])
    counts = {split: len(splits[split]) for split in SPLITS}
    write_json(out / "summary.json", {
        "dataset": cfg.name, "path": cfg.path, "seed": cfg.seed, "questions": counts,
        "stories": {s: len({q.story_id for q in splits[s]}) for s in SPLITS},
        "correct_index_1": {s: sum(q.correct_index for q in splits[s]) for s in SPLITS},
        "skipped": skipped,
    })
    return counts


def load_questions(path: str | os.PathLike, max_questions: int | None = None) -> list[Question]:
    """The questions of a split file, in file order (the first ``max_questions`` if set; every row
    is checked either way); PipelineError naming ``file:line`` and the field for a bad row, or for a
    file without rows."""
    out: list[Question] = []
    first_line: dict[str, int] = {}
    for lineno, row in iter_jsonl(path):
        where = f"{path}:{lineno}"
        if not isinstance(row, dict):
            raise PipelineError(f"{where}: expected a JSON object, got {type(row).__name__}")
        q = Question.from_row(row, where)
        if q.id in first_line:
            raise PipelineError(f"{where}: duplicate id {q.id!r} (first at line {first_line[q.id]})")
        first_line[q.id] = lineno
        out.append(q)
    if not out:
        raise PipelineError(f"{path}: no questions; expected one JSON row per line")
    return out if max_questions is None else out[:max_questions]
