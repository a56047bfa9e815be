"""The PPO debater (rlhf_pipeline.debate.ppo): its settings and where its checkpoint goes, the speech prompts
(the hf debater's turn-0 prompts), the reward on hand cases with the deterministic judge (0.5 + 0.1 x the
verified-quote difference), a few PPO steps whose reward is called on exactly the generated speeches, a killed
run resumed through the real CLI equal to an uninterrupted one, and the real debate_ppo rule on tiny settings."""

import csv
import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from debate_helpers import PROMPTS, QUESTIONS, ROUND_PASSAGE, Q
from test_preemption import ENV, cli, interrupted, log_rows, same_weights

from rlhf_pipeline.debate.backends import build_debater, build_judge
from rlhf_pipeline.debate.backends.hf import chat_text
from rlhf_pipeline.debate.config import DebatePPORun, DebateSection, DebateTrainingConfig, ModelConfig
from rlhf_pipeline.debate.ppo import TERMS, JudgeReward, check_prompt_lengths, speech_prompts, train_debater_ppo
from rlhf_pipeline.debate.prompts import debater_prompt, load_prompts
from rlhf_pipeline.debate.quotes import verify_quotes
from rlhf_pipeline.debate.types import SpeechContext
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import read_jsonl, write_jsonl
from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.models.vocab import train_world_tokenizer
from rlhf_pipeline.ppo.trajectories import read_trajectories

ROOT = Path(__file__).resolve().parents[1]
LOADED = load_prompts(PROMPTS)
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
TWO = "<quote>Mira Tosk sailed to Oslo in 1802 to buy grain.</quote> and <quote>The mill was painted blue</quote>"
MISQUOTE = "<quote>Mira Tosk flew to the moon on a Tuesday.</quote>"


def section(**ppo) -> DebateSection:
    return DebateSection.from_dict({
        "judges": {"det": {"type": "deterministic"}}, "debaters": {"x": {"type": "deterministic"}},
        "tournaments": {"t": {"debaters": ["x"], "judge": "det"}},
        "training": {"source": "t", "judge": "det", "debater": {"max_new_tokens": 12}, "ppo": ppo}})


def run_config(opponent=True, **hparams) -> DebatePPORun:
    return DebatePPORun.from_dict({
        "judge": "det", "judges": {"det": {"type": "deterministic"}}, "prompts": str(PROMPTS),
        "opponent": {"type": "deterministic"} if opponent else None, "debater": {"prompt": "tiny", "max_new_tokens": 8},
        "settings": {"enabled": True, "seed": 5, "hparams": {
            "total_episodes": 32, "batch_size": 8, "mini_batch_size": 4, "ppo_epochs": 1, "max_new_tokens": 8,
            "max_prompt_length": 128, "learning_rate": 3e-3, "eval_interval": 2, "eval_batch_size": 8,
            "checkpoint_interval": 2, "log_with": "none", "seed": 3, **hparams}}})


# ------------------------------------------------------------------------------------------ settings


def test_off_by_default_and_when_on_ppo_is_a_checkpoint_of_the_strength_tournament():
    assert not DebateTrainingConfig().ppo.enabled
    off = section()
    assert [n for n, _ in off.training.checkpoints()] == ["sft", "dpo1", "dpo2"]
    on = section(enabled=True, hparams={"max_new_tokens": 12})
    assert on.training.checkpoints()[-1] == ("ppo", "results/debate/ppo/model")
    debaters, tournaments = on.training.derived()
    assert debaters["ppo"].model == "results/debate/ppo/model" and debaters["ppo"].max_new_tokens == 12
    assert tournaments["strength"].debaters[-2:] == ["ppo", "ppo_bo4"]
    assert tournaments["dpo/iter2"].debaters == ["dpo1"]  # self-play still plays checkpoint i - 1
    run = on.ppo_run()  # the opponent sft: the SFT checkpoint speaking as every checkpoint does
    assert run.format == "debate" and run.opponent.type == "hf" and run.opponent.model == "results/debate/sft/model"
    assert run.opponent.max_new_tokens == 12 and run.judges == {"det": on.judges["det"]}
    assert section(enabled=True, opponent="x", hparams={"max_new_tokens": 12}).ppo_run().opponent.type == \
        "deterministic"
    assert section(enabled=True, opponent=None, hparams={"max_new_tokens": 12}).ppo_run().format == "consultancy"


