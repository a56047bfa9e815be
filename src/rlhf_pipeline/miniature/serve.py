"""A minimal OpenAI-compatible chat-completions server over a local Hugging Face causal LM, for the miniature
runs only: the real configs' ``openai_compatible`` backends talk to vLLM (``base_url: http://localhost:8000/v1``),
and a miniature points the same backends at this server serving a tiny model, so their real code path (the
``openai`` client, retries, concurrency, seeds) runs end to end on CPU with nothing downloaded.

    python -m rlhf_pipeline.miniature.serve --model results/miniature/debate_quality/Meta-Llama-3-8B-Instruct \\
        --port 8000

Endpoints (the subset of vLLM's the project's clients use):

- ``GET /v1/models``: the one served model (its name: ``--served-model-name``, else ``--model`` as given,
  as vLLM does);
- ``POST /v1/chat/completions``: ``model`` (must be the served name: 404 otherwise, as vLLM), ``messages``
  (rendered by the tokenizer's chat template with the generation prompt; a tokenizer without one gets the
  contents joined by blank lines), ``max_tokens`` (default 16), ``temperature`` (0 = greedy; otherwise plain
  temperature sampling, top-k / top-p off; default 1, as the OpenAI API), ``n`` choices (default 1) and
  ``seed``: a request with a seed samples the same text every time, whatever else the server is doing
  (generation runs under a lock in ``torch.random.fork_rng``); one without draws its seed from the server's
  ``--seed``-seeded sequence. ``finish_reason`` is ``stop`` when the model ended its turn, else ``length``;
  ``logprobs`` is always null (a client that asks for them falls back as for a server without them). Other
  fields are accepted and ignored. A malformed request is a 400 with an OpenAI-style ``{"error": ...}`` body.

The server is a ``ThreadingHTTPServer`` (HTTP/1.1, keep-alive), so a client's concurrent requests are
accepted at once and answered one generation at a time. :class:`EchoChat` (:func:`start_echo`) answers
without a model after a fixed delay, overlapping concurrent requests: for tests and benchmarks of the
clients' concurrency. :func:`start` runs it in a background thread (tests);
``--port 0`` picks a free port, printed on the first line of stdout as ``serving <model> at <base_url>``.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

DEFAULT_MAX_TOKENS = 16


class BadRequest(Exception):
    """A request the server answers with an HTTP error (``status``) and an OpenAI-style error body."""

    def __init__(self, message: str, status: int = 400, kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.kind = status, kind


class ChatModel:
    """A local causal LM and its tokenizer answering chat requests (see the module docstring)."""

    def __init__(self, model: str, served_name: str | None = None, seed: int = 0):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = served_name or model
        self.tok = AutoTokenizer.from_pretrained(model)
        self.lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
        eos = self.lm.generation_config.eos_token_id
        self.stop_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        self.stop_ids |= {self.tok.eos_token_id} - {None}
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else min(self.stop_ids, default=0)
        self.seeds = random.Random(seed)
        self.lock = threading.Lock()

    def prompt_ids(self, messages: Any) -> list[int]:
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages):
            raise BadRequest("'messages' must be a non-empty list of {role, content} objects with text content")
        if getattr(self.tok, "chat_template", None):
            text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return self.tok(text, add_special_tokens=False)["input_ids"]
        return self.tok("\n\n".join(m["content"] for m in messages))["input_ids"]

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chat-completion response for a request body (see the module docstring)."""
        import torch

        if body.get("model") != self.name:
            raise BadRequest(f"The model `{body.get('model')}` does not exist.", 404, "NotFoundError")
        ids = self.prompt_ids(body.get("messages"))
        given = {k: v for k, v in body.items() if v is not None}  # null means "the default", as in the API
        max_tokens, n = given.get("max_tokens", DEFAULT_MAX_TOKENS), given.get("n", 1)
        temperature, seed = given.get("temperature", 1.0), given.get("seed")
        for key, value, ok in (("max_tokens", max_tokens, isinstance(max_tokens, int) and max_tokens >= 1),
                               ("n", n, isinstance(n, int) and n >= 1),
                               ("temperature", temperature, isinstance(temperature, int | float) and temperature >= 0),
                               ("seed", seed, seed is None or isinstance(seed, int))):
            if not ok or isinstance(value, bool):
                raise BadRequest(f"'{key}': got {value!r}")
        kw: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": self.pad_id,
                              "eos_token_id": sorted(self.stop_ids) or None}
        if temperature > 0:
            kw.update(do_sample=True, temperature=float(temperature), top_k=0, top_p=1.0, num_return_sequences=n)
        else:  # greedy: n identical choices, as vLLM gives
            kw.update(do_sample=False, temperature=None, top_k=None, top_p=None)
        with self.lock, torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(self.seeds.getrandbits(31) if seed is None else seed)
            out = self.lm.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids),
                                                                                         dtype=torch.long), **kw)
        rows = out[:, len(ids):].tolist()
        choices, completion_tokens = [], 0
        for i, row in enumerate(rows * n if len(rows) < n else rows):
            stop = next((k for k, t in enumerate(row) if t in self.stop_ids), None)
            new = row if stop is None else row[:stop]
            completion_tokens += len(new)
            choices.append({"index": i, "message": {"role": "assistant", "content": self.tok.decode(
                new, skip_special_tokens=True)}, "logprobs": None,
                "finish_reason": "length" if stop is None else "stop"})
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": self.name, "choices": choices,
                "usage": {"prompt_tokens": len(ids), "completion_tokens": completion_tokens,
                          "total_tokens": len(ids) + completion_tokens}}

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.name, "object": "model", "created": 0,
                                            "owned_by": "rlhf_pipeline.miniature"}]}


