"""GRPO, RLOO and online DPO on TRL's trainers (rlhf_pipeline.ppo.trl_optim): the settings they share with PPO,
what the reward function gets, the steps, the missing-EOS penalty, the files, and the settings refused."""

import json
import os
import signal
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from test_ppo_trainer import EVAL_PROMPTS, PROMPTS, FirstHalfReward, NoveltyReward, policy_dir, small_cfg  # noqa: F401

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import load_tokenizer
from rlhf_pipeline.ppo.trajectories import read_trajectories
from rlhf_pipeline.ppo.trl_optim import RunReward, TRLRun, trl_args, updates_per_step
from rlhf_pipeline.runs import PPOSection

torch.set_num_threads(1)


def cfg(**kw):
    return small_cfg(**{"adaptive_kl": False, "whiten_rewards": False, "missing_eos_penalty": None, **kw})


# ---- settings ----------------------------------------------------------------------------------------------

def test_shared_settings_map_to_trl_keywords_by_hand(tmp_path):
    c = small_cfg(adaptive_kl=False, whiten_rewards=False, total_episodes=100, batch_size=32, mini_batch_size=8,
                  grad_accum=2, ppo_epochs=3, kl_coef=0.02, learning_rate=5e-6, temperature=0.7, max_new_tokens=12,
                  checkpoint_interval=5, seed=9, grpo={"num_generations": 8})
    args = trl_args("grpo", c, tmp_path, tmp_path / "ckpt")
    # 4 steps (ceil(100 / 32)); per step 32 / 8 = 4 mini-batches x 3 passes = 12 optimizer steps
    assert updates_per_step("grpo", c) == 12
    assert args["max_steps"] == 48 and args["save_steps"] == 60
    assert args["per_device_train_batch_size"] == 4 and args["gradient_accumulation_steps"] == 2
    assert args["steps_per_generation"] == 8  # 32 completions per generation = 4 prompts x 8 generations
    assert args["num_generations"] == 8 and args["num_iterations"] == 3 and args["epsilon"] == 0.2
    assert (args["beta"], args["learning_rate"], args["temperature"], args["max_completion_length"], args["seed"]) == \
        (0.02, 5e-6, 0.7, 12, 9)
    # online DPO: two completions per prompt, one pass: 32 / 8 = 4 optimizer steps per step of 16 prompts
    odpo = trl_args("online_dpo", c, tmp_path, tmp_path / "ckpt")
    assert updates_per_step("online_dpo", c) == 4 and odpo["max_steps"] == 16
    assert odpo["per_device_train_batch_size"] == 2 and odpo["max_new_tokens"] == 12 and odpo["beta"] == 0.02
    # the TRL configs accept them
    from trl import GRPOConfig
    from trl.experimental.online_dpo import OnlineDPOConfig

    assert GRPOConfig(**args).generation_batch_size == 32
    OnlineDPOConfig(**odpo)


@pytest.mark.parametrize("run, expected", [
    ({"optimizer": "grpo", "hparams": {"adaptive_kl": True}}, r"hparams\.adaptive_kl: got True, expected its "
     r"default False: optimizer grpo has no such setting \(PPO only\)"),
    ({"optimizer": "rloo", "hparams": {"vf_coef": 0.5}}, r"hparams\.vf_coef: .*optimizer rloo"),
    ({"optimizer": "rloo", "hparams": {"entropy_coef": 0.01}}, r"hparams\.entropy_coef: .*\(grpo does\)"),
    ({"optimizer": "grpo", "hparams": {"grpo": {"num_generations": 3}}},
     r"hparams\.grpo\.num_generations: got 3, expected a divisor of batch_size=32"),
    ({"optimizer": "online_dpo", "hparams": {"batch_size": 6, "mini_batch_size": 3}},
     r"hparams\.mini_batch_size: got 3, expected a multiple of 2 \* grad_accum = 2"),
    ({"optimizer": "dpo"}, r"ppo\.runs\.x\.optimizer: got 'dpo', expected one of \['ppo', 'grpo', 'rloo', "
     r"'online_dpo'\]"),
])
def test_settings_an_optimiser_cannot_honour_are_refused_in_one_line(run, expected):
    with pytest.raises(PipelineError, match=r"^config ppo\.runs\.x\." + expected.removeprefix(r"ppo\.runs\.x\.")):
        PPOSection.from_dict({"runs": {"x": {"rm_seeds": [1], **run}}}, "ppo").run_config("x")