@pytest.mark.parametrize("ppo, expected", [
    ({"opponent": "zz"}, "config debate.training.ppo.opponent: got 'zz', expected null, a checkpoint ['dpo1', "
                         "'dpo2', 'sft'] or a debater of debate.debaters ['x']"),
    ({"init": "dpo3"}, "config debate.training.ppo.init: got 'dpo3', expected one of the checkpoints ['sft', 'dpo1', "
                       "'dpo2']"),
    ({"hparams": {"max_new_tokens": 99}}, "config debate.training.ppo.hparams.max_new_tokens: got 99, expected "
                                          "debater.max_new_tokens (12)"),
    ({"hparams": {"kl_coeff": 0.1}}, "config debate.training.ppo.hparams: unknown key(s) ['kl_coeff']"),
])
def test_bad_settings_are_one_line(ppo, expected):
    with pytest.raises(PipelineError) as e:
        section(enabled=True, **{"hparams": {"max_new_tokens": 12}, **ppo})
    assert expected in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------- prompts


@pytest.fixture(scope="module")
def minilm():
    return load_tokenizer("minilm")


@pytest.mark.parametrize("fmt", ["debate", "consultancy"])
def test_prompts_are_the_hf_debaters_first_speech_prompts(minilm, fmt):
    rows = speech_prompts(minilm, LOADED, "default", QUESTIONS[:2], fmt)
    assert [(q.id, side) for _, q, side in rows] == [("q00", 0), ("q00", 1), ("q01", 0), ("q01", 1)]
    for text, q, side in rows:
        ctx = SpeechContext(question=q, side=side, role="debater_b" if fmt == "debate" else "consultant", format=fmt,
                            turn=0, n_turns=1, visible=[], round_id="r", seed=9)
        assert text == chat_text(minilm, *debater_prompt(LOADED, "default", ctx))[0]
        assert q.answers[side] in text and q.passage in text
    assert rows[0][0] != speech_prompts(minilm, LOADED, "default", QUESTIONS[:1],
                                        "consultancy" if fmt == "debate" else "debate")[0][0]


def test_prompts_longer_than_max_prompt_length_stop_the_stage(minilm):
    texts = [p for p, _, _ in speech_prompts(minilm, LOADED, "tiny", QUESTIONS[:1], "debate")]
    n = len(minilm(texts[0])["input_ids"])
    settings = run_config(max_prompt_length=n).settings
    assert check_prompt_lengths(minilm, texts, settings, context=None) == n
    with pytest.raises(PipelineError, match=rf"hparams.max_prompt_length: got {n - 1}, expected at least {n}"):
        check_prompt_lengths(minilm, texts, run_config(max_prompt_length=n - 1).settings, context=None)
    with pytest.raises(PipelineError, match=r"hparams.max_new_tokens: got 8, expected at most 7"):
        check_prompt_lengths(minilm, texts, settings, context=n + 7)


# -------------------------------------------------------------------------------------------- reward


def reward(opponent=True, seed=5) -> JudgeReward:
    judge = build_judge("det", ModelConfig(type="deterministic"), LOADED)
    debater = build_debater("opp", ModelConfig(type="deterministic"), LOADED) if opponent else None
    return JudgeReward(judge, debater, {"p0": (Q, 0), "p1": (Q, 1)}, 90.0, seed)


