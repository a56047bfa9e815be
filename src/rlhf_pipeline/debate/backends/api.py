"""API backends: ``openai_compatible`` (any OpenAI-compatible chat endpoint: vLLM, TGI, a hosted API,
through the official ``openai`` client) and ``anthropic`` (the official ``anthropic`` client).

Requests: ``timeout_s`` per request and up to ``max_retries`` retries with exponential backoff
(0.5 s, 1 s, 2 s, ... capped at 8 s, with jitter; a server's ``Retry-After`` is honoured) after a
timeout, a connection error or an HTTP 408/409/429/5xx answer: the clients' own retry loop, which
does exactly this. At most ``concurrency`` requests are in flight per server (``base_url``) in one
process: a module-level semaphore per base URL, sized by the first backend that uses it. One round
is sequential; ``speak_many`` / ``judge_many`` run a batch on a thread pool of that size.

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
appears as "(A)"/"(B)" or as "answer is A"-style text, that one; otherwise PipelineError.

API keys come only from the environment variable named by ``api_key_env`` (``openai_compatible``
without one sends the placeholder ``EMPTY``, as vLLM expects; the ``OPENAI_API_KEY`` /
``ANTHROPIC_API_KEY`` variables are never picked up implicitly). A key is never logged, never in
provenance, and scrubbed from every error message and every returned text; client exceptions are
re-raised as one-line PipelineErrors (outside the ``except`` block, so they do not carry the original
exception, whose request holds the key). A malformed response body is a PipelineError too (the
round code records the round as failed).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ...errors import PipelineError
from ...seeding import mix_seed
from ..config import ModelConfig
from ..prompts import debater_prompt, judge_prompt, prompt_set
from ..types import JudgeContext, SpeechContext, Verdict
from .hf import prompt_hash

TOP_LOGPROBS = 20
PLACEHOLDER_KEY = "EMPTY"
ANTHROPIC_URL = "https://api.anthropic.com"
_SEMAPHORES: dict[str, threading.BoundedSemaphore] = {}
_LOCK = threading.Lock()
_LETTER_TOKEN = re.compile(r"^\s*\(?\s*([AB])\s*\)?\s*$")
_BARE_LETTER = re.compile(r"^\s*\(?([AB])(?:\)|\b)[\s.:,!)]*$")
_MARKED_LETTER = re.compile(r"\(([AB])\)|\b(?i:answer)(?: is)?:?\s*\(?([AB])\b")


# ---- pure helpers --------------------------------------------------------------------------------


def semaphore(base_url: str, concurrency: int) -> threading.BoundedSemaphore:
    """The process-wide request limit for one server (created by its first user, ``concurrency`` slots)."""
    with _LOCK:
        if base_url not in _SEMAPHORES:
            _SEMAPHORES[base_url] = threading.BoundedSemaphore(concurrency)
        return _SEMAPHORES[base_url]


def public_url(url: str | None) -> str | None:
    """``url`` without user info, query or fragment (what provenance and errors may show)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced by ``<redacted>``."""
    for s in secrets:
        if s:
            text = text.replace(s, "<redacted>")
    return text


def read_key(cfg: ModelConfig, who: str) -> str | None:
    """The API key from the variable ``cfg.api_key_env`` (None when no variable is named);
    PipelineError naming the variable (never its value) when it is unset or empty."""
    if not cfg.api_key_env:
        return None
    key = os.environ.get(cfg.api_key_env)
    if not key:
        raise PipelineError(f"{who}: the API-key variable ${cfg.api_key_env} (api_key_env) is not set")
    return key


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


def _messages(system: str | None, user: str) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def _chat_choice(resp: Any, where: str) -> tuple[str, Any]:
    """``(text, logprobs)`` of the first choice of a chat completion; PipelineError when malformed."""
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise PipelineError(f"{where}: malformed response: no 'choices' list (got {type(resp).__name__})")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if not isinstance(content, str):
        raise PipelineError(f"{where}: malformed response: choices[0].message.content is not text")
    return content, getattr(choices[0], "logprobs", None)


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


# ---- the clients ------------------------------------------------------------------------------------



def describe_error(e: BaseException, timeout_s: float, max_retries: int) -> str:
    """One line for a client error: a timeout, an HTTP status, a connection failure, or the exception."""
    status, kind = getattr(e, "status_code", None), type(e).__name__
    if "Timeout" in kind:
        return f"no answer within timeout_s={timeout_s} (after {max_retries} retries)"
    if status is not None:
        return f"HTTP {status} (after {max_retries} retries): {str(e)[:300]}"
    if "Connection" in kind:
        return f"cannot connect (after {max_retries} retries): {str(e)[:200]}"
    return f"{kind}: {str(e)[:300]}"

class _APIBackend:
    """Shared by the four API backends: key, client, request wrapper, batch helpers."""

    backend = ""
    role = ""

    def __init__(self, name: str, cfg: ModelConfig, prompts: dict[str, Any]):
        self.who = f"{self.backend} {self.role} {name}"
        if not cfg.model:
            raise PipelineError(f"{self.who}: no model (set model: to the served model's name)")
        self.name, self.cfg, self.prompts = name, cfg, prompts
        self.pset = prompt_set(prompts, cfg.prompt, self.who)
        self._key = read_key(cfg, self.who)
        self.url = self._base_url()
        self.client = self._client()
        self._slots = semaphore(self.url, cfg.concurrency)

    def _base_url(self) -> str:
        raise NotImplementedError

    def _client(self) -> Any:
        raise NotImplementedError

    def _errors(self) -> tuple[type[BaseException], ...]:
        raise NotImplementedError

    def _where(self) -> str:
        return f"{self.who} ({self.cfg.model} at {public_url(self.url)})"

    def request(self, call: Callable[[], Any]) -> Any:
        """Run one API call under the server's concurrency limit; client errors (after the client's
        own retries) and malformed bodies become one-line PipelineErrors without the key."""
        message = None
        with self._slots:
            try:
                return call()
            except self._errors() as e:
                message = self._describe(e)
            except ValueError as e:  # a body that is not JSON
                message = f"malformed response body ({type(e).__name__}: {e})"
        raise PipelineError(scrub(f"{self._where()}: {message}", [self._key or ""]))

    def _describe(self, e: BaseException) -> str:
        return describe_error(e, self.cfg.timeout_s, self.cfg.max_retries)

    def _clean(self, text: str) -> str:
        return scrub(text, [self._key or ""])

    def _provenance(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.cfg.model, "base_url": public_url(self.url),
                "prompt": self.cfg.prompt, "prompt_sha256": prompt_hash(self.pset),
                "max_new_tokens": self.cfg.max_new_tokens, "seed": self.cfg.seed}

    def _map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return list(pool.map(fn, items))


class _OpenAIBackend(_APIBackend):
    backend = "openai_compatible"

    def _base_url(self) -> str:
        if not self.cfg.base_url:
            raise PipelineError(f"{self.who}: no base_url (the server's URL, e.g. http://host:8000/v1)")
        return self.cfg.base_url

    def _client(self) -> Any:
        import openai

        return openai.OpenAI(api_key=self._key or PLACEHOLDER_KEY, base_url=self.url, timeout=self.cfg.timeout_s,
                             max_retries=self.cfg.max_retries)

    def _errors(self) -> tuple[type[BaseException], ...]:
        import openai

        return (openai.OpenAIError,)

    def _chat(self, system: str | None, user: str, **kw: Any) -> tuple[str, Any]:
        resp = self.request(lambda: self.client.chat.completions.create(
            model=self.cfg.model, messages=_messages(system, user), **kw))
        return _chat_choice(resp, self._where())


class OpenAIDebater(_OpenAIBackend):
    """A speech from one chat completion (see the module docstring)."""

    role = "debater"

    def speak(self, ctx: SpeechContext) -> str:
        system, user = debater_prompt(self.prompts, self.cfg.prompt, ctx)
        text, _ = self._chat(system, user, max_tokens=self.cfg.max_new_tokens, temperature=self.cfg.temperature,
                             seed=mix_seed(self.cfg.seed, ctx.seed))
        return self._clean(text)

    def speak_many(self, ctxs: list[SpeechContext]) -> list[str]:
        """``speak`` for each context, ``concurrency`` at a time; results in order."""
        return self._map(self.speak, ctxs)

    def provenance(self) -> dict[str, Any]:
        return {**self._provenance(), "temperature": self.cfg.temperature}


class OpenAIJudge(_OpenAIBackend):
    """Probabilities from the answer token's top log-probabilities, text fallback (module docstring)."""

    role = "judge"

    def judge(self, ctx: JudgeContext) -> Verdict:
        system, user = judge_prompt(self.prompts, self.cfg.prompt, ctx)
        text, logprobs = self._chat(system, user + self.cfg.answer_prefix, max_tokens=1, temperature=0.0,
                                    logprobs=True, top_logprobs=TOP_LOGPROBS, seed=mix_seed(self.cfg.seed, ctx.seed))
        text = self._clean(text)
        top = _top_logprobs(logprobs)
        probs = letter_probs(top)
        if probs is None:
            why = ("the server returned no log-probabilities" if not top else
                   f"neither letter among the top {len(top)} log-probabilities")
            return verdict_from_letter(parse_letter(text), text, why, self._where())
        shown = {self._clean(t): round(lp, 4) for t, lp in top if _LETTER_TOKEN.match(t)}
        return Verdict(list(probs), True, f"top_logprobs of the answer token {shown}; reply {text!r}")

    def judge_many(self, ctxs: list[JudgeContext]) -> list[Verdict]:
        """``judge`` for each context, ``concurrency`` at a time; results in order."""
        return self._map(self.judge, ctxs)

    def provenance(self) -> dict[str, Any]:
        return {**self._provenance(), "answer_prefix": self.cfg.answer_prefix, "top_logprobs": TOP_LOGPROBS}


