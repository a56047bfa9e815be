"""PPO math against numbers worked out by hand (see the comments next to each expectation)."""

import math

import pytest
import torch

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.ppo.config import PPOConfig
from rlhf_pipeline.ppo.kl import AdaptiveKLController, FixedKLController, kl_k1, kl_k3
from rlhf_pipeline.ppo.losses import (
    compute_gae,
    entropy_from_logits,
    logprobs_and_entropy,
    masked_mean,
    masked_var,
    masked_whiten,
    per_token_rewards,
    policy_loss,
    value_loss,
)
from rlhf_pipeline.ppo.rollout import apply_missing_eos_penalty, truncate_after_eos
from rlhf_pipeline.ppo.trainer import prompt_indices


def close(actual, expected, tol=1e-5):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=torch.float32),
                               torch.tensor(expected, dtype=torch.float32), atol=tol, rtol=0)


def test_gae_with_masking():
    # gamma = 0.9, lam = 0.5, so gamma * lam = 0.45. Values/rewards at masked positions are ignored.
    rewards = torch.tensor([[1.0, 2.0, 5.0], [0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 1.0, 7.0], [0.2, 0.4, 0.6]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv, ret = compute_gae(rewards, values, mask, gamma=0.9, lam=0.5)
    # row 0: t=1: delta = 2 + 0.9*0 - 1.0 = 1.0 -> A1 = 1.0
    #        t=0: delta = 1 + 0.9*1.0 - 0.5 = 1.4 -> A0 = 1.4 + 0.45*1.0 = 1.85
    # row 1: t=2: delta = 1 - 0.6 = 0.4 -> A2 = 0.4
    #        t=1: delta = 0.9*0.6 - 0.4 = 0.14 -> A1 = 0.14 + 0.45*0.4 = 0.32
    #        t=0: delta = 0.9*0.4 - 0.2 = 0.16 -> A0 = 0.16 + 0.45*0.32 = 0.304
    close(adv, [[1.85, 1.0, 0.0], [0.304, 0.32, 0.4]])
    close(ret, [[2.35, 2.0, 0.0], [0.504, 0.72, 1.0]])  # A + V, 0 on padding


def test_masked_statistics_and_whitening():
    x = torch.tensor([2.0, 4.0, 6.0, 100.0])
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])
    close(masked_mean(x, mask), 4.0)
    close(masked_var(x, mask), 4.0)                  # (4 + 0 + 4) / (3 - 1)
    close(masked_var(x, mask, unbiased=False), 8 / 3)
    close(masked_whiten(x, mask), [-1.0, 0.0, 1.0, 0.0], tol=1e-4)        # (x - 4) / 2
    close(masked_whiten(x, mask, shift_mean=False), [3.0, 4.0, 5.0, 0.0], tol=1e-4)  # ... + 4


def test_clipped_policy_loss_and_clipfrac():
    # ratios 1.5, 0.5, 1.1 (and 10 on a masked token); advantages 1, 1, -2 (5); cliprange 0.2
    new = torch.log(torch.tensor([1.5, 0.5, 1.1, 10.0]))
    old = torch.zeros(4)
    adv = torch.tensor([1.0, 1.0, -2.0, 5.0])
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])
    loss, stats = policy_loss(new, old, adv, mask, cliprange=0.2)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped term active); token 1: max(-0.5, -0.8) = -0.5;
    # token 2: max(2.2, 2.2) = 2.2 (ratio inside the range) -> mean = 0.5 / 3
    close(loss, 0.5 / 3)
    close(stats["clipfrac"], 1 / 3)
    # approxkl = 0.5 * mean(log(1.5)^2, log(0.5)^2, log(1.1)^2) = 0.5 * (0.164402 + 0.480453 + 0.009085) / 3
    close(stats["approxkl"], 0.108990)


def test_clipped_value_loss():
    new = torch.tensor([1.0, 2.0, 9.0])
    old = torch.tensor([0.5, 2.0, 0.0])
    returns = torch.tensor([2.0, 1.0, 0.0])
    mask = torch.tensor([1.0, 1.0, 0.0])
    loss, clipfrac = value_loss(new, old, returns, mask, cliprange_value=0.2)
    # token 0: clipped value 0.7; (1-2)^2 = 1, (0.7-2)^2 = 1.69 -> 1.69 (clipped active)
    # token 1: unchanged value; 1 and 1 -> 1.     loss = 0.5 * (1.69 + 1) / 2
    close(loss, 0.6725)
    close(clipfrac, 0.5)