def test_reward_is_the_judges_probability_for_the_speakers_answer():
    """Deterministic judge: p(answer) = 0.5 + 0.1 x (its defenders' verified quotes - the other's). The opponent
    (the deterministic debater) quotes one passage sentence that names its answer: one verified quote."""
    r = reward()
    out = r.score_batch(["p0", "p1", "p0", "p1"], [f"  {TWO} ", TWO, MISQUOTE, "no quotes"], training=False)
    assert out.score.tolist() == pytest.approx([0.6, 0.6, 0.4, 0.4])  # 2 - 1, 2 - 1, 0 - 1, 0 - 1
    t = out.terms
    assert list(t) == list(TERMS)
    assert t["judge_p"] == pytest.approx([0.6, 0.6, 0.4, 0.4])
    assert t["judge_p_correct"] == pytest.approx([0.6, 0.4, 0.4, 0.6])  # Q's correct answer is 0 (Oslo)
    assert t["correct_side"] == [1.0, 0.0, 1.0, 0.0]
    assert t["verified_quotes"] == [2.0, 2.0, 0.0, 0.0] and t["unverified_quotes"] == [0.0, 0.0, 1.0, 0.0]
    assert t["opponent_verified_quotes"] == [1.0] * 4
    assert out.extras["question_id"] == ["q1"] * 4
    assert out.extras["opponent_speech"][0] == "Turn 1: the answer is Lima. <quote>Tam later sailed to Lima with a " \
        "cargo of wool.</quote>"
    assert out.extras["opponent_speech"][1].startswith("Turn 1: the answer is Oslo.")
    assert r(["p0"], [TWO]).tolist() == pytest.approx([0.6])  # the plain callable: the same, judged as in eval
    consult = reward(opponent=False).score_batch(["p0", "p1"], [TWO, MISQUOTE], training=False)
    assert consult.score.tolist() == pytest.approx([0.7, 0.5]) and consult.terms["slot_a"] == [1.0, 1.0]
    assert consult.extras["opponent_speech"] == ["", ""]
    with pytest.raises(PipelineError, match="is not a speech prompt of this run"):
        r.score_batch(["elsewhere"], [TWO], training=False)


def test_each_round_draws_answer_order_and_slot_and_a_resumed_reward_draws_the_same():
    """Training rounds: answer order and the speaker's slot drawn per sample (both values occur), the score
    unchanged (this judge ignores them); the batch counter is the state a checkpoint keeps. Evaluation rounds:
    the same draws every time, the state untouched."""
    prompts, speeches = ["p0", "p1"] * 16, [TWO] * 32
    r = reward()
    first = r.score_batch(prompts, speeches, training=True)
    assert set(first.terms["slot_a"]) == {0.0, 1.0} and set(first.terms["shown_first"]) == {0.0, 1.0}
    assert first.score.tolist() == pytest.approx([0.6] * 32)
    state = r.state_dict()
    assert state == {"batches": 1}
    second = r.score_batch(prompts, speeches, training=True)
    assert second.terms["slot_a"] != first.terms["slot_a"]
    resumed = reward()
    resumed.load_state_dict(state)
    assert resumed.score_batch(prompts, speeches, training=True).terms == second.terms
    evals = [r.score_batch(prompts, speeches, training=False).terms for _ in range(2)]
    assert evals[0] == evals[1] and r.state_dict() == {"batches": 2}
    assert reward(seed=6).score_batch(prompts, speeches, training=True).terms["slot_a"] != first.terms["slot_a"]


# ---------------------------------------------------------------------------------------- PPO steps


def hand_judge_p(speech: str, opponent_speech: str) -> float:
    """The deterministic judge's probability for the speaker's answer, from the two speeches' verified quotes."""
    def verified(text):
        return sum(c.status == "verified" for c in verify_quotes(text.strip(), ROUND_PASSAGE, 90.0)[1])
    return min(0.95, max(0.05, 0.5 + 0.1 * (verified(speech) - verified(opponent_speech))))


