"""API backends: ``openai_compatible`` (any OpenAI-compatible chat endpoint: vLLM, TGI, a hosted API,
through the official ``openai`` client) and ``anthropic`` (the official ``anthropic`` client), each on a
:class:`rlhf_pipeline.clients.ChatEndpoint`: timeouts, retries with backoff, at most ``concurrency``
requests in flight per server, keys only from ``api_key_env`` and never in an error, a log or the
provenance, client errors as one-line PipelineErrors (see :mod:`rlhf_pipeline.clients`). The backends are
``thread_safe``: a chunk plays up to ``concurrency`` rounds at once, and a round its best-of-N calls
(:func:`rlhf_pipeline.debate.rounds.call_width`).

Debaters: one chat completion (``openai_compatible``: ``max_new_tokens``, ``temperature``, and a
seed derived from the model's ``seed`` and the speech's, so servers that honour seeds reproduce
speeches) or one message (``anthropic``: ``max_new_tokens``; the installed client's Messages API takes
no temperature or seed, so the model's default sampling is used and ``temperature`` is ignored).

Judges: the judge prompt with ``answer_prefix`` appended to the user message (chat APIs cannot
portably pre-fill the assistant's reply); OpenAI-compatible judges at temperature 0.

- ``openai_compatible``: ``max_tokens=1, logprobs=True, top_logprobs=20``. The probabilities are read
  from the top log-probabilities of the first generated token: a token that is the letter "A"
  (ignoring surrounding spaces and parentheses, so "A", " A" and "(A" count) adds its probability to
  A, likewise for B, and the two are renormalised. When only one letter is among the top 20, the
  other gets the smallest listed probability (an upper bound on its true probability, so the verdict
  is conservative rather than 0/1). **Fallback**: when the server returns no log-probabilities, or
  neither letter is among them, the answer letter is parsed from the text and the verdict is 0/1
  with ``has_probabilities=False``; ``Verdict.raw`` says so.
- ``anthropic``: no log-probabilities: the letter is parsed from the reply and the verdict is 0/1
  with ``has_probabilities=False`` (said in ``Verdict.raw``).

Letter parsing (:func:`parse_letter`): a reply that is just a letter (optionally in parentheses,
with trailing punctuation: "A", "(B)", "A)") is that letter; otherwise, if exactly one of the letters
appears as "(A)"/"(B)" or as "answer is A"-style text, that one; otherwise PipelineError. A malformed
response body is a PipelineError too (the round code records the round as failed).
"""

from __future__ import annotations

import re
from typing import Any

from ...clients import ChatEndpoint
from ...errors import PipelineError
from ...seeding import mix_seed
from ..config import ModelConfig
from ..prompts import debater_prompt, judge_prompt, prompt_set
from ..types import JudgeContext, SpeechContext, Verdict
from .hf import prompt_hash

TOP_LOGPROBS = 20
_LETTER_TOKEN = re.compile(r"^\s*\(?\s*([AB])\s*\)?\s*$")
_BARE_LETTER = re.compile(r"^\s*\(?([AB])(?:\)|\b)[\s.:,!)]*$")
_MARKED_LETTER = re.compile(r"\(([AB])\)|\b(?i:answer)(?: is)?:?\s*\(?([AB])\b")


# ---- pure helpers --------------------------------------------------------------------------------


def parse_letter(text: str) -> str | None:
    """The answer letter ("A"/"B") a judge's reply names, or None (see the module docstring)."""
    m = _BARE_LETTER.match(text)
    if m:
        return m.group(1)
    found = {a or b for a, b in _MARKED_LETTER.findall(text)}
    return found.pop() if len(found) == 1 else None


def letter_probs(top: list[tuple[str, float]]) -> tuple[float, float] | None:
    """``(p_A, p_B)`` renormalised over the two letters from ``(token, logprob)`` pairs of one
    position, or None when neither letter is among them. Tokens "A", " A", "(A", "A)" all count for
    A (probabilities added); a letter missing from the list gets the smallest listed probability."""
    import math

    mass = {"A": 0.0, "B": 0.0}
    for token, logprob in top:
        m = _LETTER_TOKEN.match(token)
        if m:
            mass[m.group(1)] += math.exp(logprob)
    if mass["A"] == 0 and mass["B"] == 0:
        return None
    floor = min(math.exp(lp) for _, lp in top)
    a, b = (mass[k] if mass[k] > 0 else floor for k in ("A", "B"))
    return a / (a + b), b / (a + b)


def verdict_from_letter(letter: str | None, text: str, why: str, who: str) -> Verdict:
    """A 0/1 verdict from a parsed letter (``has_probabilities=False``); PipelineError when none."""
    if letter is None:
        raise PipelineError(f"{who}: the judge's reply names neither (A) nor (B): {text[:200]!r}")
    probs = [1.0, 0.0] if letter == "A" else [0.0, 1.0]
    return Verdict(probs, False, f"{why}; verdict {letter} parsed from the reply {text[:500]!r} (0/1, no "
                   f"probabilities)")


