"""Rollouts: sample responses with ``generate``, cut them at EOS, score them, and run the forward
passes PPO needs (logprobs, values) on prompt + response.

Shapes: B = rollouts, P = prompt tokens (left-padded), T = ``max_new_tokens`` response tokens
(right-padded with the pad token after the first EOS).
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from .losses import row_blocks


def tokenize_prompts(tokenizer, prompts: list[str], max_prompt_length: int):
    """Left-padded prompt ids and mask [B, P]; long prompts keep their last tokens."""
    enc = tokenizer(prompts, return_tensors="pt", padding=True, truncation=True,
                    max_length=max_prompt_length, return_token_type_ids=False)
    return enc["input_ids"], enc["attention_mask"]


class SampledLogprobs:
    """A ``generate`` logits processor that records each sampled token's ``log softmax(logits / temperature)``.

    ``generate`` runs custom processors before its warpers (temperature, top-k), so this one sees the
    model's logits as they come; at step t it reads the token step t - 1 sampled (the last column of
    ``input_ids``) off the previous step's log-softmax, and :meth:`finish` reads the last one off the
    returned sequences. It keeps one [B, V] row block, not one per step (``output_logits`` would keep
    all T of them). Returns the scores unchanged."""

    def __init__(self, temperature: float):
        self.temperature = temperature
        self.previous: torch.Tensor | None = None  # [B, V] log-softmax of the last step's logits
        self.values: list[torch.Tensor] = []      # [B] per generated token

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self._take(input_ids[:, -1])
        self.previous = torch.log_softmax(scale_logits(scores, self.temperature), -1)
        return scores

    def _take(self, tokens: torch.Tensor) -> None:
        if self.previous is not None:
            self.values.append(self.previous.gather(1, tokens[:, None]).squeeze(1))
            self.previous = None

    def finish(self, responses: torch.Tensor) -> torch.Tensor | None:
        """Logprobs [B, n] of ``responses`` [B, n] (the generated tokens); None if the processor did not
        see every step (a ``generate`` that skips logits processors)."""
        if responses.shape[1]:
            self._take(responses[:, -1])
        if len(self.values) != responses.shape[1]:
            return None
        return torch.stack(self.values, 1) if self.values else responses.new_zeros(responses.shape, dtype=torch.float32)


class SamplingNoise:
    """The Exp(1) numbers ``generate``'s sampling would draw from the default generator, drawn ahead by a
    worker thread, which runs other work (:meth:`run_aside`) when it is far enough ahead.

    On CPU ``torch.multinomial(probs, 1)`` draws q ~ Exp(1) in the shape of ``probs`` from the default
    generator and returns ``argmax(probs / q)`` (checked by :func:`sampling_noise_supported`). The draw is a
    serial loop of ~20 ns a number: 5 ms a step for 8 rows of a 30k vocabulary, as long as a small policy's
    forward pass. The numbers do not depend on the logits, so the worker draws them ahead, in the order
    sampling would, from a private generator that continues the default generator's stream, while the model
    computes logits on the other cores. :class:`NoiseSampler` uses them.

    A context manager around the ``generate_responses(noise=...)`` calls of a phase that draws nothing else
    from the default generator (a PPO step's rollout, an eval batch). On exit the default generator is where
    sampling with ``generate`` would have left it: numbers drawn ahead and not used are given back. The worker
    stays at most ``ahead_bytes`` (and ``max_ahead`` steps) ahead, and draws at most ``max_draws`` steps'
    numbers unasked (the phase's most: more are drawn when asked for).
    """

    def __init__(self, max_draws: int | None = None, ahead_bytes: int = 16 * 2**20, max_ahead: int = 32):
        self.max_draws, self.ahead_bytes, self.max_ahead = max_draws, ahead_bytes, max_ahead
        self._generator = torch.Generator()
        self._generator.set_state(torch.get_rng_state())
        self._cv = threading.Condition()
        self._ready: deque = deque()  # (generator state before the draw, q), in drawing order
        self._kind = None             # (shape, dtype) of the draws; None until the first take
        self._ahead = 1               # how many draws to keep ready
        self._drawn = 0               # draws made (given-back ones not counted)
        self._drawing = False
        self._waiting = 0             # takers waiting for a draw
        self._tasks: deque = deque()  # (future, fn, args) for run_aside
        self._closing = False
        self._error: BaseException | None = None
        self._done = _worker_threads().submit(self._work)

    def __enter__(self) -> SamplingNoise:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the worker (holds self._cv only between jobs) -------------------------------------------
    def _should_draw(self) -> bool:
        if self._kind is None or self._closing:
            return False
        if self._waiting > len(self._ready):  # a taker waits for a draw not made yet: beyond max_draws too
            return True
        return len(self._ready) < self._ahead and (self.max_draws is None or self._drawn < self.max_draws)

    def _work(self) -> None:
        torch.set_num_threads(1)  # the draws are serial; work run aside gets this one core
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._should_draw() or self._tasks or self._closing)
                if self._should_draw():
                    kind, self._drawing, task = self._kind, True, None
                elif self._tasks:
                    task = self._tasks.popleft()
                else:
                    return
            if task is None:
                try:
                    state = self._generator.get_state()
                    q = torch.empty(kind[0], dtype=kind[1]).exponential_(1, generator=self._generator)
                except BaseException as e:  # raised to the taker, not lost with the thread
                    with self._cv:
                        self._error, self._drawing = e, False
                        self._cv.notify_all()
                    return
                with self._cv:
                    self._ready.append((state, q))
                    self._drawn += 1
                    self._drawing = False
                    self._cv.notify_all()
            else:
                _run(*task)

    def _give_back(self) -> None:
        """(Holding self._cv.) Drop the draws made ahead; the generator goes back to where the first began."""
        self._cv.wait_for(lambda: not self._drawing)
        if self._ready:
            self._generator.set_state(self._ready[0][0])
            self._drawn -= len(self._ready)
            self._ready.clear()

    # ---- the caller's side --------------------------------------------------------------------
    def take(self, shape, dtype=torch.float32) -> torch.Tensor:
        """The next draw of ``shape``: what ``torch.multinomial`` on probabilities of that shape would draw."""
        kind = (tuple(shape), dtype)
        with self._cv:
            if kind != self._kind:  # what was drawn ahead has another shape: draw again from its start
                self._give_back()
                self._kind = kind
                size = math.prod(kind[0]) * torch.empty((), dtype=dtype).element_size()
                self._ahead = max(1, min(self.max_ahead, self.ahead_bytes // max(1, size)))
            self._waiting += 1
            self._cv.notify_all()
            self._cv.wait_for(lambda: self._ready or self._error is not None)
            self._waiting -= 1
            if not self._ready:
                raise RuntimeError("SamplingNoise: the worker failed to draw") from self._error
            _, q = self._ready.popleft()
            self._cv.notify_all()
        return q

    def run_aside(self, fn, *args) -> Future:
        """Run ``fn(*args)`` on the worker (one intra-op thread) when it is far enough ahead; its future.
        ``fn`` must not draw from the default generator."""
        future: Future = Future()
        with self._cv:
            if self._closing:
                raise RuntimeError("SamplingNoise is closed")
            self._tasks.append((future, fn, args))
            self._cv.notify_all()
        return future

    def help_aside(self) -> None:
        """Run, on the calling thread, the :meth:`run_aside` work the worker has not started, while the worker
        finishes what it has (the end of a rollout: nothing is left to sample, so the caller's cores would
        otherwise wait for the worker's one)."""
        while True:
            with self._cv:
                if not self._tasks:
                    return
                task = self._tasks.popleft()
            _run(*task)

    def close(self) -> None:
        """Finish the work run aside, stop the worker; the default generator continues after the draws used."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._done.result()
        with self._cv:
            self._give_back()
        torch.set_rng_state(self._generator.get_state())


def _run(future: Future, fn, args) -> None:
    """Run a :meth:`SamplingNoise.run_aside` task into its future (an exception is handed to whoever waits)."""
    if future.set_running_or_notify_cancel():
        try:
            future.set_result(fn(*args))
        except BaseException as e:
            future.set_exception(e)


@functools.cache
def _worker_threads() -> ThreadPoolExecutor:
    """The threads that :class:`SamplingNoise` workers run on, kept for the process: one, when one phase at a
    time uses a worker (as PPO does). A new thread per rollout would also get a new glibc malloc arena whenever
    another thread (pyarrow's, say) had taken over the previous worker's, each keeping its peak (tens of MB)."""
    return ThreadPoolExecutor(thread_name_prefix="sampling-noise")


if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads: it makes its own
    os.register_at_fork(after_in_child=_worker_threads.cache_clear)


class NoiseSampler:
    """``generate(do_sample=True)``'s sampling step as the last logits processor of a greedy ``generate``:
    after the ``warpers`` (temperature, top-k, as ``generate`` adds them) it returns ``softmax(scores) / q`` with
    q from a :class:`SamplingNoise`, whose argmax, the greedy step's choice, is the token ``generate`` would
    sample (``multinomial`` takes the same argmax)."""

    def __init__(self, noise: SamplingNoise, warpers=()):
        self.noise, self.warpers = noise, list(warpers)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        for warp in self.warpers:
            scores = warp(input_ids, scores)
        probs = torch.softmax(scores, dim=-1)  # as generate(do_sample=True) computes them
        return probs / self.noise.take(probs.shape, probs.dtype)


# GenerationConfig fields with which generate(do_sample=True) adds a warper that generate_responses does not
# rebuild for the NoiseSampler; a model whose generation config sets one samples through generate itself.
OTHER_WARPER_FIELDS = ("top_h", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "watermarking_config")


@functools.cache
def multinomial_draws_exponentials() -> bool:
    """Whether this torch's ``multinomial(probs, 1)`` on CPU draws one Exp(1) number per entry and returns
    ``argmax(probs / q)`` (the same samples, and the same generator state after), which :class:`NoiseSampler`
    repeats. Checked once per process, on private generators."""
    probs = torch.softmax(torch.linspace(0, 1, 64 * 512).view(64, 512), dim=-1)
    sampling, drawing = torch.Generator().manual_seed(1234), torch.Generator().manual_seed(1234)
    sampled = torch.multinomial(probs, 1, generator=sampling)
    q = torch.empty_like(probs).exponential_(1, generator=drawing)
    return (torch.equal(sampled, torch.argmax(probs / q, dim=-1, keepdim=True))
            and torch.equal(sampling.get_state(), drawing.get_state()))


def sampling_noise_supported(model, device) -> bool:
    """Whether ``generate_responses(model, ..., noise=SamplingNoise())`` samples exactly as ``generate`` does:
    on CPU, with a torch whose multinomial works as :func:`multinomial_draws_exponentials` checks, and a
    generation config without other warpers (:data:`OTHER_WARPER_FIELDS`)."""
    config = getattr(model, "generation_config", None)
    return (torch.device(device).type == "cpu" and multinomial_draws_exponentials()
            and not any(getattr(config, f, None) is not None for f in OTHER_WARPER_FIELDS))


@torch.no_grad()
def generate_responses(model, query_ids: torch.Tensor, query_mask: torch.Tensor, *,
                       max_new_tokens: int, temperature: float, top_k: int, pad_token_id: int,
                       eos_token_id: int, return_logprobs: bool = False, noise: SamplingNoise | None = None):
    """Sample responses [B, T] (KV cache on), padded with ``pad_token_id`` to ``max_new_tokens``.

    With ``return_logprobs``: ``(responses, logprobs)``, where logprobs [B, T] are the sampled tokens'
    ``log softmax(logits / temperature)`` taken during sampling by :class:`SampledLogprobs` from the model's
    own logits (before top-k), the quantity :func:`response_logits` + :func:`logprobs_of` recompute with a
    second forward pass, equal to it up to floating-point rounding (cached versus full attention).
    Positions after generation stopped get 0. ``logprobs`` is None if ``generate`` did not run the
    processor at every step; callers then run the forward pass.

    With ``noise`` (where :func:`sampling_noise_supported`): the random numbers come from that
    :class:`SamplingNoise` through a :class:`NoiseSampler`: the same tokens as ``generate``'s own sampling.
    """
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper

    recorder = SampledLogprobs(temperature) if return_logprobs else None
    processors = [recorder] if recorder else []
    if noise is None:
        sampling = dict(do_sample=True, temperature=temperature, top_k=top_k, top_p=1.0)
    else:
        if not sampling_noise_supported(model, query_ids.device):
            raise ValueError("generate_responses: noise= needs a CPU model whose generation config adds no "
                             "other warpers (see sampling_noise_supported)")
        warpers = []  # those generate(do_sample=True) adds, in its order (top_p is 1.0: none)
        if temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(temperature))
        if top_k:
            warpers.append(TopKLogitsWarper(top_k=top_k, min_tokens_to_keep=1))
        processors.append(NoiseSampler(noise, warpers))
        sampling = dict(do_sample=False, temperature=None, top_k=None, top_p=None)
    out = model.generate(
        input_ids=query_ids, attention_mask=query_mask, **sampling, max_new_tokens=max_new_tokens,
        min_new_tokens=None, min_length=0, use_cache=True, pad_token_id=pad_token_id, eos_token_id=eos_token_id,
        logits_processor=LogitsProcessorList(processors),
    )
    responses = out[:, query_ids.shape[1]:]
    pad = max_new_tokens - responses.shape[1]  # generate stops early once every row has ended
    padded = torch.nn.functional.pad(responses, (0, pad), value=pad_token_id)
    if recorder is None:
        return padded
    logprobs = recorder.finish(responses)
    return padded, None if logprobs is None else torch.nn.functional.pad(logprobs, (0, pad), value=0.0)


def scale_logits(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature`` in float32 (no copy at temperature 1: x / 1.0 == x exactly)."""
    logits = logits.float()
    return logits if temperature == 1.0 else logits / temperature


def truncate_after_eos(responses: torch.Tensor, eos_token_id: int, pad_token_id: int):
    """Everything after the first EOS becomes padding.

    Returns (responses [B, T], mask [B, T] with 1 up to and including the first EOS,
    has_eos [B] bool). Rows without EOS keep all T tokens.
    """
    is_eos = responses == eos_token_id
    has_eos = is_eos.any(1)
    T = responses.shape[1]
    first_eos = torch.where(has_eos, is_eos.int().argmax(1), torch.full_like(has_eos, T - 1, dtype=torch.long))
    mask = (torch.arange(T, device=responses.device)[None, :] <= first_eos[:, None]).long()
    return responses.masked_fill(mask == 0, pad_token_id), mask, has_eos


def apply_missing_eos_penalty(scores: torch.Tensor, has_eos: torch.Tensor,
                              penalty: float | None) -> torch.Tensor:
    """Replace the score of responses without EOS by ``penalty`` (no-op when ``penalty`` is None)."""
    if penalty is None:
        return scores
    return torch.where(has_eos, scores, torch.full_like(scores, penalty))


def _join(query_ids, query_mask, responses, response_mask):
    input_ids = torch.cat([query_ids, responses], 1)
    attention_mask = torch.cat([query_mask, response_mask], 1)
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)  # same positions as generate()
    return input_ids, attention_mask, position_ids


def response_logits(model, query_ids, query_mask, responses, response_mask,
                    temperature: float) -> torch.Tensor:
    """Temperature-scaled logits [N, V] that predicted each real response token (``response_mask`` 1, N of
    them, in row-major order: ``responses[response_mask.bool()]``), as in sampling. Padding after the first
    EOS gets no logits: the LM head (the largest matmul of a small model) only runs where they are used.
    :func:`to_rows` puts per-token results back into [B, T]."""
    input_ids, attention_mask, position_ids = _join(query_ids, query_mask, responses, response_mask)
    keep = torch.zeros_like(input_ids, dtype=torch.bool)  # position i's logits predict token i + 1
    keep[:, query_ids.shape[1] - 1:-1] = response_mask.bool()
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   use_cache=False, logits_to_keep=keep).logits
    if logits.ndim == 3:  # a model that computed every position's logits
        logits = logits[keep]
    return scale_logits(logits, temperature)


def to_rows(values: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Per-token values [N] (the order of :func:`response_logits`) as [B, T], 0 on padding (differentiable)."""
    rows, cols = response_mask.bool().nonzero(as_tuple=True)
    return values.new_zeros(response_mask.shape).index_put((rows, cols), values)


def logprobs_of(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] per position: [..., V], [...] -> [...]. In blocks of rows
    (:func:`~rlhf_pipeline.ppo.losses.row_blocks`): the same numbers, with no second [..., V] tensor."""
    flat, tok = logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1, 1)
    out = flat.new_empty(tok.shape[0])
    for rows in row_blocks(flat):
        out[rows] = torch.log_softmax(flat[rows], -1).gather(-1, tok[rows]).squeeze(-1)
    return out.view(tokens.shape)


def response_values(value_model, query_ids, query_mask, responses, response_mask) -> torch.Tensor:
    """Values [B, T] of the states before each response token."""
    input_ids, attention_mask, position_ids = _join(query_ids, query_mask, responses, response_mask)
    values = value_model(input_ids, attention_mask, position_ids)
    return values[:, query_ids.shape[1] - 1:-1].float()