@pytest.fixture(scope="module")
def world_policy(tmp_path_factory):
    """A tiny from-scratch debater on a world tokenizer of the questions, with the quote tags as tokens."""
    d = tmp_path_factory.mktemp("ppo_policy")
    tok = train_world_tokenizer([f"{q.passage} {q.question} {' '.join(q.answers)}" for q in QUESTIONS]
                                + ["story question argue not so far speech none"])
    tok.add_tokens(["<quote>", "</quote>"])
    load_causal_lm(None, tok, tiny=TINY, seed=0).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_a_few_ppo_steps_score_exactly_the_generated_speeches(world_policy, tmp_path, monkeypatch):
    import rlhf_pipeline.debate.ppo as module

    calls = []

    class Recording(JudgeReward):
        def score_batch(self, prompts, responses, training):
            out = super().score_batch(prompts, responses, training)
            calls.append((training, list(prompts), list(responses), out))
            return out

    def build(run, prompts, by_prompt):
        made = real(run, prompts, by_prompt)
        made.__class__ = Recording
        return made

    real = module.build_reward
    monkeypatch.setattr(module, "build_reward", build)
    summary = train_debater_ppo(run_config(), str(world_policy), QUESTIONS[:4], QUESTIONS[4:], tmp_path / "out",
                                tmp_path / "ckpt")
    train = [c for c in calls if c[0]]
    assert len(train) == 4 and all(len(c[1]) == 8 for c in train)
    traj = read_trajectories(tmp_path / "out" / "trajectories")
    for step, (_, prompts, responses, out) in enumerate(train, start=1):
        rows = traj[traj["step"] == step]
        assert list(rows["prompt"]) == prompts and list(rows["response"]) == responses  # exactly what was generated
        assert list(rows["score"]) == pytest.approx(out.score.tolist())
        assert out.score.tolist() == pytest.approx([hand_judge_p(s, o) for s, o in
                                                    zip(responses, out.extras["opponent_speech"])])
    evals = [c for c in calls if not c[0]]
    assert len(evals) == 3  # steps 0, 2 and 4
    for step, (_, prompts, responses, out) in zip((0, 2, 4), evals):
        rows = read_jsonl(tmp_path / "out" / "eval" / f"step{step:06d}.jsonl")
        assert [r["response"] for r in rows] == responses and [r["prompt"] for r in rows] == prompts
        assert [r["term_judge_p"] for r in rows] == pytest.approx(out.score.tolist())
        assert len(rows) == 4 and {r["question_id"] for r in rows} == {"q04", "q05"}
    with open(tmp_path / "out" / "train_log.csv") as f:
        log = list(csv.DictReader(f))
    assert len(log) == 4 and {"term_judge_p", "term_verified_quotes", "term_unverified_quotes",
                              "term_opponent_verified_quotes", "term_judge_p_correct", "term_slot_a"} <= log[0].keys()
    assert summary["prompts"] == {"train": 8, "eval": 4, "longest_tokens": summary["prompts"]["longest_tokens"]}
    assert sorted(summary["eval_judge_p"]) == [0, 2, 4]
    assert (tmp_path / "out" / "model" / "model.safetensors").is_file()


# ---------------------------------------------------------------------------------- kill and resume


STEPS = 8


@pytest.fixture(scope="module")
def cli_inputs(tmp_path_factory):
    """A tiny debater on MiniLM's tokenizer (its larger vocabulary keeps steps long enough to interrupt) and the
    question splits."""
    d = tmp_path_factory.mktemp("ppo_cli")
    tok = load_tokenizer("minilm")
    torch.manual_seed(0)
    load_causal_lm(None, tok, tiny=TINY, seed=0).save_pretrained(d / "policy")
    tok.save_pretrained(d / "policy")
    write_jsonl(d / "train.jsonl", [q.to_row() for q in QUESTIONS[:4]])
    write_jsonl(d / "val.jsonl", [q.to_row() for q in QUESTIONS[4:]])
    cfg = run_config(total_episodes=STEPS * 8, eval_interval=3, checkpoint_interval=2).to_dict()
    (d / "cfg.json").write_text(json.dumps(cfg))
    return d


def cli_args(inputs: Path, run: Path) -> list:
    return ["debate-ppo", "--config", inputs / "cfg.json", "--policy", inputs / "policy", "--train",
            inputs / "train.jsonl", "--eval", inputs / "val.jsonl", "--out-dir", run / "out", "--ckpt-dir",
            run / "ckpt", "--manifest", run / "out" / "manifest.json"]