def test_kl_estimators():
    logp = torch.log(torch.tensor([0.5, 0.2]))
    ref = torch.log(torch.tensor([0.25, 0.4]))
    close(kl_k1(logp, ref), [math.log(2), -math.log(2)])
    # k3 = (r - 1) - log r, r = ref / p: r = 0.5 -> -0.5 + 0.693147; r = 2 -> 1 - 0.693147
    close(kl_k3(logp, ref), [0.193147, 0.306853])


def test_adaptive_kl_controller():
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ctl.update(9.0, n_steps=100)   # error 9/6 - 1 = 0.5 -> clipped to 0.2; x (1 + 0.2 * 100 / 10000)
    close(ctl.value, 0.1002, tol=1e-9)
    ctl.update(5.4, n_steps=500)   # error 0.9 - 1 = -0.1; x (1 - 0.1 * 500 / 10000) = x 0.995
    close(ctl.value, 0.1002 * 0.995, tol=1e-9)
    fixed = FixedKLController(0.1)
    fixed.update(100.0, n_steps=100)
    assert fixed.value == 0.1
    restored = AdaptiveKLController(0.5, 6.0, 10000)
    restored.load_state_dict(ctl.state_dict())
    assert restored.value == ctl.value


def test_per_token_rewards_kl_penalty_and_score_at_last_token():
    scores = torch.tensor([1.0, -2.0])
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, -0.5]])
    ref = torch.tensor([[-1.5, -2.0, -2.0], [-1.0, -1.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    rewards, penalty = per_token_rewards(scores, logp, ref, mask, kl_coef=0.1)
    # row 0: k1 = [0.5, 0, (masked)] -> penalty [-0.05, 0, 0]; score 1.0 on token 1 (the last real one)
    # row 1: k1 = 0.5 everywhere -> penalty -0.05 each; score -2.0 on token 2
    close(penalty, [[-0.05, 0.0, 0.0], [-0.05, -0.05, -0.05]])
    close(rewards, [[-0.05, 1.0, 0.0], [-0.05, -0.05, -2.05]])


def test_truncation_after_first_eos_and_missing_eos_penalty():
    eos, pad = 102, 0
    responses = torch.tensor([[5, 102, 7, 8], [5, 6, 7, 8], [102, 9, 102, 9]])
    out, mask, has_eos = truncate_after_eos(responses, eos, pad)
    assert out.tolist() == [[5, 102, 0, 0], [5, 6, 7, 8], [102, 0, 0, 0]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert has_eos.tolist() == [True, False, True]
    scores = torch.tensor([1.0, 2.0, 3.0])
    assert apply_missing_eos_penalty(scores, has_eos, -1.0).tolist() == [1.0, -1.0, 3.0]
    assert apply_missing_eos_penalty(scores, has_eos, None).tolist() == [1.0, 2.0, 3.0]


def test_prompt_indices_are_epochs_over_permutations():
    n, bs = 10, 4
    seen = [i for step in range(1, 6) for i in prompt_indices(step, bs, n, seed=3)]  # 20 = 2 epochs
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert seen[:10] != seen[10:]                                   # reshuffled per epoch
    assert prompt_indices(3, bs, n, seed=3) == seen[8:12]           # depends on the step only


def test_config_rejects_unknown_keys_and_bad_ranges():
    assert PPOConfig.from_dict({}).num_steps == math.ceil(3200 / 32)
    with pytest.raises(PipelineError, match=r"unknown key\(s\) \['cliprnge'\].*cliprange"):
        PPOConfig.from_dict({"cliprnge": 0.2})
    with pytest.raises(PipelineError, match=r"ppo.hparams.lam: got 1.5, expected <= 1"):
        PPOConfig.from_dict({"lam": 1.5})
    with pytest.raises(PipelineError, match="ppo.hparams.mini_batch_size: got 5, expected a divisor of batch_size=32"):
        PPOConfig.from_dict({"batch_size": 32, "mini_batch_size": 5})
    with pytest.raises(PipelineError, match="ppo.hparams.value_init_path"):
        PPOConfig.from_dict({"value_init": "reward"})
    with pytest.raises(PipelineError, match=r"ppo.hparams.lora: unknown key\(s\) \[.rank.\]"):
        PPOConfig.from_dict({"lora": {"enabled": True, "rank": 4}})
    assert PPOConfig.from_dict({"lora": {"enabled": True, "r": 4}}).lora.r == 4


def test_entropy_bonus_adds_minus_logprob_per_token():
    from rlhf_pipeline.ppo.losses import per_token_rewards

    logp = torch.tensor([[-1.0, -2.0, -0.5]])
    ref = torch.tensor([[-1.5, -2.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    rewards, kl_pen = per_token_rewards(torch.tensor([2.0]), logp, ref, mask, kl_coef=0.1, entropy_coef=0.01)
    # token 0: -0.1 * 0.5 + 0.01 * 1.0 = -0.04; token 1: -0.1 * 0 + 0.01 * 2.0 + score 2.0 = 2.02; token 2 masked
    torch.testing.assert_close(rewards, torch.tensor([[-0.04, 2.02, 0.0]]))
    torch.testing.assert_close(kl_pen, torch.tensor([[-0.05, 0.0, 0.0]]))
    no_bonus, _ = per_token_rewards(torch.tensor([2.0]), logp, ref, mask, kl_coef=0.1)
    torch.testing.assert_close(no_bonus, torch.tensor([[-0.05, 2.0, 0.0]]))


def test_token_logprobs_and_entropy_by_hand():
    # logits [0, ln 3]: softmax [1/4, 3/4]; logprob of token 1 = ln 3/4; entropy = -(1/4 ln 1/4 + 3/4 ln 3/4)
    logits = torch.tensor([[0.0, math.log(3.0)]])
    lp, ent = logprobs_and_entropy(logits, torch.tensor([1]))
    assert lp.item() == pytest.approx(math.log(0.75), abs=1e-6)
    assert ent.item() == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), abs=1e-6)



def test_row_blocks_change_no_number(monkeypatch):
    """logprobs_and_entropy and logprobs_of work on blocks of rows (here 1 KiB: 2 rows of 97); every number is
    the unblocked one, bit for bit, for row counts below, at and between block multiples."""
    import functools

    from rlhf_pipeline.ppo import losses, rollout

    assert [(b.start, b.stop) for b in losses.row_blocks(torch.zeros(5, 97), block_bytes=1024)] == [
        (0, 2), (2, 4), (4, 6)]
    # defaults: 1 MiB on CPU (8 rows of a 30k float32 vocabulary), 256 MiB elsewhere (few large kernels)
    assert losses.row_blocks(torch.empty(20, 30522))[0] == slice(0, 8)
    assert losses.row_blocks(torch.empty(4096, 30522, device="meta"))[0] == slice(0, 2**28 // (30522 * 4))
    small = functools.partial(losses.row_blocks, block_bytes=1024)
    monkeypatch.setattr(losses, "row_blocks", small)
    monkeypatch.setattr(rollout, "row_blocks", small)
    torch.manual_seed(1)
    for n in (1, 2, 5, 8):
        logits, tokens = torch.randn(n, 97) * 4, torch.randint(0, 97, (n,))
        logp = torch.log_softmax(logits, -1)
        want_lp = logp.gather(-1, tokens[:, None]).squeeze(-1)
        want_ent = -(logp.exp() * logp).sum(-1)
        lp, ent = logprobs_and_entropy(logits, tokens)
        assert torch.equal(lp, want_lp) and torch.equal(ent, want_ent)
        assert torch.equal(rollout.logprobs_of(logits, tokens), want_lp)


def test_logprobs_and_entropy_equal_log_softmax_gather_entropy_and_their_gradient():
    torch.manual_seed(0)
    logits = (torch.randn(2, 5, 97) * 4).requires_grad_(True)
    tokens = torch.randint(0, 97, (2, 5))
    weights = torch.randn(2, 5)
    lp, ent = logprobs_and_entropy(logits, tokens)
    (lp * weights).sum().backward()
    grad, logits.grad = logits.grad, None
    ref = torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).squeeze(-1)
    (ref * weights).sum().backward()
    torch.testing.assert_close(lp, ref)
    torch.testing.assert_close(ent, entropy_from_logits(logits.detach()))
    torch.testing.assert_close(grad, logits.grad)
    assert lp.requires_grad and not ent.requires_grad
    x = torch.randn(4, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: logprobs_and_entropy(x, torch.tensor([0, 6, 3, 3]))[0], (x,))
