"""The target model the attacker's texts are sent to (``redteam.target``).

``hf`` (:class:`LocalTarget`)
    A causal LM from a local directory or a hub id (``rlhf_pipeline.models.load_tokenizer`` /
    ``load_causal_lm``), on the GPU when there is one. Texts are generated in batches of
    ``batch_size`` with left padding and the KV cache, ``max_new_tokens`` new tokens each, decoded
    without special tokens and stripped. Greedy (``greedy: true``), or plain temperature sampling
    (``top_k`` and ``top_p`` off). Sampling is seeded per batch by ``(seed, the batch's texts)``
    inside ``torch.random.fork_rng``: the same texts give the same replies, and the caller's global
    torch RNG (the attacker's PPO sampling) is left untouched. A text that tokenises to nothing is
    sent as the tokenizer's BOS (or EOS) token. Inputs are not truncated (a text longer than the
    model's context is the config's to fix).

``openai_compatible`` (:class:`OpenAITarget`)
    One chat completion per text (the text as the user message) through the official ``openai``
    client on a :class:`rlhf_pipeline.clients.ChatEndpoint`, as the debate's API backends:
    ``timeout_s`` per request, up to ``max_retries`` retries with the client's backoff, at most
    ``concurrency`` requests in flight per server, the key only from the variable ``api_key_env``
    (``EMPTY`` without one, as vLLM expects) and never in an error, a log or the provenance.
    ``max_tokens=max_new_tokens``; ``temperature`` 0 when greedy; ``seed`` derived from
    the target's seed and the text, for servers that honour it. Errors are one-line PipelineErrors.
    :meth:`OpenAITarget.check` sends one 1-token request so that a wrong URL, model or key fails
    before training (:func:`build_target` calls it).

Both carry ``include_prompt`` (from the config): whether the reward sends the attacker's prompt
followed by its output (``rlhf_pipeline.models.join_text``) or the output alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..clients import ChatEndpoint
from ..config import default_of
from ..errors import PipelineError
from ..models import check_model, load_causal_lm, load_tokenizer
from ..models.fingerprint import model_dir_hash
from ..ppo.config import PPOConfig
from ..seeding import mix_seed
from .config import TargetConfig
from .rewards import check_cap, check_texts

PROBE_TEXT = "Hello"


def batch_digest(texts: Sequence[str]) -> str:
    """Short sha256 of a list of texts (with the seed, it seeds a sampled batch)."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8", "surrogatepass") + b"\0")
    return h.hexdigest()[:16]


class LocalTarget:
    """A local / hub causal LM as the target (module docstring)."""

    def __init__(self, model: str, max_new_tokens: int = default_of(TargetConfig, "max_new_tokens"),
                 greedy: bool = default_of(TargetConfig, "greedy"),
                 temperature: float = default_of(TargetConfig, "temperature"),
                 batch_size: int = default_of(TargetConfig, "batch_size"), seed: int = default_of(PPOConfig, "seed"),
                 include_prompt: bool = default_of(TargetConfig, "include_prompt"),
                 where: str = "redteam.target.model"):
        import torch

        self.model_name = model
        self.path = check_model(where, model).path
        self.max_new_tokens = check_cap(max_new_tokens, "redteam.target.max_new_tokens")
        self.batch_size = check_cap(batch_size, "redteam.target.batch_size")
        if not greedy and not temperature > 0:
            raise PipelineError(f"redteam.target.temperature: {temperature!r} must be > 0 when sampling")
        self.greedy, self.temperature, self.seed, self.include_prompt = greedy, float(temperature), seed, include_prompt
        self.tokenizer = load_tokenizer(model, padding_side="left")
        self.model = load_causal_lm(model)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()

    def _encode(self, texts: list[str]) -> dict[str, Any]:
        """Left-padded input ids and mask of ``texts``; an empty encoding becomes [BOS] (or [EOS])."""
        tok = self.tokenizer
        ids = tok(texts, add_special_tokens=True)["input_ids"]
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        ids = [x if x else [start] for x in ids]
        tok.padding_side = "left"
        return tok.pad({"input_ids": ids}, return_tensors="pt").to(self.device)

    def respond(self, texts: Sequence[str]) -> list[str]:
        """The target's reply to each text, in order."""
        import torch
        from tqdm.auto import tqdm

        texts = check_texts(texts, "target")
        out: list[str] = []
        starts = range(0, len(texts), self.batch_size)
        devices = [torch.cuda.current_device()] if self.device.type == "cuda" else []
        for s in tqdm(starts, desc="target", unit="batch", leave=False, disable=len(starts) < 4):
            batch = texts[s:s + self.batch_size]
            enc = self._encode(batch)
            sampling = {} if self.greedy else {"temperature": self.temperature, "top_k": 0, "top_p": 1.0}
            with torch.random.fork_rng(devices=devices), torch.no_grad():
                torch.manual_seed(mix_seed("target", self.seed, batch_digest(batch)))
                gen = self.model.generate(**enc, do_sample=not self.greedy, max_new_tokens=self.max_new_tokens,
                                          pad_token_id=self.tokenizer.pad_token_id,
                                          eos_token_id=self.tokenizer.eos_token_id, **sampling)
            new = gen[:, enc["input_ids"].shape[1]:]
            out.extend(t.strip() for t in self.tokenizer.batch_decode(new, skip_special_tokens=True))
        return out

    def provenance(self) -> dict[str, Any]:
        return {"backend": "hf", "model": self.model_name, "path": self.path, **model_dir_hash(self.path),
                "max_new_tokens": self.max_new_tokens, "greedy": self.greedy,
                "temperature": None if self.greedy else self.temperature, "seed": self.seed,
                "include_prompt": self.include_prompt}