def test_sigterm_then_rerun_equals_uninterrupted(cli_inputs, tmp_path):
    straight, run = tmp_path / "straight", tmp_path / "run"
    cli(*cli_args(cli_inputs, straight))
    rc, err = interrupted(cli_args(cli_inputs, run), log_rows(run / "out" / "train_log.csv"), 3)
    assert rc == 128 + signal.SIGTERM, err[-3000:]
    stopped = int(re.search(r"checkpointed step (\d+)", err).group(1))
    assert 3 <= stopped < STEPS and (run / "ckpt" / f"step{stopped:06d}" / "manifest.json").is_file()
    assert not (run / "out" / "model").exists() and not (run / "out" / "manifest.json").exists()
    shutil.rmtree(run / "out")  # Snakemake removes a failed job's outputs before the retry
    cli(*cli_args(cli_inputs, run))

    def log(p):  # the reward's terms included: the slots and answer orders drawn from the restored batch counter
        with open(p / "out" / "train_log.csv") as f:
            return [{k: v for k, v in r.items() if k != "time"} for r in csv.DictReader(f)]
    assert len(log(straight)) == STEPS and log(run) == log(straight) and "term_slot_a" in log(run)[0]
    evals = sorted(p.name for p in (straight / "out" / "eval").iterdir())
    assert evals == ["step000000.jsonl", "step000003.jsonl", "step000006.jsonl", "step000008.jsonl"]
    for name in evals:
        assert (run / "out" / "eval" / name).read_text() == (straight / "out" / "eval" / name).read_text(), name
    same_weights(straight / "out" / "model" / "model.safetensors", run / "out" / "model" / "model.safetensors")
    manifest = json.loads((run / "out" / "manifest.json").read_text())
    assert manifest["eval_judge_p"] == json.loads((straight / "out" / "manifest.json").read_text())["eval_judge_p"]


# --------------------------------------------------------------------------------------- the rule


def snakemake(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(config), "--cores", "2", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=ENV)
    assert r.returncode == 0, f"snakemake failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


@pytest.mark.integration
def test_the_debate_ppo_rule_on_tiny_settings(tmp_path):
    """tests/configs/tiny.yaml plus a PPO debater (the MiniLM quote judge, the SFT debater as the opponent):
    debate_data, tiny_one's chunk and debate_sft run first; the strength tournament then plays ppo."""
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    training = cfg["debate"]["training"]
    training["judge"] = "minilm"
    training["ppo"] = {"enabled": True, "questions": 4, "eval_questions": 2, "hparams": {
        "total_episodes": 16, "batch_size": 4, "mini_batch_size": 2, "ppo_epochs": 1, "max_new_tokens": 8,
        "max_prompt_length": 256, "eval_interval": 2, "eval_batch_size": 4, "checkpoint_interval": 2,
        "log_with": "none"}}
    config = tmp_path / "ppo.yaml"
    config.write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path, config, "results/debate/ppo/manifest.json")
    res = tmp_path / "results/debate/ppo"
    assert (res / "model/model.safetensors").is_file() and (res / "model/tokenizer.json").is_file()
    with open(res / "train_log.csv") as f:
        log = list(csv.DictReader(f))
    assert len(log) == 4 and {"term_judge_p", "term_verified_quotes", "term_unverified_quotes"} <= log[0].keys()
    assert sorted(p.name for p in (res / "eval").glob("step*")) == ["step000000.jsonl", "step000002.jsonl",
                                                                   "step000004.jsonl"]
    rows = read_jsonl(res / "eval/step000004.jsonl")
    assert len(rows) == 4 and all(0 <= r["term_judge_p"] <= 1 and r["opponent_speech"] for r in rows)
    manifest = json.loads((res / "manifest.json").read_text())
    assert manifest["config"]["judges"]["minilm"]["type"] == "quote_similarity"
    assert manifest["config"]["opponent"]["model"] == "results/debate/sft/model"
    assert sorted(manifest["eval_judge_p"]) == ["0", "2", "4"]
    plan = snakemake(tmp_path, config, "-n", "results/debate/strength/judge_accuracy.csv").stdout
    assert "rule debate_ppo:" not in plan  # done, and the strength tournament's chunks load its model
    assert re.search(r"rule debate_chunk:\n    input: [^\n]*results/debate/ppo/model", plan), plan[-3000:]
