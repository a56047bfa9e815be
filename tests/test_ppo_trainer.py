"""PPO end to end on a tiny Llama: output files, learning, exact resume, NaN abort, SIGTERM."""

import csv
import json
import math
import os
import random
import signal

import pytest
import torch
from safetensors.torch import load_file

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.ppo import PPOConfig, train_ppo

torch.set_num_threads(1)

WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "kilo", "lima", "mike",
         "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "yankee",
         "zulu"]
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 2}


class FirstHalfReward:
    """Fraction of response words that start with a letter from a to m (a learnable reward).

    ``score_detail`` reports a two-member "ensemble": the fraction and half of it.
    """

    def __init__(self):
        self.calls = 0

    def __call__(self, prompts, responses):
        self.calls += 1
        return torch.tensor([sum(w[0] < "n" for w in r.split()) / max(1, len(r.split()))
                             for r in responses])

    def score_detail(self, prompts, responses):
        r = self(prompts, responses)
        members = torch.stack([r, r / 2])
        return {"members": members, "reward": members.mean(0), "variance": members.var(0)}


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    """A tiny Llama briefly fitted (plain LM loss) to sentences of NATO-alphabet words."""
    tok = load_tokenizer("minilm")
    model = load_causal_lm(None, tok, tiny=TINY, seed=0)
    rng = random.Random(0)
    enc = tok([" ".join(rng.choice(WORDS) for _ in range(10)) for _ in range(256)],
              return_tensors="pt", padding=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    for _ in range(40):
        idx = torch.randint(0, 256, (8,))
        ids, am = enc["input_ids"][idx], enc["attention_mask"][idx]
        model(input_ids=ids, attention_mask=am, labels=ids.masked_fill(am == 0, -100)).loss.backward()
        opt.step()
        opt.zero_grad()
    path = tmp_path_factory.mktemp("policy")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


PROMPTS = WORDS * 2
EVAL_PROMPTS = WORDS[:6]


def small_cfg(**kw):
    base = dict(total_episodes=4 * 8, batch_size=8, mini_batch_size=4, grad_accum=2, ppo_epochs=1,
                max_new_tokens=6, learning_rate=3e-3, eval_interval=2, eval_batch_size=8,
                checkpoint_interval=1, log_with="none", adaptive_kl=True, kl_target=1.0,
                kl_horizon=100, missing_eos_penalty=-1.0, whiten_rewards=True, seed=5)
    base.update(kw)
    return PPOConfig.from_dict(base)


def read_log(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_ppo_learns_and_writes_the_file_contract(policy_dir, tmp_path):
    cfg = PPOConfig.from_dict(dict(total_episodes=12 * 16, batch_size=16, mini_batch_size=8,
                                   max_new_tokens=8, learning_rate=3e-3, kl_coef=0.01,
                                   eval_interval=5, checkpoint_interval=5, eval_batch_size=4))
    out, ck = tmp_path / "out", tmp_path / "ckpt"
    result = train_ppo(cfg, policy_dir, FirstHalfReward(), PROMPTS, EVAL_PROMPTS, out, ck)

    evals = sorted(p.name for p in (out / "eval").iterdir())
    assert evals == ["step000000.jsonl", "step000005.jsonl", "step000010.jsonl", "step000012.jsonl"]
    rows0 = [json.loads(line) for line in (out / "eval" / "step000000.jsonl").read_text().splitlines()]
    assert [r["prompt"] for r in rows0] == EVAL_PROMPTS
    assert set(rows0[0]) == {"step", "prompt", "response", "proxy_scores", "proxy_reward",
                             "ensemble_variance", "kl", "response_length"}
    for r in rows0:
        assert r["step"] == 0 and len(r["proxy_scores"]) == 2
        assert r["proxy_reward"] == pytest.approx(sum(r["proxy_scores"]) / 2)
        assert abs(r["kl"]) < 1e-5                      # the initial policy IS the reference
        assert 1 <= r["response_length"] <= 8

    log = read_log(out / "train_log.csv")
    assert [int(r["step"]) for r in log] == list(range(1, 13))
    assert int(log[-1]["episodes"]) == 12 * 16
    assert float(log[0]["lr"]) == pytest.approx(3e-3)
    assert float(log[-1]["lr"]) == pytest.approx(3e-3 / 12)  # linear decay
    first = sum(float(r["score"]) for r in log[:3]) / 3
    last = sum(float(r["score"]) for r in log[-3:]) / 3
    assert last > first + 0.2, (first, last)
    final_eval = [json.loads(line) for line in (out / "eval" / "step000012.jsonl").read_text().splitlines()]
    assert sum(r["kl"] for r in final_eval) > 0          # the policy moved away from the reference

    from transformers import AutoModelForCausalLM, AutoTokenizer
    assert AutoModelForCausalLM.from_pretrained(out / "model") is not None
    assert AutoTokenizer.from_pretrained(out / "model").eos_token == "[SEP]"
    assert any((out / "tb").rglob("events.out.tfevents*"))
    assert sorted(p.name for p in ck.iterdir()) == ["step000010", "step000012"]  # the last 2 kept
    assert result["steps"] == 12


def test_resume_after_crash_equals_uninterrupted_run(policy_dir, tmp_path):
    cfg = small_cfg()
    straight = tmp_path / "straight"
    train_ppo(cfg, policy_dir, FirstHalfReward(), PROMPTS, EVAL_PROMPTS, straight / "out", straight / "ckpt")

    class CrashAtStep3(FirstHalfReward):
        # calls: eval step 0, train step 1, train step 2, eval step 2, train step 3 -> crash
        def __call__(self, prompts, responses):
            if self.calls == 4:
                raise RuntimeError("simulated crash")
            return super().__call__(prompts, responses)

    run = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_ppo(cfg, policy_dir, CrashAtStep3(), PROMPTS, EVAL_PROMPTS, run / "out", run / "ckpt")
    assert sorted(p.name for p in (run / "ckpt").iterdir()) == ["step000001", "step000002"]
    # Corrupt the newest checkpoint: the resume must skip it and restart from step 1.
    policy_pt = run / "ckpt" / "step000002" / "policy.pt"
    policy_pt.write_bytes(policy_pt.read_bytes()[:100])
    for p in (run / "out").rglob("*"):  # like Snakemake, which deletes a failed job's outputs
        if p.is_file():
            p.unlink()
    reward = FirstHalfReward()
    with pytest.warns(UserWarning, match="skipping invalid checkpoint .*step000002"):
        train_ppo(cfg, policy_dir, reward, PROMPTS, EVAL_PROMPTS, run / "out", run / "ckpt")
    assert reward.calls == 5  # steps 2-4 and evals 2, 4: it resumed from step 1, not from scratch

    def without_time(rows):
        return [{k: v for k, v in r.items() if k != "time"} for r in rows]
    assert without_time(read_log(run / "out" / "train_log.csv")) == \
        without_time(read_log(straight / "out" / "train_log.csv"))
    for name in ["step000000.jsonl", "step000002.jsonl", "step000004.jsonl"]:
        assert (run / "out" / "eval" / name).read_text() == (straight / "out" / "eval" / name).read_text()
    a = load_file(run / "out" / "model" / "model.safetensors")
    b = load_file(straight / "out" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_nan_score_aborts_with_the_batch_saved(policy_dir, tmp_path):
    class NanAtStep2(FirstHalfReward):
        def __call__(self, prompts, responses):
            r = super().__call__(prompts, responses)
            return r * float("nan") if self.calls == 3 else r  # calls: eval 0, step 1, step 2

    with pytest.raises(PipelineError, match=r"PPO step 2: non-finite score"):
        train_ppo(small_cfg(), policy_dir, NanAtStep2(), PROMPTS, EVAL_PROMPTS,
                  tmp_path / "out", tmp_path / "ckpt")
    bad = [json.loads(line) for line in (tmp_path / "ckpt" / "nan_batch_step2.jsonl").read_text().splitlines()]
    assert len(bad) == 8 and {"prompt", "response", "score"} <= set(bad[0])
    assert (tmp_path / "ckpt" / "step000001").is_dir()
    assert not (tmp_path / "out" / "model").exists()


def strict_jsonl(path):
    """The rows of a JSONL file parsed as strict JSON (the NaN / Infinity json.dumps writes by default refused)."""
    def refuse(token):
        raise ValueError(f"{path}: not JSON: {token}")
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def test_nan_proxy_reward_at_an_eval_step_aborts_with_the_eval_batch_saved(policy_dir, tmp_path):
    class NanAtEval2(FirstHalfReward):
        """Training scores stay finite; the 2nd eval batch of eval step 2 gets a NaN for its last sample."""

        def __init__(self):
            super().__init__()
            self.detail_calls = 0

        def score_detail(self, prompts, responses):
            self.detail_calls += 1  # eval batches of 4: step 0 -> calls 1, 2; step 2 -> calls 3, 4
            d = super().score_detail(prompts, responses)
            if self.detail_calls == 4:
                d["members"][0, -1] = float("nan")
                d = {"members": d["members"], "reward": d["members"].mean(0), "variance": d["members"].var(0)}
            return d

    out, ck = tmp_path / "out", tmp_path / "ckpt"
    with pytest.raises(PipelineError) as exc:
        train_ppo(small_cfg(eval_batch_size=4), policy_dir, NanAtEval2(), PROMPTS, EVAL_PROMPTS, out, ck)
    bad_path = ck / "nan_eval_batch_step2.jsonl"
    assert str(exc.value) == (
        f"PPO eval at step 2: non-finite proxy reward, proxy member scores, ensemble variance in 1 of 2 samples "
        f"of an eval batch; eval batch saved to {bad_path}; no eval file written for step 2; last good "
        f"checkpoint kept in {ck}")
    bad = strict_jsonl(bad_path)
    assert [r["prompt"] for r in bad] == EVAL_PROMPTS[4:6]  # the offending eval batch, nothing else
    assert set(bad[0]) == {"prompt", "response", "score", "proxy_scores", "ensemble_variance", "kl"}
    assert bad[1]["score"] == "nan" and bad[1]["proxy_scores"][0] == "nan" and bad[1]["ensemble_variance"] == "nan"
    assert isinstance(bad[0]["score"], float) and isinstance(bad[1]["kl"], float)
    assert bad[0]["score"] == pytest.approx(sum(bad[0]["proxy_scores"]) / 2)
    # no eval file (partial or temporary) for step 2; step 0's is strict JSON; step 1 is the last checkpoint
    assert sorted(p.name for p in (out / "eval").iterdir()) == ["step000000.jsonl"]
    assert len(strict_jsonl(out / "eval" / "step000000.jsonl")) == len(EVAL_PROMPTS)
    assert sorted(p.name for p in ck.iterdir()) == ["nan_eval_batch_step2.jsonl", "step000001"]
    assert not (out / "model").exists()


@pytest.mark.parametrize("what", ["reward", "kl"])
def test_non_finite_eval_at_step_0_aborts_before_any_checkpoint(policy_dir, tmp_path, monkeypatch, what):
    calls = []

    def reward(prompts, responses):  # a plain callable: no score_detail; call 1 is the eval at step 0
        calls.append(len(responses))
        r = FirstHalfReward()(prompts, responses)
        if what == "reward" and len(calls) == 1:
            r[2] = float("inf")
        return r

    if what == "kl":
        from rlhf_pipeline.ppo import sampling  # the eval's KL (shared by every optimiser)
        monkeypatch.setattr(sampling, "kl_k1", lambda logp, ref_logp: torch.full_like(logp, float("nan")))
    out, ck = tmp_path / "out", tmp_path / "ckpt"
    expected = {"reward": r"non-finite proxy reward, proxy member scores in 1 of 6 ",
                "kl": r"non-finite KL in 6 of 6 "}[what]
    with pytest.raises(PipelineError, match=r"^PPO eval at step 0: " + expected):
        train_ppo(small_cfg(), policy_dir, reward, PROMPTS, EVAL_PROMPTS, out, ck)
    assert calls == [6]  # it stopped at the eval, before any training step
    bad = strict_jsonl(ck / "nan_eval_batch_step0.jsonl")
    assert [r["prompt"] for r in bad] == EVAL_PROMPTS
    if what == "reward":
        assert [r["score"] == "inf" for r in bad] == [False, False, True, False, False, False]
        assert bad[2]["proxy_scores"] == ["inf"] and bad[2]["ensemble_variance"] == 0.0
    else:
        assert all(r["kl"] == "nan" and isinstance(r["score"], float) for r in bad)
    assert sorted(p.name for p in ck.iterdir()) == ["nan_eval_batch_step0.jsonl"]
    assert not (out / "eval").exists() or not any((out / "eval").iterdir())


def test_sigterm_checkpoints_the_current_step_and_exits_nonzero(policy_dir, tmp_path):
    class TermDuringStep2(FirstHalfReward):
        def __call__(self, prompts, responses):
            if self.calls == 2:  # calls: eval 0, step 1, step 2
                os.kill(os.getpid(), signal.SIGTERM)
            return super().__call__(prompts, responses)

    cfg = small_cfg(checkpoint_interval=10)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exc:
        train_ppo(cfg, policy_dir, TermDuringStep2(), PROMPTS, EVAL_PROMPTS, tmp_path / "out", tmp_path / "ckpt")
    assert exc.value.code == 128 + signal.SIGTERM
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["step000002"]
    assert len(read_log(tmp_path / "out" / "train_log.csv")) == 2
    assert signal.getsignal(signal.SIGTERM) == before  # handler restored


def test_lora_policy_and_value_from_a_reward_model_dir(policy_dir, tmp_path):
    # Any causal LM over the same vocabulary can initialise the value backbone; the policy dir is one.
    cfg = small_cfg(total_episodes=2 * 8, lora={"enabled": True, "r": 4, "alpha": 8},
                    value_init="reward", value_init_path=policy_dir)
    train_ppo(cfg, policy_dir, FirstHalfReward(), PROMPTS, EVAL_PROMPTS, tmp_path / "out", tmp_path / "ckpt")
    step0 = [json.loads(line) for line in (tmp_path / "out" / "eval" / "step000000.jsonl").read_text().splitlines()]
    assert all(abs(r["kl"]) < 1e-5 for r in step0)  # reference = base with adapters disabled
    merged = load_file(tmp_path / "out" / "model" / "model.safetensors")
    assert not any("lora" in k for k in merged)      # adapters merged into a plain causal LM
    base = load_file(os.path.join(policy_dir, "model.safetensors"))
    assert any(not torch.equal(merged[k], base[k]) for k in base)


def test_value_init_from_an_encoder_is_refused(policy_dir, tmp_path):
    from rlhf_pipeline.models import minilm_path
    cfg = small_cfg(value_init="reward", value_init_path=minilm_path())
    with pytest.raises(PipelineError, match="ppo.value_init_path: .*not a causal decoder"):
        train_ppo(cfg, policy_dir, FirstHalfReward(), PROMPTS, EVAL_PROMPTS, tmp_path / "out", tmp_path / "ckpt")


# ---- hooks: reward terms, reward state, rollout hooks (rlhf_pipeline.ppo.hooks) --------------------------

class NoveltyReward:
    """A stateful reward with terms: first-half fraction minus 0.1 per earlier response that began with
    the same word (a history, like red-teaming's novelty terms); evaluation leaves the history alone."""

    def __init__(self):
        self.calls = 0
        self.history: dict[str, int] = {}

    def score_batch(self, prompts, responses, training):
        from rlhf_pipeline.ppo.hooks import ScoredBatch

        self.calls += 1
        first = FirstHalfReward()(prompts, responses).tolist()
        keys = [(r.split() or [""])[0] for r in responses]
        repeat = [self.history.get(k, 0) for k in keys]
        if training:
            for k in keys:
                self.history[k] = self.history.get(k, 0) + 1
        score = [f - 0.1 * n for f, n in zip(first, repeat)]
        return ScoredBatch(score, {"first_half": first, "repeat": repeat}, {"shout": [r.upper() for r in responses]})

    def __call__(self, prompts, responses):
        return self.score_batch(prompts, responses, training=True).score

    def state_dict(self):
        return {"history": dict(self.history), "calls": self.calls}

    def load_state_dict(self, state):
        self.history, self.calls = dict(state["history"]), state["calls"]


class RecordingHook:
    """Keeps every rollout and a per-step file; on_resume drops the steps a resumed run redoes."""

    def __init__(self, path):
        self.path, self.rollouts, self.resumed_at = path, [], []
        path.parent.mkdir(parents=True, exist_ok=True)

    def on_resume(self, step):
        self.resumed_at.append(step)
        kept = [line for line in (self.path.read_text().splitlines() if self.path.exists() else [])
                if json.loads(line)["step"] <= step]
        self.path.write_text("".join(line + "\n" for line in kept))

    def on_rollout(self, rollout):
        self.rollouts.append(rollout)
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": rollout.step, "responses": rollout.responses, "score": rollout.score}) + "\n")

    def on_checkpoint(self, step):
        pass


def test_reward_terms_extras_and_rollout_hooks(policy_dir, tmp_path):
    cfg = small_cfg(adaptive_kl=False, kl_coef=0.1, whiten_rewards=False, missing_eos_penalty=None)
    hook = RecordingHook(tmp_path / "rollouts.jsonl")
    train_ppo(cfg, policy_dir, NoveltyReward(), PROMPTS, EVAL_PROMPTS, tmp_path / "out", tmp_path / "ckpt",
              hooks=[hook])
    log = read_log(tmp_path / "out" / "train_log.csv")
    assert list(log[0])[-2:] == ["term_first_half", "term_repeat"]
    assert hook.resumed_at == [0] and [r.step for r in hook.rollouts] == [1, 2, 3, 4]
    for r, row in zip(hook.rollouts, log):
        assert len(r.responses) == 8 and len(r.terms["repeat"]) == 8 and r.extras["shout"] == [x.upper()
                                                                                              for x in r.responses]
        assert float(row["term_repeat"]) == pytest.approx(sum(r.terms["repeat"]) / 8)
        assert float(row["score"]) == pytest.approx(sum(r.score) / 8, abs=1e-6)
        for i in range(8):
            n = len(r.response_ids[i])
            assert n >= 1 and len(r.logprobs[i]) == len(r.ref_logprobs[i]) == len(r.values[i]) == len(r.kl[i]) == n
            assert r.kl[i] == pytest.approx([a - b for a, b in zip(r.logprobs[i], r.ref_logprobs[i])], abs=1e-6)
            shaped = [-0.1 * k for k in r.kl[i]]
            shaped[-1] += r.penalized_score[i]
            assert r.rewards[i] == pytest.approx(shaped, abs=1e-5)  # KL penalty per token, score at the last
    assert any(x > 0 for r in hook.rollouts[1:] for x in r.terms["repeat"])  # the history is used
    rows = [json.loads(line) for line in (tmp_path / "out" / "eval" / "step000004.jsonl").read_text().splitlines()]
    assert {"term_first_half", "term_repeat", "shout"} <= set(rows[0])


def test_stateful_reward_and_hooks_resume_exactly(policy_dir, tmp_path):
    cfg = small_cfg()
    straight = tmp_path / "straight"
    train_ppo(cfg, policy_dir, NoveltyReward(), PROMPTS, EVAL_PROMPTS, straight / "out", straight / "ckpt",
              hooks=[RecordingHook(straight / "rollouts.jsonl")])

    class CrashAtStep3(NoveltyReward):
        def score_batch(self, prompts, responses, training):
            if training and len(self.history) and self.calls == 4:  # eval 0, steps 1-2, eval 2, step 3
                raise RuntimeError("simulated crash")
            return super().score_batch(prompts, responses, training)

    run = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_ppo(cfg, policy_dir, CrashAtStep3(), PROMPTS, EVAL_PROMPTS, run / "out", run / "ckpt",
                  hooks=[RecordingHook(run / "rollouts.jsonl")])
    hook = RecordingHook(run / "rollouts.jsonl")
    with open(hook.path, "a") as f:  # a step logged after the last checkpoint: the resume redoes it
        f.write(json.dumps({"step": 3, "responses": [], "score": []}) + "\n")
    train_ppo(cfg, policy_dir, NoveltyReward(), PROMPTS, EVAL_PROMPTS, run / "out", run / "ckpt", hooks=[hook])
    assert hook.resumed_at == [2]  # the history of steps 1-2 came back from the checkpoint
    assert (run / "rollouts.jsonl").read_text() == (straight / "rollouts.jsonl").read_text()

    def without_time(rows):
        return [{k: v for k, v in r.items() if k != "time"} for r in rows]
    assert without_time(read_log(run / "out" / "train_log.csv")) == \
        without_time(read_log(straight / "out" / "train_log.csv"))


# Step 1 of small_cfg(seed=5) on the fixture policy, recorded on main before the rollout reused the sampling
# pass's logits (commit 6131d6c; 1 thread): the speed work must not change what PPO computes.
STEP1_BEFORE_SPEEDUP = {
    "step1": {"step": 1.0, "episodes": 8.0, "score": 0.5645833611488342, "rlhf_reward": 0.5645833611488342,
              "kl": 0.0, "kl_k3": 0.0, "kl_coef": 0.05, "entropy": 3.2013262510299683,
              "policy_loss": 0.01597415655851364, "value_loss": 0.888298898935318,
              "approxkl": 0.006417866796255112, "clipfrac": 0.0625, "vf_clipfrac": 0.2291666641831398, "lr": 0.003,
              "grad_norm": 1.7101719379425049, "response_length": 12.0},
    "eval_kl": [1.1249582767486572, -1.255664587020874, 1.2316052913665771, 0.9360690116882324,
                0.17665958404541016, -0.6584517955780029],
    "eval_responses": ["hotel charlie papa papa alpha victor mike bravo lima november papa delta",
                       "whiskey oscar victor mike fox fox foxtro yankee victor yankee papa",
                       "india sierra golf deltat limat yankee papa victor delta delta",
                       "victor hotel yankee yankee romeo uniform november charlie whiskey yankee india india",
                       "romeo papa uniform oscar quebec romeo yankee november mike victor golflo",
                       "uniform indiatro limatro lima whiskey golf hotel november november mike"],
}


@pytest.mark.parametrize("from_sampling,threads", [(True, 1), (False, 1), (True, 2)])
def test_first_step_statistics_equal_the_recorded_ones(policy_dir, tmp_path, from_sampling, threads):
    """With 2 threads the sampling noise comes from the SamplingNoise worker: the same samples."""
    cfg = small_cfg(total_episodes=8, max_new_tokens=12, temperature=0.7, missing_eos_penalty=None,
                    logprobs_from_sampling=from_sampling)
    torch.set_num_threads(threads)
    try:
        train_ppo(cfg, policy_dir, FirstHalfReward(), PROMPTS, EVAL_PROMPTS, tmp_path / "out", tmp_path / "ckpt")
    finally:
        torch.set_num_threads(1)
    rows = read_log(tmp_path / "out" / "train_log.csv")
    evals = [json.loads(line) for line in (tmp_path / "out" / "eval" / "step000001.jsonl").read_text().splitlines()]
    got = {"step1": {k: float(v) for k, v in rows[0].items() if k != "time"},
           "eval_kl": [r["kl"] for r in evals], "eval_responses": [r["response"] for r in evals]}
    want = STEP1_BEFORE_SPEEDUP
    assert got["eval_responses"] == want["eval_responses"]  # the same samples: sampling consumed the same RNG
    assert got["step1"] == pytest.approx(want["step1"], rel=1e-4, abs=1e-6)
    # eval KL: a sum over 12 tokens of differences of logprobs (~3 nats each) under weights one AdamW step
    # from the start, so float32 rounding of the update shows at ~1e-5 absolute
    assert got["eval_kl"] == pytest.approx(want["eval_kl"], rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.7, 0), (1.3, 5)])
def test_sampling_pass_logprobs_equal_a_separate_forward(policy_dir, temperature, top_k):
    """The logprobs generate_responses takes from the sampling pass's raw logits equal response_logits +
    logprobs_of (a full forward over prompt + response) on every real response token, with top-k too (both
    are the full softmax of logits / temperature), and are 0 after generation stopped."""
    from transformers import AutoModelForCausalLM

    from rlhf_pipeline.ppo.rollout import (
        generate_responses,
        logprobs_of,
        response_logits,
        to_rows,
        tokenize_prompts,
        truncate_after_eos,
    )

    tok = load_tokenizer(policy_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(policy_dir).eval()
    q, qm = tokenize_prompts(tok, ["alpha", "bravo charlie delta echo", "golf hotel", "kilo"], 64)
    torch.manual_seed(0)
    responses, sampled = generate_responses(model, q, qm, max_new_tokens=10, temperature=temperature, top_k=top_k,
                                            pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                            return_logprobs=True)
    responses, mask, _ = truncate_after_eos(responses, tok.eos_token_id, tok.pad_token_id)
    with torch.no_grad():
        logits = response_logits(model, q, qm, responses, mask, temperature)
        forward = to_rows(logprobs_of(logits, responses[mask.bool()]), mask)
    assert mask.sum() > 8 and sampled.shape == forward.shape == responses.shape
    torch.testing.assert_close(sampled[mask.bool()], forward[mask.bool()], rtol=1e-5, atol=1e-5)
    assert not torch.equal(sampled, torch.zeros_like(sampled))


def test_sampled_logprobs_processor_hand_worked():
    """Step t's scores are read at the token step t sampled, which the processor sees at step t + 1 (or in
    finish); scores pass through unchanged; a generate that skipped it gives None (the forward fallback)."""
    from rlhf_pipeline.ppo.rollout import SampledLogprobs

    rec = SampledLogprobs(temperature=0.5)
    s0, s1 = torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([[1.0, 1.0]])
    assert rec(torch.tensor([[7]]), s0) is s0
    rec(torch.tensor([[7, 1]]), s1)  # token 1 sampled at step 0: softmax([0, 2 log 3]) = [1/10, 9/10]
    out = rec.finish(torch.tensor([[1, 0]]))  # token 0 at step 1: equal logits -> 1/2
    torch.testing.assert_close(out, torch.tensor([[math.log(0.9), math.log(0.5)]]))
    assert SampledLogprobs(1.0).finish(torch.tensor([[1, 0]])) is None


def test_sampling_noise_worker_changes_nothing(policy_dir, tmp_path, monkeypatch):
    """With 2 threads on CPU the sampling noise is drawn ahead by a worker (SamplingNoise), which also runs each
    chunk's reference and value forwards; the run equals one where generate samples and the forwards run in
    line: the same samples (eval files) and training statistics (to float rounding: the thread counts differ)."""
    from contextlib import contextmanager

    from rlhf_pipeline.ppo import rollout, trainer

    cfg = small_cfg(total_episodes=16)  # 2 steps, 2 chunks each
    torch.set_num_threads(2)
    try:
        used, aside = [], []
        original, run_aside = trainer._Run._sampling_noise, rollout.SamplingNoise.run_aside

        @contextmanager
        def spy(self, max_draws):
            with original(self, max_draws) as noise:
                used.append(noise is not None)
                yield noise
        monkeypatch.setattr(trainer._Run, "_sampling_noise", spy)
        monkeypatch.setattr(rollout.SamplingNoise, "run_aside", lambda self, fn, *a: aside.append(1) or run_aside(
            self, fn, *a))
        train_ppo(cfg, policy_dir, FirstHalfReward(), PROMPTS, EVAL_PROMPTS, tmp_path / "a", tmp_path / "a_ck")
        assert used and all(used) and len(aside) == 4  # every rollout and eval batch; 2 steps x 2 chunks aside
        assert torch.get_num_threads() == 2  # restored

        @contextmanager
        def none(self, max_draws):
            yield None
        monkeypatch.setattr(trainer._Run, "_sampling_noise", none)
        train_ppo(cfg, policy_dir, FirstHalfReward(), PROMPTS, EVAL_PROMPTS, tmp_path / "b", tmp_path / "b_ck")
    finally:
        torch.set_num_threads(1)
    a, b = (read_log(tmp_path / d / "train_log.csv") for d in "ab")
    evals = [[json.loads(line)["response"] for f in sorted((tmp_path / d / "eval").glob("*.jsonl"))
              for line in f.read_text().splitlines()] for d in "ab"]
    assert evals[0] == evals[1] and len(evals[0]) == 2 * len(EVAL_PROMPTS)  # steps 0 and 2
    for ra, rb in zip(a, b, strict=True):
        assert {k: float(v) for k, v in ra.items() if k != "time"} == pytest.approx(
            {k: float(v) for k, v in rb.items() if k != "time"}, rel=1e-4, abs=1e-5)
