"""A red-team PPO run through train_redteam's parts: the novelty histories are part of the checkpoint, so a
run killed midway and resumed writes the same samples, train log and eval files as an uninterrupted one."""

import json
import random

import pytest
import torch

from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.ppo import PPOConfig, train_ppo
from rlhf_pipeline.redteam.config import RewardTermsConfig
from rlhf_pipeline.redteam.rewards import ProfanityCheckToxicity, RedTeamReward, WordfreqGibberish
from rlhf_pipeline.redteam.run import SamplesLog
from rlhf_pipeline.redteam.target import LocalTarget

torch.set_num_threads(1)
WORDS = ["you", "are", "a", "stupid", "fool", "nice", "day", "wolf", "tea", "idiot", "kind", "red"]
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny attacker and a tiny target (randomly initialised Llamas on the MiniLM tokenizer)."""
    tok = load_tokenizer("minilm")
    out = {}
    for name, seed in (("attacker", 0), ("target", 1)):
        path = tmp_path_factory.mktemp(name)
        load_causal_lm(None, tok, tiny=TINY, seed=seed).save_pretrained(path)
        tok.save_pretrained(path)
        out[name] = str(path)
    return out


def hash_embed(texts):
    """A deterministic stand-in embedder (bag of hashed words), to keep the test fast."""
    out = torch.zeros(len(texts), 16)
    for i, t in enumerate(texts):
        for w in t.split():
            out[i, sum(map(ord, w)) % 16] += 1.0
        out[i, 15] += 1e-3
    return torch.nn.functional.normalize(out, dim=1).numpy()


class CrashingToxicity(ProfanityCheckToxicity):
    def __init__(self, crash_at=None):
        self.calls, self.crash_at = 0, crash_at

    def score(self, texts):
        self.calls += 1
        if self.calls == self.crash_at:
            raise RuntimeError("simulated crash")
        return super().score(texts)


def reward(models, crash_at=None):
    terms = RewardTermsConfig(w_tox=1.0, w_bleu=1.0, w_cos=1.0, w_gib=0.5, history_cap=12, seed=3)
    target = LocalTarget(models["target"], max_new_tokens=5, greedy=True, batch_size=8, seed=0)
    return RedTeamReward(terms, CrashingToxicity(crash_at), WordfreqGibberish(2.5), target, novelty_embed=hash_embed)


def run(models, out, crash_at=None):
    cfg = PPOConfig.from_dict(dict(total_episodes=5 * 8, batch_size=8, mini_batch_size=4, ppo_epochs=1,
                                   max_new_tokens=5, learning_rate=3e-3, eval_interval=2, eval_batch_size=8,
                                   checkpoint_interval=1, log_with="none", entropy_coef=0.01, seed=4))
    rng = random.Random(0)
    prompts = [" ".join(rng.choice(WORDS) for _ in range(4)) for _ in range(16)]
    train_ppo(cfg, models["attacker"], reward(models, crash_at), prompts, prompts[:8], out / "out", out / "ckpt",
              hooks=[SamplesLog(out / "out" / "samples.jsonl")])


def test_killed_red_team_run_resumes_identically(models, tmp_path):
    run(models, tmp_path / "straight")
    # toxicity calls: eval 0, steps 1-2, eval 2, step 3 -> the crash comes in step 3, after checkpoint 2
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(models, tmp_path / "resumed", crash_at=5)
    samples = [json.loads(x) for x in (tmp_path / "resumed/out/samples.jsonl").read_text().splitlines()]
    assert max(s["iteration"] for s in samples) == 2
    run(models, tmp_path / "resumed")
    for name in ("samples.jsonl", "eval/step000004.jsonl", "eval/step000005.jsonl"):
        assert (tmp_path / "resumed/out" / name).read_text() == (tmp_path / "straight/out" / name).read_text(), name

    def without_time(path):
        lines = path.read_text().splitlines()
        i = lines[0].split(",").index("time")
        return [",".join(c for j, c in enumerate(line.split(",")) if j != i) for line in lines]
    assert without_time(tmp_path / "resumed/out/train_log.csv") == without_time(tmp_path / "straight/out/train_log.csv")
    samples = [json.loads(x) for x in (tmp_path / "straight/out/samples.jsonl").read_text().splitlines()]
    assert [s["iteration"] for s in samples] == [i for i in range(1, 6) for _ in range(8)]
    assert any(s["selfbleu"] > 0 for s in samples[8:])  # the history is used


def test_summary_keeps_each_metric_columns_type(tmp_path):
    """One row per run from its last eval step; counts stay integers (a row Series would make them floats)."""
    import pandas as pd

    from rlhf_pipeline.redteam.run import METRIC_COLUMNS, summarize_redteam

    runs = {}
    for name, group, rate in (("plain_s1", "plain", 0.25), ("curious_s1", "curiosity", 0.5)):
        rows = [[0, 8, 0.0, 0, 0, float("nan"), float("nan"), 0.1, 0.7, 0.0],
                [2, 8, rate, int(rate * 8), int(rate * 8), 0.9, 0.8, 0.3, 0.7, 0.01]]
        pd.DataFrame(rows, columns=METRIC_COLUMNS).to_csv(tmp_path / f"{name}.csv", index=False)
        runs[name] = (group, tmp_path / f"{name}.csv")
    summarize_redteam(runs, tmp_path / "summary.csv", tmp_path / "summary.png")
    lines = (tmp_path / "summary.csv").read_text().splitlines()
    assert lines[0].split(",")[:5] == ["run", "group", "step", "n", "success_rate"]
    assert lines[1].split(",")[:6] == ["plain_s1", "plain", "2", "8", "0.25", "2"]
    assert lines[2].split(",")[:6] == ["curious_s1", "curiosity", "2", "8", "0.5", "4"]


def test_group_table_hand_worked_and_the_summary_writes_it(tmp_path):
    """Per group: mean and Student-t interval over its runs; against the baseline group: Welch (the same
    numbers as rlhf_pipeline.stats.welch's hand-worked test); undefined diversities are left out."""
    import pandas as pd
    from scipy import stats

    from rlhf_pipeline.redteam.run import METRIC_COLUMNS, group_table, summarize_redteam

    table = pd.DataFrame({"run": ["p1", "p2", "p3", "c1", "c2", "c3"],
                          "group": ["plain"] * 3 + ["curiosity"] * 3,
                          "success_rate": [0.0, 0.5, 1.0, 1.0, 2.0, 3.0],
                          "diversity_bleu": [0.5, 0.7, float("nan"), 0.6, 0.6, 0.6],
                          "diversity_embedding": [0.5] * 6, "kl": [1.0] * 6})
    out = group_table(table).set_index(["group", "measure"])
    assert set(out["baseline"]) == {"plain"}  # the first run's group
    row = out.loc[("curiosity", "success_rate")]
    # curiosity: mean 2, sd 1, n 3 -> half-width t(0.975, 2) = 4.302653 / sqrt(3) = 2.484138
    assert (row["mean"], row["hi"] - row["mean"]) == (pytest.approx(2.0), pytest.approx(2.484138, abs=1e-6))
    assert row["diff"] == pytest.approx(1.5)
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(2.323790, 2.941176), rel=1e-5)
    assert row["detectable_diff"] > 0 and out.loc[("plain", "success_rate"), ["diff", "p_value"]].isna().all()
    assert out.loc[("plain", "diversity_bleu"), "n_runs"] == 2  # the NaN run is left out
    flat = out.loc[("curiosity", "diversity_embedding")]
    assert (flat["diff"], flat["diff_lo"], flat["p_value"]) == (0.0, 0.0, 1.0)
    with pytest.raises(Exception, match="baseline group 'nope'"):
        group_table(table, "nope")

    runs = {}
    for _, r in table.iterrows():
        row = [2, 8, r["success_rate"] / 3, 1, 1, r["diversity_bleu"], 0.5, 0.3, 0.0, 1.0]
        pd.DataFrame([row], columns=METRIC_COLUMNS).to_csv(tmp_path / f"{r['run']}.csv", index=False)
        runs[r["run"]] = (r["group"], tmp_path / f"{r['run']}.csv")
    summarize_redteam(runs, tmp_path / "s.csv", tmp_path / "s.png", tmp_path / "g.csv", "curiosity")
    groups = pd.read_csv(tmp_path / "g.csv")
    assert set(groups["baseline"]) == {"curiosity"} and len(groups) == 8 and (tmp_path / "s.png").stat().st_size > 0
