"""SamplingNoise / NoiseSampler: sampling's random numbers drawn ahead by a worker thread give the same samples
and leave the default generator in the same state as generate's own sampling."""

import threading

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.ppo.rollout import (
    SamplingNoise,
    generate_responses,
    multinomial_draws_exponentials,
    sampling_noise_supported,
    tokenize_prompts,
)

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 2}


@pytest.fixture(scope="module")
def model_and_tok(tmp_path_factory):
    tok = load_tokenizer("minilm")
    tok.padding_side = "left"
    model = load_causal_lm(None, tok, tiny=TINY, seed=3).eval()
    # EOS gets a logit of ~9 where the hidden state points the average way (log V = 10.3 would make it as likely
    # as all other tokens together), so that some rows end early and others do not
    with torch.no_grad():
        enc = tok(["alpha bravo charlie", "delta echo"], return_tensors="pt", padding=True)
        h = model.model(**enc).last_hidden_state.mean((0, 1))
        model.lm_head.weight[tok.eos_token_id] = 9.0 * h / h.dot(h)
    return model, tok


def _sample(model, tok, prompts, noise, temperature, top_k, max_new_tokens=12):
    q, qm = tokenize_prompts(tok, prompts, 64)
    return generate_responses(model, q, qm, max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                              pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, return_logprobs=True,
                              noise=noise)


def test_this_torch_samples_as_the_noise_sampler_assumes():
    """multinomial(probs, 1) on CPU is argmax(probs / q), q ~ Exp(1) drawn per entry (what the speed-up
    relies on; if a torch release changes it, training falls back to generate's own sampling)."""
    assert multinomial_draws_exponentials()


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.7, 0), (1.3, 5)])
@pytest.mark.parametrize("ahead_bytes", [1, 64 * 2**20])
def test_same_samples_logprobs_and_rng_state_as_generate(model_and_tok, temperature, top_k, ahead_bytes):
    """Several generate calls in one SamplingNoise (the last with fewer rows: the draws made ahead in the old
    shape are given back and drawn again), some rows and whole calls ending early at EOS: the responses,
    sampling-pass logprobs and the default generator's state after equal those of generate(do_sample=True)."""
    model, tok = model_and_tok
    batches = [["alpha", "bravo charlie", "delta", "echo foxtrot golf"], ["hotel", "india", "kilo lima", "mike"],
               ["november", "oscar papa", "quebec"]]
    torch.manual_seed(11)
    want = [_sample(model, tok, b, None, temperature, top_k) for b in batches]
    want_state = torch.get_rng_state()
    torch.manual_seed(11)
    with SamplingNoise(max_draws=20, ahead_bytes=ahead_bytes) as noise:
        got = [_sample(model, tok, b, noise, temperature, top_k) for b in batches]
    for (r0, l0), (r1, l1) in zip(want, got):
        assert torch.equal(r0, r1)
        assert torch.equal(l0, l1)
    assert torch.equal(torch.get_rng_state(), want_state)
    # some rows end with EOS (then get padding), others run to max_new_tokens
    ended = torch.cat([(r == tok.eos_token_id).any(1) for r, _ in want])
    assert ended.any() and not ended.all()


def test_draws_continue_the_default_stream_and_unused_ones_are_given_back():
    """take() returns what exponential_ on the default generator would draw, in order; on close the default
    generator is just past the draws taken, however many the worker drew ahead."""
    torch.manual_seed(3)
    g = torch.Generator().manual_seed(3)
    expected = [torch.empty(2, 5).exponential_(1, generator=g) for _ in range(3)]
    with SamplingNoise(max_ahead=8) as noise:
        got = [noise.take((2, 5)) for _ in range(3)]
        for _ in range(1000):  # the worker runs 8 ahead (a bounded wait: a regression fails, not hangs)
            if len(noise._ready) >= 8:
                break
            threading.Event().wait(0.01)
        threading.Event().wait(0.05)
        assert len(noise._ready) == 8  # and stops there
    for e, x in zip(expected, got):
        assert torch.equal(e, x)
    assert torch.equal(torch.get_rng_state(), g.get_state())


