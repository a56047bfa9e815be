"""``hf`` backends: a local Hugging Face causal LM (a local directory or a hub id, ``revision``
passed through) as a debater or a judge.

- The **debater** renders the prompt set's debater template (through the tokenizer's chat template
  when it has one) and samples a speech: ``max_new_tokens``, ``temperature`` (0 = greedy; otherwise
  plain temperature sampling: the checkpoint's top-k / top-p defaults are switched off), seeded by
  the model's ``seed`` and the speech's ``ctx.seed``, so a speech is reproducible.
- The **judge** is teacher-forced, not sampled: it renders the judge prompt, appends ``answer_prefix``
  (e.g. ``The correct answer is (``; with a chat template, as the start of the assistant's reply),
  runs the model once and compares the next-token logits of the answer letters "A" and "B":
  ``probs = softmax([logit_A, logit_B])`` (:func:`two_way_probs`). The letters must each be one token
  after the prefix (checked when the judge is built; PipelineError otherwise). When a tokenizer merges
  a letter with the prefix's last character (``(A`` as one token), the logits are read one position
  earlier and compare the merged tokens ``(A`` / ``(B``: the same two continuations.

Models run on the GPU when there is one (in the checkpoint's dtype), otherwise on the CPU in float32;
one process loads a (model, revision) once and shares it between debaters and judges. Prompts are not
truncated: a prompt longer than the model's context is the config's to fix.

Also here, for every backend: :func:`two_way_probs`, :func:`prompt_hash`.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import lru_cache
from typing import Any

from ...errors import PipelineError
from ...models.fingerprint import model_dir_hash
from ...seeding import mix_seed
from ..config import ModelConfig
from ..prompts import debater_prompt, judge_prompt, prompt_set
from ..types import JudgeContext, SpeechContext, Verdict


def two_way_probs(logit_a: float, logit_b: float) -> tuple[float, float]:
    """Softmax over two logits: ``(e^a, e^b) / (e^a + e^b)``, computed without overflow.
    A non-finite logit raises PipelineError."""
    if not (math.isfinite(logit_a) and math.isfinite(logit_b)):
        raise PipelineError(f"answer logits must be finite, got A={logit_a}, B={logit_b}")
    d = logit_b - logit_a
    if d >= 0:
        e = math.exp(-d)
        p_a = e / (1.0 + e)
    else:
        p_a = 1.0 / (1.0 + math.exp(d))
    return p_a, 1.0 - p_a


def prompt_hash(pset: dict[str, Any]) -> str:
    """Short sha256 of a prompt set (key order does not matter): recorded in provenance."""
    return hashlib.sha256(json.dumps(pset, sort_keys=True).encode()).hexdigest()[:16]


@lru_cache(maxsize=4)
def load_lm(model: str, revision: str | None) -> tuple[Any, Any]:
    """``(tokenizer, model)`` for a configured model name, loaded once per process, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    from ...models import load_tokenizer, resolve_name

    tok = load_tokenizer(model, revision=revision)
    cuda = torch.cuda.is_available()
    try:
        lm = AutoModelForCausalLM.from_pretrained(resolve_name(model), revision=revision,
                                                  dtype="auto" if cuda else torch.float32)
    except OSError as e:
        raise PipelineError(f"hf model {model!r} (revision {revision}): cannot be loaded ({e})") from None
    return tok, lm.to("cuda" if cuda else "cpu").eval()


def chat_text(tok: Any, system: str | None, user: str, reply_start: str = "") -> tuple[str, bool]:
    """``(text, add_special_tokens)``: the prompt through the tokenizer's chat template when it has
    one (``reply_start`` begins the assistant's turn), else ``system``, ``user`` and ``reply_start``
    joined as plain text (the tokenizer then adds its own special tokens)."""
    if getattr(tok, "chat_template", None):
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True) + reply_start, False
    return (f"{system}\n\n" if system else "") + user + reply_start, True