def test_a_runs_job_config_holds_only_its_optimisers_sections():
    section = PPOSection.from_dict({"hparams": {"grpo": {"num_generations": 8}},
                                    "runs": {"p": {"rm_seeds": [1]},
                                             "g": {"rm_seeds": [1], "optimizer": "GRPO",
                                                   "hparams": {"grpo": {"scale_rewards": "none"}}}}}, "ppo")
    g, p = section.run_config("g").job_config(), section.run_config("p").job_config()
    assert g["optimizer"] == "grpo" and g["hparams"]["grpo"] == {
        "num_generations": 8, "scale_rewards": "none", "loss_type": "dapo", "epsilon_high": None,
        "mask_truncated_completions": False}  # the run's own grpo keys merged onto the shared ones
    assert not {"rloo", "online_dpo"} & set(g["hparams"]) and "vllm" in g["hparams"]
    assert not {"grpo", "rloo", "online_dpo", "vllm"} & set(p["hparams"])


# ---- the reward function ---------------------------------------------------------------------------------

class Hooks:
    def __init__(self):
        self.rollouts = []

    def on_rollout(self, rollout):
        self.rollouts.append(rollout)


def test_run_reward_penalises_missing_eos_and_groups_calls_into_steps():
    tok = load_tokenizer("minilm")
    eos = tok.eos_token_id
    hooks = Hooks()
    reward = RunReward(lambda prompts, responses: torch.tensor([float(len(r)) for r in responses]), tok,
                       cfg(batch_size=4, mini_batch_size=2, missing_eos_penalty=-3.0),
                       SimpleNamespace(num_processes=1, is_main_process=True), [hooks])
    ids = [[7, 8, eos], [7, 8], [9, eos], [9]]
    assert reward(["a", "a"], ["xy", "xy"], ids[:2]) == [2.0, -3.0]  # without EOS: the penalty, not the score
    assert hooks.rollouts == []  # half a step so far
    assert reward(["b", "b"], ["z", "z"], ids[2:]) == [1.0, -3.0]
    (r,) = hooks.rollouts
    assert r.step == 1 and r.prompts == ["a", "a", "b", "b"] and r.response_ids == ids
    assert r.score == [2.0, 2.0, 1.0, 1.0] and r.penalized_score == [2.0, -3.0, 1.0, -3.0]
    assert reward.stats[1] == {"score": 1.5, "penalized_score": -0.75, "response_length": 2.0, "eos_share": 0.5}


def test_the_reward_gets_exactly_the_completions_trl_generated(policy_dir, tmp_path):  # noqa: F811
    c = cfg(total_episodes=24, batch_size=8, mini_batch_size=4, grad_accum=2, eval_interval=2, checkpoint_interval=2,
            grpo={"num_generations": 4})
    run = TRLRun("grpo", c, policy_dir, FirstHalfReward(), PROMPTS, EVAL_PROMPTS, tmp_path / "out", tmp_path / "ckpt",
                 None, keep_calls=True)
    summary = run.train()
    assert summary["steps"] == 3 and len(run.reward.calls) == 3  # one generation batch per step
    tok = run.tok
    traj = read_trajectories(tmp_path / "out" / "trajectories")
    for step, (prompts, completions, ids) in enumerate(run.reward.calls, start=1):
        assert len(completions) == 8 and set(prompts) <= set(PROMPTS)
        assert [prompts[i] for i in range(0, 8, 4)] == prompts[::4] and all(
            len(set(prompts[i:i + 4])) == 1 for i in range(0, 8, 4))  # 2 prompts x 4 generations, grouped
        assert completions == tok.batch_decode(ids, skip_special_tokens=True)
        assert all(0 < len(x) <= c.max_new_tokens for x in ids)
        logged = traj[traj["step"] == step]
        assert list(logged["response"]) == completions and [list(x) for x in logged["response_ids"]] == ids
        assert list(logged["score"]) == pytest.approx(FirstHalfReward()(prompts, completions).tolist())
    log = pd.read_csv(tmp_path / "out" / "train_log.csv")
    assert list(log["step"]) == [1, 2, 3] and list(log["episodes"]) == [8, 16, 24]
    assert log["score"].tolist() == pytest.approx([float(FirstHalfReward()(p, r).mean()) for p, r, _ in
                                                   run.reward.calls])
    assert {"trl/kl", "trl/entropy", "trl/reward"} <= set(log.columns) and "trl/loss" not in log.columns
    assert log[["policy_loss", "lr", "grad_norm", "trl/kl"]].notna().all().all()
    assert log["lr"].is_monotonic_decreasing  # the linear schedule, read off TRL's last optimizer step of each step
    assert sorted(p.name for p in (tmp_path / "out" / "eval").iterdir()) == [
        "step000000.jsonl", "step000002.jsonl", "step000003.jsonl"]
    info = json.loads((tmp_path / "out" / "trajectories" / "_run.json").read_text())
    assert info["optimizer"] == "grpo"
    assert not list((tmp_path / "ckpt").glob("checkpoint-*"))