class EchoChat:
    """A model-free stand-in with a fixed answer time, for tests and benchmarks of the clients' concurrency:
    each request sleeps ``latency_s`` (without holding any lock, so concurrent requests overlap as on a real
    server), then answers a text that is a pure function of the request (its messages and seed). A request
    with ``logprobs`` (a judge) gets "A" or "B" and both letters in ``top_logprobs``. ``requests`` counts the
    answered requests, ``peak`` the most in flight at once; while ``fail_status`` is set (e.g. 500, an
    outage), every request is answered with that HTTP error instead (and counted in ``failed``)."""

    def __init__(self, latency_s: float = 0.2, name: str = "echo"):
        self.name, self.latency_s = name, latency_s
        self.requests = self.failed = self.peak = self._in_flight = 0
        self.fail_status: int | None = None
        self.lock = threading.Lock()

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        import hashlib
        import math

        with self.lock:
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
        try:
            time.sleep(self.latency_s)
            if self.fail_status is not None:
                with self.lock:
                    self.failed += 1
                raise BadRequest("the server is down (EchoChat.fail_status)", self.fail_status, "InternalServerError")
            key = json.dumps([body.get("messages"), body.get("seed")], sort_keys=True).encode()
            h = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
            if body.get("logprobs"):
                p = 0.05 + 0.9 * (h % 1000) / 999
                letter = "A" if p >= 0.5 else "B"
                top = [{"token": t, "logprob": math.log(q), "bytes": None} for t, q in (("A", p), ("B", 1 - p))]
                logprobs = {"content": [{"token": letter, "logprob": math.log(max(p, 1 - p)), "bytes": None,
                                         "top_logprobs": top}]}
                content = letter
            else:
                logprobs, content = None, f"Speech {h % 10_000}: the answer I defend is right."
            with self.lock:
                self.requests += 1
            return {"id": f"chatcmpl-{h:x}", "object": "chat.completion", "created": 0, "model": self.name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                 "logprobs": logprobs, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 1, "total_tokens": 1}}
        finally:
            with self.lock:
                self._in_flight -= 1

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.name, "object": "model", "created": 0,
                                            "owned_by": "rlhf_pipeline.miniature"}]}


def start_echo(latency_s: float = 0.2, host: str = "127.0.0.1") -> tuple[ThreadingHTTPServer, str, EchoChat]:
    """Serve an :class:`EchoChat` from a daemon thread on a free port: the server, its base URL and the chat."""
    chat = EchoChat(latency_s)
    server = ThreadingHTTPServer((host, 0), handler(chat))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, base_url(server), chat


def handler(chat: ChatModel | EchoChat) -> type[BaseHTTPRequestHandler]:
    """The request handler class serving ``chat``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes: without this, ~40 ms per answer

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, e: BadRequest) -> None:
            self._send(e.status, {"error": {"message": str(e), "type": e.kind, "param": None, "code": e.status}})

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, chat.models())
            else:
                self._error(BadRequest(f"no route {self.path}", 404, "NotFoundError"))

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    raise BadRequest(f"no route {self.path}", 404, "NotFoundError")
                try:
                    request = json.loads(body)
                except json.JSONDecodeError as e:
                    raise BadRequest(f"the body is not JSON ({e.msg})") from None
                if not isinstance(request, dict):
                    raise BadRequest("the body must be a JSON object")
                self._send(200, chat.complete(request))
            except BadRequest as e:
                self._error(e)
            except Exception as e:  # a bug or a generation error: an answer, not a dropped connection
                self._error(BadRequest(f"{type(e).__name__}: {e}", 500, "InternalServerError"))

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request would drown a tournament's log

    return Handler


def make_server(model: str, host: str = "127.0.0.1", port: int = 0, served_name: str | None = None,
                seed: int = 0) -> ThreadingHTTPServer:
    """The server for ``model`` bound to ``host:port`` (0: a free port), not yet serving."""
    server = ThreadingHTTPServer((host, port), handler(ChatModel(model, served_name, seed)))
    server.daemon_threads = True
    return server


def base_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/v1"


def start(model: str, host: str = "127.0.0.1", port: int = 0, served_name: str | None = None,
          seed: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``model`` from a daemon thread; returns the server (``shutdown()`` stops it) and its base URL."""
    server = make_server(model, host, port, served_name, seed)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, base_url(server)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m rlhf_pipeline.miniature.serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="Local model directory (with its tokenizer).")
    p.add_argument("--served-model-name", default=None, help="The name clients ask for (default: --model).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0: a free port (printed).")
    p.add_argument("--seed", type=int, default=0, help="Seeds the seeds of requests that send none.")
    p.add_argument("--threads", type=int, default=1, help="Torch threads (tiny models: one is fastest, and it leaves "
                   "the other cores to the jobs calling the server).")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    server = make_server(args.model, args.host, args.port, args.served_model_name, args.seed)
    print(f"serving {args.served_model_name or args.model} at {base_url(server)}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