def _top_logprobs(logprobs: Any) -> list[tuple[str, float]]:
    """``(token, logprob)`` pairs of the first generated token (its top list and the token itself);
    empty when the server sent none or they are malformed."""
    content = getattr(logprobs, "content", None)
    if not isinstance(content, list) or not content:
        return []
    first = content[0]
    entries = list(getattr(first, "top_logprobs", None) or []) + [first]
    pairs: dict[str, float] = {}
    for e in entries:
        token, lp = getattr(e, "token", None), getattr(e, "logprob", None)
        if isinstance(token, str) and isinstance(lp, int | float) and not isinstance(lp, bool) and lp <= 0:
            pairs.setdefault(token, float(lp))
    return list(pairs.items())


# ---- the backends -----------------------------------------------------------------------------------


class _APIBackend:
    """Shared by the four API backends: the endpoint, provenance and the concurrency a chunk may use."""

    backend = ""
    role = ""
    thread_safe = True

    def __init__(self, name: str, cfg: ModelConfig, prompts: dict[str, Any]):
        self.who = f"{self.backend} {self.role} {name}"
        if not cfg.model:
            raise PipelineError(f"{self.who}: no model (set model: to the served model's name)")
        self.name, self.cfg, self.prompts = name, cfg, prompts
        self.pset = prompt_set(prompts, cfg.prompt, self.who)
        self.endpoint = ChatEndpoint(self.backend, self.who, cfg.model, cfg.base_url, cfg.api_key_env, cfg.timeout_s,
                                     cfg.max_retries, cfg.concurrency)

    def _where(self) -> str:
        return self.endpoint.where()

    def _provenance(self) -> dict[str, Any]:
        return {**self.endpoint.provenance(), "prompt": self.cfg.prompt, "prompt_sha256": prompt_hash(self.pset),
                "max_new_tokens": self.cfg.max_new_tokens, "seed": self.cfg.seed}

    @property
    def concurrency(self) -> int:
        """Calls this backend wants in flight at once (its server's limit holds whatever the caller does)."""
        return self.cfg.concurrency


class _OpenAIBackend(_APIBackend):
    backend = "openai_compatible"


class OpenAIDebater(_OpenAIBackend):
    """A speech from one chat completion (see the module docstring)."""

    role = "debater"

    def speak(self, ctx: SpeechContext) -> str:
        system, user = debater_prompt(self.prompts, self.cfg.prompt, ctx)
        text, _ = self.endpoint.chat(system, user, max_tokens=self.cfg.max_new_tokens,
                                     temperature=self.cfg.temperature, seed=mix_seed(self.cfg.seed, ctx.seed))
        return text


    def provenance(self) -> dict[str, Any]:
        return {**self._provenance(), "temperature": self.cfg.temperature}


class OpenAIJudge(_OpenAIBackend):
    """Probabilities from the answer token's top log-probabilities, text fallback (module docstring)."""

    role = "judge"

    def judge(self, ctx: JudgeContext) -> Verdict:
        system, user = judge_prompt(self.prompts, self.cfg.prompt, ctx)
        text, logprobs = self.endpoint.chat(system, user + self.cfg.answer_prefix, max_tokens=1, temperature=0.0,
                                            logprobs=True, top_logprobs=TOP_LOGPROBS,
                                            seed=mix_seed(self.cfg.seed, ctx.seed))
        top = _top_logprobs(logprobs)
        probs = letter_probs(top)
        if probs is None:
            why = ("the server returned no log-probabilities" if not top else
                   f"neither letter among the top {len(top)} log-probabilities")
            return verdict_from_letter(parse_letter(text), text, why, self._where())
        shown = {self.endpoint.clean(t): round(lp, 4) for t, lp in top if _LETTER_TOKEN.match(t)}
        return Verdict(list(probs), True, f"top_logprobs of the answer token {shown}; reply {text!r}")


    def provenance(self) -> dict[str, Any]:
        return {**self._provenance(), "answer_prefix": self.cfg.answer_prefix, "top_logprobs": TOP_LOGPROBS}


class _AnthropicBackend(_APIBackend):
    backend = "anthropic"

    def _message(self, system: str | None, user: str) -> str:
        return self.endpoint.message(system, user, self.cfg.max_new_tokens)


class AnthropicDebater(_AnthropicBackend):
    """A speech from one Messages API call."""

    role = "debater"

    def speak(self, ctx: SpeechContext) -> str:
        system, user = debater_prompt(self.prompts, self.cfg.prompt, ctx)
        return self._message(system, user)


    def provenance(self) -> dict[str, Any]:
        return {**self._provenance(), "temperature": "model default"}


class AnthropicJudge(_AnthropicBackend):
    """A 0/1 verdict parsed from the reply (the API gives no probabilities)."""

    role = "judge"

    def judge(self, ctx: JudgeContext) -> Verdict:
        system, user = judge_prompt(self.prompts, self.cfg.prompt, ctx)
        text = self._message(system, user + self.cfg.answer_prefix)
        return verdict_from_letter(parse_letter(text), text, "the anthropic API returns no probabilities",
                                   self._where())


    def provenance(self) -> dict[str, Any]:
        return {**self._provenance(), "answer_prefix": self.cfg.answer_prefix, "probabilities": False}
