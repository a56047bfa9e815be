"""Chat-model servers behind the official clients: ``openai_compatible`` (any OpenAI-compatible chat
endpoint: vLLM, TGI, a hosted API, through ``openai``) and ``anthropic`` (through ``anthropic``). Used by
the debate's API debaters and judges and by the red-teaming target.

One :class:`ChatEndpoint` per configured model:

- **requests**: ``timeout_s`` per request and up to ``max_retries`` retries with exponential backoff
  (0.5 s, 1 s, 2 s, ... capped at 8 s, with jitter; a server's ``Retry-After`` is honoured) after a
  timeout, a connection error or an HTTP 408/409/429/5xx answer: the clients' own retry loop, which
  does exactly this. At most ``concurrency`` requests are in flight per server (``base_url``) in one
  process: a module-level semaphore per public base URL, sized by the first endpoint that uses it.
- **keys** come only from the environment variable named by ``api_key_env`` (``openai_compatible``
  without one sends the placeholder ``EMPTY``, as vLLM expects; ``anthropic`` needs one; the
  ``OPENAI_API_KEY`` / ``ANTHROPIC_API_KEY`` variables are never picked up implicitly). Both clients
  send it as ``Authorization: Bearer <key>``. A key is never logged, never in provenance, and scrubbed
  from every error message and every returned text.
- **credentials in the URL** (:func:`rlhf_pipeline.io.split_url` says which parts: user-info and
  query). The client is given the public URL only (scheme, host, port, path), so a query never lands in
  the request path; every query parameter is sent as a query parameter of every request (the clients'
  ``default_query``; a parameter given twice is refused), and user-info ``user:password@`` (percent-encoded
  as URLs require) as HTTP basic auth, ``Authorization: Basic ...`` (an httpx ``auth`` on the client's
  ``http_client``), which is what a server behind a basic-auth reverse proxy expects, as curl sends it.
  That header is the one the key's bearer token takes, so user-info together with ``api_key_env`` is
  refused (``anthropic`` always has a key: no user-info there); without a key, basic auth replaces
  ``openai_compatible``'s ``Bearer EMPTY`` placeholder. Credentials are scrubbed like the key (all but
  values of under 4 characters, e.g. ``?v=1``, which would garble every text).
- **no credential is written anywhere**: the workflow gives jobs no URL credentials. At plan time
  (``workflow/rules/common.smk``), :func:`detach_credentials` replaces every URL setting that carries any
  by ``PUBLIC#credentials=RLHF_URL_<hash of PUBLIC>`` and puts the full URL in the Snakemake process's
  environment under that name; the job's endpoint reads it back (:func:`attach_credentials`). Params,
  the shell command, Snakemake's metadata and logs and the stage manifests so hold the public URL and
  the variable's name only: a changed credential changes no param (no rerun), a changed host or path
  does. Local jobs inherit the variable; a SLURM job's own Snakemake process sets it again from the
  same config files. Manifests and every JSON file also cut URL settings to their public part
  (:func:`rlhf_pipeline.io.redact`), so a stage run by hand with the full URL in ``--config`` records
  none of it either.
- **errors**: client exceptions (after the client's retries) and malformed response bodies are
  re-raised as one-line PipelineErrors naming the endpoint, outside the ``except`` block, so they do
  not carry the original exception, whose request holds the key and the credentials.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus

from .errors import PipelineError
from .io import is_url_key, split_url

APIS = ("openai_compatible", "anthropic")
PLACEHOLDER_KEY = "EMPTY"
ANTHROPIC_URL = "https://api.anthropic.com"
CREDENTIALS_REF = "#credentials="
CREDENTIALS_VAR_PREFIX = "RLHF_URL_"
MIN_SCRUBBED = 4
_SEMAPHORES: dict[str, threading.BoundedSemaphore] = {}
_LOCK = threading.Lock()


def semaphore(base_url: str, concurrency: int) -> threading.BoundedSemaphore:
    """The process-wide request limit for one server (created by its first user, ``concurrency`` slots)."""
    with _LOCK:
        if base_url not in _SEMAPHORES:
            _SEMAPHORES[base_url] = threading.BoundedSemaphore(concurrency)
        return _SEMAPHORES[base_url]


def public_url(url: str | None) -> str | None:
    """``url`` without user-info, query or fragment (what provenance and errors may show)."""
    return split_url(url)[0] if url else url


def url_credentials(userinfo: str, query: str) -> tuple[tuple[str, str] | None, dict[str, str]]:
    """What :func:`rlhf_pipeline.io.split_url`'s user-info and query carry: ``(user, password)`` for basic
    auth (None without user-info) and the query parameters, all percent-decoded."""
    user, _, password = userinfo.partition(":")
    return ((unquote(user), unquote(password)) if userinfo else None), dict(parse_qsl(query, keep_blank_values=True))


def url_secrets(userinfo: str, query: str) -> list[str]:
    """Every credential a URL carries, as written and decoded (what errors and texts are scrubbed of): the
    user-info's user and password, each query value (a bare ``?secret``: its name); those shorter than
    :data:`MIN_SCRUBBED` characters (``?v=1``) guard nothing and would garble every text, and are left."""
    raw = [value if eq else name for name, eq, value in (p.partition("=") for p in query.split("&") if p)]
    found = [*userinfo.split(":", 1), *(url_credentials(userinfo, "")[0] or ()), *raw, *map(unquote_plus, raw)]
    return sorted({f for f in found if len(f) >= MIN_SCRUBBED}, key=len, reverse=True)  # longest first


def credentials_problem(userinfo: str, query: str, api_key_env: str | None) -> str | None:
    """Why a URL's credentials cannot be sent as the module docstring says (None: they can); never a value."""
    if userinfo and api_key_env:
        return ("its user-info (HTTP basic auth) and api_key_env (a bearer token) both need the Authorization "
                "header: give one")
    repeated = sorted(n for n, k in Counter(n for n, _ in parse_qsl(query, keep_blank_values=True)).items() if k > 1)
    return f"query parameter(s) {repeated} given more than once: give each once" if repeated else None