class _AnthropicBackend(_APIBackend):
    backend = "anthropic"

    def _base_url(self) -> str:
        return self.cfg.base_url or ANTHROPIC_URL

    def _client(self) -> Any:
        import anthropic

        if not self._key:
            raise PipelineError(f"{self.who}: no api_key_env (the name of the variable holding the API key)")

        return anthropic.Anthropic(api_key=self._key, auth_token=None, base_url=self.url, timeout=self.cfg.timeout_s,
                                   max_retries=self.cfg.max_retries)

    def _errors(self) -> tuple[type[BaseException], ...]:
        import anthropic

        return (anthropic.AnthropicError,)

    def _message(self, system: str | None, user: str) -> str:
        kw: dict[str, Any] = {"system": system} if system else {}
        resp = self.request(lambda: self.client.messages.create(
            model=self.cfg.model, max_tokens=self.cfg.max_new_tokens, messages=[{"role": "user", "content": user}],
            **kw))
        blocks = getattr(resp, "content", None)
        if not isinstance(blocks, list):
            raise PipelineError(f"{self._where()}: malformed response: no 'content' list (got {type(resp).__name__})")
        texts = [getattr(b, "text", None) for b in blocks if getattr(b, "type", None) == "text"]
        if not texts or not all(isinstance(t, str) for t in texts):
            raise PipelineError(f"{self._where()}: malformed response: no text block in 'content'")
        return self._clean("".join(texts))


class AnthropicDebater(_AnthropicBackend):
    """A speech from one Messages API call."""

    role = "debater"

    def speak(self, ctx: SpeechContext) -> str:
        system, user = debater_prompt(self.prompts, self.cfg.prompt, ctx)
        return self._message(system, user)

    def speak_many(self, ctxs: list[SpeechContext]) -> list[str]:
        """``speak`` for each context, ``concurrency`` at a time; results in order."""
        return self._map(self.speak, ctxs)

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

    def judge_many(self, ctxs: list[JudgeContext]) -> list[Verdict]:
        """``judge`` for each context, ``concurrency`` at a time; results in order."""
        return self._map(self.judge, ctxs)

    def provenance(self) -> dict[str, Any]:
        return {**self._provenance(), "answer_prefix": self.cfg.answer_prefix, "probabilities": False}