def test_a_lora_run_evaluates_against_the_policy_with_adapters_off(policy_dir, tmp_path):  # noqa: F811
    c = cfg(total_episodes=8, batch_size=8, mini_batch_size=8, grad_accum=1, eval_interval=1,
            lora={"enabled": True, "r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    straight = TRLRun("rloo", cfg(total_episodes=8, batch_size=8, mini_batch_size=8, grad_accum=1, eval_interval=1),
                      policy_dir, FirstHalfReward(), PROMPTS, EVAL_PROMPTS, tmp_path / "full", None, None)
    lora = TRLRun("rloo", c, policy_dir, FirstHalfReward(), PROMPTS, EVAL_PROMPTS, tmp_path / "lora", None, None)
    assert lora.evaluation.ref_policy is None  # no second copy: the adapters are switched off instead
    straight.train()
    lora.train()
    full, adapted = ([json.loads(line) for line in (tmp_path / d / "eval" / "step000000.jsonl").open()]
                     for d in ("full", "lora"))
    # fresh adapters change nothing: the same samples and scores as the plain policy, KL 0 up to rounding
    assert [{k: v for k, v in r.items() if k != "kl"} for r in full] == \
        [{k: v for k, v in r.items() if k != "kl"} for r in adapted]
    assert [r["kl"] for r in adapted] == pytest.approx([r["kl"] for r in full], abs=1e-5)
    merged = (tmp_path / "lora" / "model" / "model.safetensors")
    assert merged.is_file() and not (tmp_path / "lora" / "model" / "adapter_config.json").exists()


def test_a_stateful_reward_resumes_with_its_state_after_sigterm(policy_dir, tmp_path):  # noqa: F811
    """SIGTERM inside step 3's generation: the run finishes step 3, checkpoints it with the reward's state (its
    novelty history) and exits 143; a new run resumes there and ends with the uninterrupted run's log, terms and
    reward state."""
    class TermInStep3(NoveltyReward):
        steps = 0

        def score_batch(self, prompts, responses, training):
            if training:
                self.steps += 1
                if self.steps == 3:
                    os.kill(os.getpid(), signal.SIGTERM)
            return super().score_batch(prompts, responses, training)

    c = cfg(total_episodes=40, batch_size=8, mini_batch_size=4, grad_accum=1, eval_interval=2, checkpoint_interval=10,
            grpo={"num_generations": 4})
    straight = NoveltyReward()
    TRLRun("grpo", c, policy_dir, straight, PROMPTS, EVAL_PROMPTS, tmp_path / "a", tmp_path / "ca", None).train()
    with pytest.raises(SystemExit) as exc:
        TRLRun("grpo", c, policy_dir, TermInStep3(), PROMPTS, EVAL_PROMPTS, tmp_path / "b", tmp_path / "cb",
               None).train()
    assert exc.value.code == 143
    (ckpt,) = (tmp_path / "cb").glob("checkpoint-*")
    assert ckpt.name == "checkpoint-6"  # step 3 of 2 optimizer steps each, though checkpoint_interval is 10
    assert (ckpt / "files" / "reward_state.pt").is_file()
    resumed = NoveltyReward()
    TRLRun("grpo", c, policy_dir, resumed, PROMPTS, EVAL_PROMPTS, tmp_path / "b", tmp_path / "cb", None).train()
    assert resumed.state_dict() == straight.state_dict()
    a, b = (pd.read_csv(tmp_path / d / "train_log.csv").drop(columns=["time", "trl/step_time"]) for d in "ab")
    assert len(a) == 5 and {"term_first_half", "term_repeat"} <= set(a.columns)
    pd.testing.assert_frame_equal(a, b)
    for name in ("step000000.jsonl", "step000002.jsonl", "step000004.jsonl", "step000005.jsonl"):
        assert (tmp_path / "b" / "eval" / name).read_text() == (tmp_path / "a" / "eval" / name).read_text()