class OpenAITarget:
    """An OpenAI-compatible chat endpoint as the target (module docstring)."""

    def __init__(self, cfg: TargetConfig, seed: int = default_of(PPOConfig, "seed")):
        self.who = "redteam target (openai_compatible)"
        if not cfg.model or not cfg.base_url:
            raise PipelineError("redteam.target: openai_compatible needs model (the served model's name) and "
                                "base_url (e.g. http://host:8000/v1)")
        self.cfg, self.seed, self.include_prompt = cfg, seed, cfg.include_prompt
        self.endpoint = ChatEndpoint("openai_compatible", self.who, cfg.model, cfg.base_url, cfg.api_key_env,
                                     cfg.timeout_s, cfg.max_retries, cfg.concurrency)

    def _complete(self, text: str, max_tokens: int) -> str:
        """One chat completion's text (key scrubbed, stripped); errors as one-line PipelineErrors."""
        content, _ = self.endpoint.chat(None, text, max_tokens=max_tokens, seed=mix_seed("target", self.seed, text),
                                        temperature=0.0 if self.cfg.greedy else self.cfg.temperature)
        return content.strip()

    def respond(self, texts: Sequence[str]) -> list[str]:
        """The reply to each text (``concurrency`` requests at a time), in order."""
        from tqdm.auto import tqdm

        texts = check_texts(texts, "target")
        with ThreadPoolExecutor(max_workers=self.cfg.concurrency) as pool:
            return list(tqdm(pool.map(lambda t: self._complete(t, self.cfg.max_new_tokens), texts), total=len(texts),
                             desc="target", unit="text", leave=False, disable=len(texts) < 256))

    def check(self) -> None:
        """One 1-token request: PipelineError (one line) when the endpoint, model or key is wrong."""
        self._complete(PROBE_TEXT, 1)

    def provenance(self) -> dict[str, Any]:
        return {**self.endpoint.provenance(), "max_new_tokens": self.cfg.max_new_tokens, "greedy": self.cfg.greedy,
                "temperature": 0.0 if self.cfg.greedy else self.cfg.temperature, "seed": self.seed,
                "include_prompt": self.include_prompt, "timeout_s": self.cfg.timeout_s,
                "max_retries": self.cfg.max_retries, "concurrency": self.cfg.concurrency}


def build_target(cfg: TargetConfig, default_model_dir: str | None, seed: int = default_of(PPOConfig, "seed"),
                 check: bool = True):
    """The ``redteam.target`` model: ``hf`` loads ``cfg.model`` (``null`` = ``default_model_dir``, the
    target the workflow fine-tunes); ``openai_compatible`` is probed with one request when ``check``."""
    if cfg.backend == "hf":
        model = cfg.model or default_model_dir
        if not model:
            raise PipelineError("redteam.target.model: null and no default target directory given")
        return LocalTarget(model, cfg.max_new_tokens, cfg.greedy, cfg.temperature, cfg.batch_size, seed,
                           cfg.include_prompt)
    if cfg.backend == "openai_compatible":
        target = OpenAITarget(cfg, seed)
        if check:
            target.check()
        return target
    raise PipelineError(f"redteam.target.backend: {cfg.backend!r} is not one of hf, openai_compatible")