def letter_positions(tok: Any, text: str, add_special_tokens: bool, where: str) -> tuple[list[int], int, int]:
    """``(context_ids, id_a, id_b)``: the tokens of ``text`` up to where the answer letter starts and
    the two tokens that continue it with "A" and "B". PipelineError naming ``where`` unless ``text``
    + "A" and ``text`` + "B" tokenize to the same tokens except for exactly one last token."""
    ids_a = tok(text + "A", add_special_tokens=add_special_tokens)["input_ids"]
    ids_b = tok(text + "B", add_special_tokens=add_special_tokens)["input_ids"]
    if len(ids_a) != len(ids_b) or ids_a[:-1] != ids_b[:-1] or ids_a[-1] == ids_b[-1] or len(ids_a) < 2:
        n = len(tok(text, add_special_tokens=add_special_tokens)["input_ids"])
        tail_a, tail_b = tok.convert_ids_to_tokens(ids_a[n - 1:]), tok.convert_ids_to_tokens(ids_b[n - 1:])
        raise PipelineError(f"{where}: the answer letters are not single tokens after the answer prefix "
                            f"(...A -> {tail_a}, ...B -> {tail_b}); choose another answer_prefix")
    return ids_a[:-1], ids_a[-1], ids_b[-1]


def _provenance(cfg: ModelConfig, lm: Any, pset: dict[str, Any]) -> dict[str, Any]:
    from ...models import model_ref

    ref = model_ref(cfg.model)
    out: dict[str, Any] = {"backend": "hf", "model": cfg.model, "path": ref.path if ref.local else None,
                           "revision": cfg.revision, "commit": getattr(lm.config, "_commit_hash", None),
                           "prompt": cfg.prompt, "prompt_sha256": prompt_hash(pset)}
    if ref.local:
        out.update(model_dir_hash(ref.path))
    return out


class HFDebater:
    """Samples a speech from a local causal LM (see the module docstring)."""

    def __init__(self, name: str, cfg: ModelConfig, prompts: dict[str, Any]):
        if not cfg.model:
            raise PipelineError(f"hf debater {name}: no model (set model: to a hub id or a local directory)")
        self.name, self.cfg, self.prompts = name, cfg, prompts
        self.pset = prompt_set(prompts, cfg.prompt, f"hf debater {name}")
        self.tok, self.lm = load_lm(cfg.model, cfg.revision)

    def speak(self, ctx: SpeechContext) -> str:
        import torch

        system, user = debater_prompt(self.prompts, self.cfg.prompt, ctx)
        text, special = chat_text(self.tok, system, user)
        enc = self.tok(text, return_tensors="pt", add_special_tokens=special).to(self.lm.device)
        kw: dict[str, Any] = dict(max_new_tokens=self.cfg.max_new_tokens, pad_token_id=self.tok.pad_token_id)
        if self.cfg.temperature > 0:
            kw.update(do_sample=True, temperature=self.cfg.temperature, top_k=0, top_p=1.0)  # plain sampling
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        devices = [self.lm.device] if self.lm.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(mix_seed(self.cfg.seed, ctx.seed))
            out = self.lm.generate(**enc, **kw)
        return self.tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    def provenance(self) -> dict[str, Any]:
        return _provenance(self.cfg, self.lm, self.pset)


class HFJudge:
    """Teacher-forced judge: softmax over the next-token logits of "A" and "B" after the answer
    prefix (see the module docstring)."""

    def __init__(self, name: str, cfg: ModelConfig, prompts: dict[str, Any]):
        if not cfg.model:
            raise PipelineError(f"hf judge {name}: no model (set model: to a hub id or a local directory)")
        self.name, self.cfg, self.prompts = name, cfg, prompts
        self.pset = prompt_set(prompts, cfg.prompt, f"hf judge {name}")
        self.tok, self.lm = load_lm(cfg.model, cfg.revision)
        # fail before any round: the letters must be single tokens after the bare prefix too
        text, special = chat_text(self.tok, None, "", cfg.answer_prefix)
        letter_positions(self.tok, text, special, self._where())

    def _where(self) -> str:
        return f"hf judge {self.name} (model {self.cfg.model}, answer_prefix {self.cfg.answer_prefix!r})"

    def judge(self, ctx: JudgeContext) -> Verdict:
        import torch

        system, user = judge_prompt(self.prompts, self.cfg.prompt, ctx)
        text, special = chat_text(self.tok, system, user, self.cfg.answer_prefix)
        ids, id_a, id_b = letter_positions(self.tok, text, special, self._where())
        with torch.no_grad():
            logits = self.lm(input_ids=torch.tensor([ids], device=self.lm.device)).logits[0, -1].float()
        la, lb = float(logits[id_a]), float(logits[id_b])
        p_a, p_b = two_way_probs(la, lb)
        return Verdict([p_a, p_b], True, f"teacher-forced logits after {self.cfg.answer_prefix!r}: "
                       f"A={la:.6g} B={lb:.6g}")

    def provenance(self) -> dict[str, Any]:
        return {**_provenance(self.cfg, self.lm, self.pset), "answer_prefix": self.cfg.answer_prefix}