def credentials_var(public: str) -> str:
    """The environment variable that holds the full URL of the public URL ``public`` for jobs."""
    return CREDENTIALS_VAR_PREFIX + hashlib.sha256(public.encode()).hexdigest()[:12].upper()


def detach_credentials(settings: Any, where: str = "") -> dict[str, str]:
    """Plan time: every URL setting (:func:`rlhf_pipeline.io.is_url_key`) of ``settings`` (a config dataclass,
    walked through its fields, dicts and lists) that carries credentials is set, in place, to its public URL
    and a reference, ``PUBLIC#credentials=VAR`` (:func:`credentials_var`); returns ``{VAR: full URL}`` for the
    environment of the jobs. PipelineError naming the setting (never a value) for credentials that cannot be
    sent, or for one server (public URL) given different credentials in two settings."""
    found: dict[str, tuple[str, str]] = {}  # VAR -> (full URL, the setting)

    def walk(node: Any, path: str) -> None:
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            for f in dataclasses.fields(node):
                value, key = getattr(node, f.name), f"{path}.{f.name}".lstrip(".")
                if is_url_key(f.name) and isinstance(value, str):
                    setattr(node, f.name, detach(value, key, getattr(node, "api_key_env", None)))
                else:
                    walk(value, key)
        elif isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}".lstrip("."))
        elif isinstance(node, list | tuple):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")

    def detach(url: str, key: str, api_key_env: str | None) -> str:
        public, userinfo, query = split_url(url)
        if not (userinfo or query):
            return url
        problem = credentials_problem(userinfo, query, api_key_env)
        if problem:
            raise PipelineError(f"config {key}: {public} with credentials: {problem}")
        var = credentials_var(public)
        if var in found and found[var][0] != url:
            raise PipelineError(f"config {key}: other credentials than {found[var][1]} for the same server "
                                f"{public}: give one server one set")
        found[var] = (url, key)
        return f"{public}{CREDENTIALS_REF}{var}"

    walk(settings, where)
    return {var: url for var, (url, _) in found.items()}


def attach_credentials(url: str, who: str) -> str:
    """The URL to connect to: ``url``, or for ``PUBLIC#credentials=VAR`` (:func:`detach_credentials`) the full
    URL that variable holds; one-line PipelineError naming the variable (never a value) when it is unset or
    holds another server's URL."""
    public, ref, var = url.partition(CREDENTIALS_REF)
    if not ref:
        return url
    full = os.environ.get(var)
    if not full:
        raise PipelineError(f"{who}: base_url {public} takes its credentials from ${var}, which is not set (the "
                            "Snakefile sets it from the configured base_url; a stage run by hand takes the full URL)")
    if split_url(full)[0] != split_url(public)[0]:
        raise PipelineError(f"{who}: ${var} holds the URL of another server than base_url {public}")
    return full


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
    """One model on one server: its client, key, URL credentials, request limit and error handling (module
    docstring).

    ``who`` names the user in errors (e.g. ``openai_compatible judge j1``); ``url``: the server's base
    URL, with its credentials or a reference to them (``anthropic``: None for :data:`ANTHROPIC_URL`);
    ``self.url``: its public part.
    """

    def __init__(self, api: str, who: str, model: str, url: str | None, api_key_env: str | None,
                 timeout_s: float, max_retries: int, concurrency: int):
        if api not in APIS:
            raise PipelineError(f"{who}: API {api!r} is not one of {list(APIS)}")
        self.api, self.who, self.model = api, who, model
        self.timeout_s, self.max_retries, self.concurrency = timeout_s, max_retries, concurrency
        self._key = read_key(api_key_env, who)
        url = (url or ANTHROPIC_URL) if api == "anthropic" else url
        if not url:
            raise PipelineError(f"{who}: no base_url (the server's URL, e.g. http://host:8000/v1)")
        self.url, userinfo, query = split_url(attach_credentials(url, who))  # self.url: the public URL
        problem = credentials_problem(userinfo, query, api_key_env)
        if problem:
            raise PipelineError(f"{who}: base_url {self.url} with credentials: {problem}")
        auth, params = url_credentials(userinfo, query)
        self._secrets = [self._key or "", *url_secrets(userinfo, query)]
        if api == "openai_compatible":
            import openai

            http = {"http_client": openai.DefaultHttpxClient(auth=auth)} if auth else {}
            self.client = openai.OpenAI(api_key=self._key or PLACEHOLDER_KEY, base_url=self.url, timeout=timeout_s,
                                        max_retries=max_retries, default_query=params or None, **http)
            self._errors: tuple[type[BaseException], ...] = (openai.OpenAIError,)
        else:
            import anthropic

            if not self._key:
                raise PipelineError(f"{who}: no api_key_env (the name of the variable holding the API key)")
            self.client = anthropic.Anthropic(api_key=self._key, auth_token=None, base_url=self.url,
                                              timeout=timeout_s, max_retries=max_retries, default_query=params or None)
            self._errors = (anthropic.AnthropicError,)
        self._slots = semaphore(self.url, concurrency)

    def where(self) -> str:
        """``who (model at url)``, the public url: the start of every error."""
        return f"{self.who} ({self.model} at {self.url})"

    def clean(self, text: str) -> str:
        """``text`` with the key and the URL's credentials scrubbed."""
        return scrub(text, self._secrets)

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
        return {"backend": self.api, "model": self.model, "base_url": self.url}
