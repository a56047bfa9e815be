"""Chat-model servers behind the official clients: ``openai_compatible`` (any OpenAI-compatible chat
endpoint: vLLM, TGI, a hosted API, through ``openai``) and ``anthropic`` (through ``anthropic``). Used by
the debate's API debaters and judges and by the red-teaming target.

One :class:`ChatEndpoint` per configured model:

- **requests**: ``timeout_s`` per request and up to ``max_retries`` retries with exponential backoff
  (0.5 s, 1 s, 2 s, ... capped at 8 s, with jitter; a server's ``Retry-After`` is honoured) after a
  timeout, a connection error or an HTTP 408/409/429/5xx answer: the clients' own retry loop, which
  does exactly this. At most ``concurrency`` requests are in flight per server (``base_url``) in one
  process: a module-level semaphore per base URL, sized by the first endpoint that uses it.
- **keys** come only from the environment variable named by ``api_key_env`` (``openai_compatible``
  without one sends the placeholder ``EMPTY``, as vLLM expects; ``anthropic`` needs one; the
  ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` variables are never picked up implicitly). A key is never
  logged, never in provenance, and scrubbed from every error message and every returned text.
- **errors**: client exceptions (after the client's retries) and malformed response bodies are
  re-raised as one-line PipelineErrors naming the endpoint, outside the ``except`` block, so they do
  not carry the original exception, whose request holds the key.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import PipelineError

APIS = ("openai_compatible", "anthropic")
PLACEHOLDER_KEY = "EMPTY"
ANTHROPIC_URL = "https://api.anthropic.com"
_SEMAPHORES: dict[str, threading.BoundedSemaphore] = {}
_LOCK = threading.Lock()


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


def read_key(api_key_env: str | None, who: str) -> str | None:
    """The API key from the variable ``api_key_env`` (None when no variable is named); PipelineError
    naming the variable (never its value) when it is unset or empty."""
    if not api_key_env:
        return None
    key = os.environ.get(api_key_env)
    if not key:
        raise PipelineError(f"{who}: the API-key variable ${api_key_env} (api_key_env) is not set")
    return key


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


def chat_messages(system: str | None, user: str) -> list[dict[str, str]]:
    """The ``messages`` of a chat completion: the system message (when there is one), then the user's."""
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


def chat_choice(resp: Any, where: str) -> tuple[str, Any]:
    """``(text, logprobs)`` of the first choice of a chat completion; PipelineError when malformed."""
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise PipelineError(f"{where}: malformed response: no 'choices' list (got {type(resp).__name__})")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if not isinstance(content, str):
        raise PipelineError(f"{where}: malformed response: choices[0].message.content is not text")
    return content, getattr(choices[0], "logprobs", None)


def message_text(resp: Any, where: str) -> str:
    """The text blocks of an Anthropic Messages API response, joined; PipelineError when malformed."""
    blocks = getattr(resp, "content", None)
    if not isinstance(blocks, list):
        raise PipelineError(f"{where}: malformed response: no 'content' list (got {type(resp).__name__})")
    texts = [getattr(b, "text", None) for b in blocks if getattr(b, "type", None) == "text"]
    if not texts or not all(isinstance(t, str) for t in texts):
        raise PipelineError(f"{where}: malformed response: no text block in 'content'")
    return "".join(texts)


class ChatEndpoint:
    """One model on one server: its client, key, request limit and error handling (module docstring).

    ``who`` names the user in errors (e.g. ``openai_compatible judge j1``); ``url``: the server's base
    URL (``anthropic``: None for :data:`ANTHROPIC_URL`).
    """

    def __init__(self, api: str, who: str, model: str, url: str | None, api_key_env: str | None,
                 timeout_s: float, max_retries: int, concurrency: int):
        if api not in APIS:
            raise PipelineError(f"{who}: API {api!r} is not one of {list(APIS)}")
        self.api, self.who, self.model = api, who, model
        self.timeout_s, self.max_retries, self.concurrency = timeout_s, max_retries, concurrency
        self._key = read_key(api_key_env, who)
        self.url = (url or ANTHROPIC_URL) if api == "anthropic" else url
        if not self.url:
            raise PipelineError(f"{who}: no base_url (the server's URL, e.g. http://host:8000/v1)")
        if api == "openai_compatible":
            import openai

            self.client = openai.OpenAI(api_key=self._key or PLACEHOLDER_KEY, base_url=self.url, timeout=timeout_s,
                                        max_retries=max_retries)
            self._errors: tuple[type[BaseException], ...] = (openai.OpenAIError,)
        else:
            import anthropic

            if not self._key:
                raise PipelineError(f"{who}: no api_key_env (the name of the variable holding the API key)")
            self.client = anthropic.Anthropic(api_key=self._key, auth_token=None, base_url=self.url,
                                              timeout=timeout_s, max_retries=max_retries)
            self._errors = (anthropic.AnthropicError,)
        self._slots = semaphore(self.url, concurrency)

    def where(self) -> str:
        """``who (model at url)``, the url without credentials: the start of every error."""
        return f"{self.who} ({self.model} at {public_url(self.url)})"

    def clean(self, text: str) -> str:
        """``text`` with the key scrubbed."""
        return scrub(text, [self._key or ""])

    def request(self, call: Callable[[], Any]) -> Any:
        """Run one API call under the server's concurrency limit; client errors (after the client's
        own retries) and malformed bodies become one-line PipelineErrors without the key."""
        message = None
        with self._slots:
            try:
                return call()
            except self._errors as e:
                message = describe_error(e, self.timeout_s, self.max_retries)
            except ValueError as e:  # a body that is not JSON
                message = f"malformed response body ({type(e).__name__}: {e})"
        raise PipelineError(" ".join(self.clean(f"{self.where()}: {message}").split()))

    def chat(self, system: str | None, user: str, **kw: Any) -> tuple[str, Any]:
        """``openai_compatible``: one chat completion (``kw``: ``max_tokens``, ``temperature``, ``seed``,
        ``logprobs``, ...); ``(text, logprobs)`` of its first choice, the text with the key scrubbed."""
        resp = self.request(lambda: self.client.chat.completions.create(
            model=self.model, messages=chat_messages(system, user), **kw))
        text, logprobs = chat_choice(resp, self.where())
        return self.clean(text), logprobs

    def message(self, system: str | None, user: str, max_tokens: int) -> str:
        """``anthropic``: one Messages API call; its text, with the key scrubbed."""
        kw: dict[str, Any] = {"system": system} if system else {}
        resp = self.request(lambda: self.client.messages.create(
            model=self.model, max_tokens=max_tokens, messages=[{"role": "user", "content": user}], **kw))
        return self.clean(message_text(resp, self.where()))

    def provenance(self) -> dict[str, Any]:
        """What identifies the endpoint in a record (never the key)."""
        return {"backend": self.api, "model": self.model, "base_url": public_url(self.url)}
