"""Typed views of the ``debate:`` config section: the dataset, named model configs (debaters and
judges, one schema with a ``type`` that picks the backend), prompts, and named tournaments.

    debate:
      dataset: {name: synthetic, split: test}
      prompts: config/debate/prompts.yaml
      debaters:
        weak:   {type: extractive, quotes: 1, retrieval: lexical}
        strong: {type: extractive, quotes: 3, retrieval: embedding}
      judges:
        minilm: {type: quote_similarity}
      tournaments:
        default: {kind: round_robin, debaters: [weak, strong], judge: minilm, n_chunks: 2}

Backends (``type``): debaters ``hf``, ``openai_compatible``, ``anthropic``, ``extractive``,
``offline``, ``random``, ``deterministic``; judges ``hf``, ``openai_compatible``, ``anthropic``,
``quote_similarity``, ``offline``, ``random``, ``deterministic``. API keys are never in a config:
``api_key_env`` names the environment variable that holds one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..config import Section, bad, join, setting

DEBATER_TYPES = ("hf", "openai_compatible", "anthropic", "extractive", "offline", "random", "deterministic")
JUDGE_TYPES = ("hf", "openai_compatible", "anthropic", "quote_similarity", "offline", "random", "deterministic")
LM_TYPES = ("hf", "openai_compatible", "anthropic")
"""Backends that run a language model (and need ``model``)."""
FORMATS = ("debate", "consultancy", "double_consultancy", "empty")
"""Round formats: two debaters; one consultant per side in separate rounds; both consultancies shown
to one judge; the judge alone with the question (a baseline)."""
TOURNAMENT_KINDS = ("self_play", "round_robin", "capped_round_robin")
DEBATE_DATASETS = ("synthetic", "quality")


@dataclass
class SyntheticDebateConfig(Section):
    """Size of the embedded synthetic passages (``debate.dataset.synthetic``)."""

    section = "debate.dataset.synthetic"

    n_stories: int = setting(60, ge=1, help="Passages (stories) in all splits together.")
    questions_per_story: int = setting(4, ge=1, help="Questions asked about each passage.")
    facts_per_story: int = setting(8, ge=2, help="Facts (sentences) per passage.")
    two_fact_fraction: float = setting(0.25, ge=0, le=1, help="Share of questions that need two facts combined.")
    val_fraction: float = setting(0.2, ge=0, lt=1, help="Share of stories in the val split.")
    test_fraction: float = setting(0.4, ge=0, lt=1, help="Share of stories in the test split (the rest: train).")


@dataclass
class DebateDatasetConfig(Section):
    """Which passages and questions tournaments debate (``debate.dataset``)."""

    section = "debate.dataset"

    name: str = setting("synthetic", choices=DEBATE_DATASETS, help="synthetic (the project's seeded generator) or "
                        "quality (QuALITY JSONL by local path, or a hub copy by name).")
    path: str | None = setting(None, help="quality: a local JSONL file / folder of {split}.jsonl, or a hub name.")
    difficult_only: bool = setting(True, help="quality: keep only questions annotated as difficult (the research "
                                   "setup).")
    exclude_stories: list[str] = setting(default_factory=list, help="quality: story ids to leave out.")
    split: str = setting("test", choices=("train", "val", "test"), help="The split tournaments debate on.")
    seed: int = setting(0, help="Seed of the generator and of the story-level split.")
    synthetic: SyntheticDebateConfig = setting(default_factory=SyntheticDebateConfig,
                                               help="Size of the synthetic passages (only for name: synthetic).")

    def check(self, where: str) -> None:
        if self.name == "quality" and not self.path:
            bad(join(where, "path"), self.path, "a QuALITY JSONL path or hub name for name: quality")
        s = self.synthetic
        if s.val_fraction + s.test_fraction >= 1:
            bad(join(where, "synthetic.test_fraction"), s.test_fraction, f"< 1 - val_fraction={s.val_fraction}")


@dataclass
class BestOfNSettings(Section):
    """Best-of-N speech selection (``...best_of_n``)."""

    section = "debate.tournaments.<t>.best_of_n"

    n: int = setting(1, ge=1, help="Candidate speeches per turn (1 = off).")
    opponent_n: int = setting(1, ge=1, help="Opponent speeches each candidate is judged against.")
    opponent: str = setting("real", choices=("real", "self"), help="Whose speeches the opponents are: the real "
                            "opponent's model, or the debater's own model arguing the other side.")
    aggregate: str = setting("min", choices=("min", "mean"), help="How a candidate's scores against the opponent "
                             "speeches combine.")


@dataclass
class ModelConfig(Section):
    """One debater or judge: a backend (``type``) and its settings; settings a backend does not use
    are ignored by it, settings it needs are checked at plan time."""

    section = "debate.<model>"

    type: str = setting(help="Backend (see the module docstring).")
    model: str | None = setting(None, help="hf: hub id or local model directory; openai_compatible / anthropic: "
                                "the served model's name.")
    revision: str | None = setting(None, help="hf: hub revision (commit, tag or branch); recorded in transcripts.")
    base_url: str | None = setting(None, help="openai_compatible: the server's base URL (e.g. http://host:8000/v1).")
    api_key_env: str | None = setting(None, help="Name of the environment variable holding the API key (never the "
                                      "key itself); checked at plan time.")
    timeout_s: float = setting(60.0, gt=0, help="API backends: seconds per request before it is retried.")
    max_retries: int = setting(3, ge=0, help="API backends: retries with exponential backoff after a timeout, a "
                               "connection error or a 5xx/429 answer.")
    concurrency: int = setting(4, ge=1, help="API backends: requests in flight at once.")
    max_new_tokens: int = setting(200, ge=1, help="LM backends: longest speech (tokens).")
    temperature: float = setting(0.7, ge=0, help="LM backends: sampling temperature (0 = greedy).")
    prompt: str = setting("default", help="Name of the prompt set in the prompts file (debate.prompts).")
    quotes: int = setting(2, ge=0, help="extractive: passage sentences quoted per speech.")
    retrieval: str = setting("embedding", choices=("embedding", "lexical", "random"),
                             help="extractive: how supporting sentences are ranked: MiniLM similarity to the "
                             "question and the defended answer, word overlap, or at random.")
    misquote_rate: float = setting(0.0, ge=0, le=1, help="extractive: probability that a quote is garbled (it then "
                                   "fails verification), to model careless debaters.")
    answer_prefix: str = setting("The correct answer is (", help="hf judges: text after which the logits of the "
                                 "answer letters are compared (teacher forcing).")
    sharpness: float = setting(10.0, gt=0, help="quote_similarity judge: inverse temperature of the softmax over the "
                               "two answers' support scores.")
    transcripts: str | None = setting(None, help="offline: a tournament directory (or transcript JSONL) whose "
                                      "saved speeches / verdicts are replayed.")
    seed: int = setting(0, help="Seed of sampling (LM backends, extractive misquotes, random).")
    best_of_n: BestOfNSettings | None = setting(None, help="Debaters: best-of-N speech selection for this debater "
                                                "(a 'best-of-4' variant of a model is a debater of its own); null: "
                                                "the tournament's best_of_n.")

    def check(self, where: str) -> None:
        if self.type in LM_TYPES and not self.model:
            bad(join(where, "model"), self.model, f"a model name for type: {self.type}")
        if self.type == "openai_compatible" and not self.base_url:
            bad(join(where, "base_url"), self.base_url, "the server's base URL for type: openai_compatible")
        if self.type == "anthropic" and not self.api_key_env:
            bad(join(where, "api_key_env"), self.api_key_env, "the name of the variable holding the API key")
        if self.type == "offline" and not self.transcripts:
            bad(join(where, "transcripts"), self.transcripts, "a transcript file or tournament directory to replay")

    def check_environment(self, where: str) -> None:
        """Plan-time: the API-key variable this backend names is set (its value is never read here)."""
        if self.api_key_env and not os.environ.get(self.api_key_env):
            bad(join(where, "api_key_env"), self.api_key_env, f"the name of a set environment variable "
                f"(${self.api_key_env} is not set)")


@dataclass
class TournamentConfig(Section):
    """One named tournament (``debate.tournaments.<name>``): results/debate/<name>/."""

    section = "debate.tournaments.<t>"

    debaters: list[str] = setting(min_items=1, unique=True, help="Names from debate.debaters.")
    judge: str = setting(help="Name from debate.judges.")
    kind: str = setting("round_robin", choices=TOURNAMENT_KINDS, help="self_play: each debater against itself; "
                        "round_robin: every pair of debaters (and each against itself); capped_round_robin: every "
                        "pair gets its own slice of questions_per_pair questions.")
    formats: list[str] = setting(default_factory=lambda: list(FORMATS), choices=FORMATS, min_items=1, unique=True,
                                 help="Round formats played on every question.")
    rounds: int = setting(3, ge=1, help="Speeches per debater (debate) or consultant (consultancy).")
    simultaneous: bool = setting(True, help="Debate: both debaters speak at once each round (neither sees the "
                                 "other's speech of the current round); false: debater A speaks first.")
    questions: int | None = setting(None, ge=1, help="Questions per pairing (null = all of the dataset split).")
    questions_per_pair: int = setting(8, ge=1, help="capped_round_robin: questions per pair.")
    best_of_n: BestOfNSettings = setting(default_factory=BestOfNSettings, help="Best-of-N speech selection of "
                                         "debaters that set none of their own.")
    n_chunks: int = setting(1, ge=1, help="Jobs the tournament is split into (rounds are assigned to chunks by a "
                            "pure function of the config and seed).")
    bootstrap: int = setting(200, ge=0, help="Bootstrap resamples (over questions) for rating intervals.")
    seed: int = setting(0, help="Seed of question assignment, answer order and sampling.")


@dataclass
class DebateSection(Section):
    """The ``debate`` config section."""

    section = "debate"

    dataset: DebateDatasetConfig = setting(default_factory=DebateDatasetConfig, help="Passages and questions.")
    prompts: str = setting("config/debate/prompts.yaml", help="YAML file of named prompt sets with {placeholders}.")
    quote_fuzzy_threshold: float = setting(90.0, ge=0, le=100, help="A quote that matches the passage neither "
                                           "exactly nor after normalising (case, whitespace, punctuation) is verified "
                                           "when its rapidfuzz partial_ratio against the passage is at least this.")
    debaters: dict[str, ModelConfig] = setting(default_factory=dict, help="Named debater configs.")
    judges: dict[str, ModelConfig] = setting(default_factory=dict, help="Named judge configs.")
    tournaments: dict[str, TournamentConfig] = setting(default_factory=dict, help="Named tournaments: "
                                                       "results/debate/{name}/.")

    def check(self, where: str) -> None:
        for name, d in self.debaters.items():
            if d.type not in DEBATER_TYPES:
                bad(join(where, f"debaters.{name}.type"), d.type, f"one of {list(DEBATER_TYPES)}")
        for name, j in self.judges.items():
            if j.type not in JUDGE_TYPES:
                bad(join(where, f"judges.{name}.type"), j.type, f"one of {list(JUDGE_TYPES)}")
        for name, t in self.tournaments.items():
            at = join(where, f"tournaments.{name}")
            unknown = [d for d in t.debaters if d not in self.debaters]
            if unknown:
                bad(f"{at}.debaters", t.debaters, f"names from debate.debaters {sorted(self.debaters)}")
            if t.judge not in self.judges:
                bad(f"{at}.judge", t.judge, f"a name from debate.judges {sorted(self.judges)}")
            judge = self.judges[t.judge]
            bon_n = max([t.best_of_n.n] + [self.debaters[d].best_of_n.n for d in t.debaters
                                           if self.debaters[d].best_of_n is not None])
            if judge.type == "anthropic" and bon_n > 1:
                bad(f"{at}.judge", t.judge, "a judge with probabilities: best-of-N (n > 1 here) scores candidates by "
                    "the judge's probability, and the anthropic judge gives a 0/1 verdict")

    def tournament_run(self, name: str) -> TournamentRun:
        """What one tournament's jobs depend on: the tournament, only the models it uses, the prompts
        file and the quote threshold (so editing another tournament or an unused model reruns nothing)."""
        t = self.tournaments[name]
        return TournamentRun(name=name, tournament=t, debaters={d: self.debaters[d] for d in t.debaters},
                             judges={t.judge: self.judges[t.judge]}, prompts=self.prompts,
                             quote_fuzzy_threshold=self.quote_fuzzy_threshold)

    def check_environment(self, where: str = "debate") -> None:
        """Plan-time: every API-key variable a used backend names is set."""
        used_d = {d for t in self.tournaments.values() for d in t.debaters}
        used_j = {t.judge for t in self.tournaments.values()}
        for name in sorted(used_d):
            self.debaters[name].check_environment(join(where, f"debaters.{name}"))
        for name in sorted(used_j):
            self.judges[name].check_environment(join(where, f"judges.{name}"))


@dataclass
class TournamentRun(Section):
    """One tournament with everything its jobs need: the ``debate-chunk`` stage's ``--config``."""

    section = "debate tournament"

    name: str = setting(help="The tournament's name (results/debate/<name>/).")
    tournament: TournamentConfig = setting(help="Its settings.")
    debaters: dict[str, ModelConfig] = setting(help="The debaters it uses.")
    judges: dict[str, ModelConfig] = setting(help="Its judge.")
    prompts: str = setting("config/debate/prompts.yaml", help="The prompts file.")
    quote_fuzzy_threshold: float = setting(90.0, ge=0, le=100, help="See debate.quote_fuzzy_threshold.")

    def section_view(self) -> DebateSection:
        """The same as a DebateSection holding just this tournament."""
        return DebateSection(prompts=self.prompts, quote_fuzzy_threshold=self.quote_fuzzy_threshold,
                             debaters=self.debaters, judges=self.judges, tournaments={self.name: self.tournament})