def test_max_draws_bounds_the_work_ahead_but_not_what_is_taken():
    torch.manual_seed(4)
    with SamplingNoise(max_draws=2, max_ahead=8) as noise:
        noise.take((1, 3))
        noise.run_aside(lambda: None).result()  # the worker is idle once 2 are drawn
        assert noise._drawn == 2
        noise.take((1, 3))
        noise.take((1, 3))  # a third: drawn when asked for
        assert noise._drawn == 3
    g = torch.Generator().manual_seed(4)
    for _ in range(3):
        torch.empty(1, 3).exponential_(1, generator=g)
    assert torch.equal(torch.get_rng_state(), g.get_state())


def test_run_aside_runs_on_the_worker_and_close_finishes_it():
    main = threading.get_ident()
    with SamplingNoise() as noise:
        where = noise.run_aside(threading.get_ident)
        fails = noise.run_aside(lambda: 1 / 0)
        late = noise.run_aside(lambda x: x + 1, 41)
    assert where.result() != main and late.result() == 42
    with pytest.raises(ZeroDivisionError):
        fails.result()
    with pytest.raises(RuntimeError, match="closed"):
        noise.run_aside(int)


def test_help_aside_runs_what_the_worker_has_not_started_on_the_caller():
    main, release = threading.get_ident(), threading.Event()
    with SamplingNoise() as noise:
        busy = noise.run_aside(lambda: release.wait(10) and threading.get_ident())
        for _ in range(10_000):  # the worker takes it and holds it until released
            if busy.running():
                break
            threading.Event().wait(0.001)
        assert busy.running()
        where = [noise.run_aside(threading.get_ident) for _ in range(3)]
        fails = noise.run_aside(lambda: 1 / 0)
        noise.help_aside()
        assert all(f.done() for f in where) and not busy.done()
        release.set()
    assert {f.result() for f in where} == {main} and busy.result() not in (None, main)
    with pytest.raises(ZeroDivisionError):
        fails.result()


def test_workers_run_on_one_kept_thread_and_a_forked_child_gets_its_own():
    import os

    with SamplingNoise() as noise:
        first = noise.run_aside(threading.get_ident).result()
    with SamplingNoise() as noise:
        assert noise.run_aside(threading.get_ident).result() == first
    if not hasattr(os, "fork"):
        return
    pid = os.fork()
    if pid == 0:  # the child: a worker must still run (a hang here fails the test by timeout of the wait below)
        ok = False
        try:
            with SamplingNoise() as noise:
                ok = noise.run_aside(lambda: 42).result(timeout=20) == 42
        finally:
            os._exit(0 if ok else 1)
    for _ in range(3000):  # 30 s
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        threading.Event().wait(0.01)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("a SamplingNoise in a forked child did not run")
    assert os.waitstatus_to_exitcode(status) == 0


def test_other_warpers_fall_back_to_generate(model_and_tok, tmp_path):
    """A generation config with a warper the sampler does not rebuild (min_p) is not supported: generate_responses
    refuses noise= rather than sampling differently."""
    model, tok = model_and_tok
    model.save_pretrained(tmp_path)
    other = AutoModelForCausalLM.from_pretrained(tmp_path)
    other.generation_config.min_p = 0.05
    assert sampling_noise_supported(model, "cpu")
    assert not sampling_noise_supported(other, "cpu")
    assert not sampling_noise_supported(model, "meta")
    with SamplingNoise() as noise, pytest.raises(ValueError, match="noise="):
        _sample(other, tok, ["alpha"], noise, 1.0, 0)


def test_a_failed_draw_is_raised_to_the_taker_and_threads_are_kept():
    """The worker's error reaches take() (no hang); the caller's intra-op thread count is not changed by the
    worker's own setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with SamplingNoise() as noise, pytest.raises(RuntimeError, match="failed to draw"):
            noise.take((2, 3), torch.int64)  # exponential_ is only for floating types
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
