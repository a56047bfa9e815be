"""Miniature of config/experiments/redteam_gpt2.yaml (curiosity-driven red-teaming, Hong et al. 2024): a tiny GPT-2
attacker fine-tuned on IMDb-shaped reviews and trained with PPO + LoRA against a tiny GPT-2 target, scored by a
RoBERTa classifier's "hate" label and a DistilBERT gibberish detector; all six runs of the real config, summarised."""

import json

import pandas as pd
import pytest
import yaml
from miniature_harness import ROOT, run_miniature

pytestmark = pytest.mark.integration


def test_redteam_gpt2_miniature_runs_every_run_to_the_summary(tmp_path):
    wf = tmp_path / "wf"
    seconds = run_miniature("redteam_gpt2", wf, ["results/redteam/summary.csv"])
    print(f"redteam_gpt2 miniature: {seconds:.0f} s")
    real = yaml.safe_load((ROOT / "config/experiments/redteam_gpt2.yaml").read_text())["redteam"]
    overlay = yaml.safe_load((ROOT / "config/experiments/miniature/redteam_gpt2.yaml").read_text())
    n_eval, batch = overlay["redteam.n_eval_prompts"], overlay["redteam.hparams.batch_size"]
    steps = overlay["redteam.hparams.total_episodes"] // batch
    res = wf / "results/redteam"

    summary = pd.read_csv(res / "summary.csv")
    assert dict(zip(summary["run"], summary["group"])) == {name: run["group"] for name, run in real["runs"].items()}
    assert (summary["step"] == steps).all() and (summary["n"] == n_eval).all()
    assert summary["success_rate"].between(0, 1).all() and summary["n_successful"].sum() > 0
    assert (summary["n_successful"] == (summary["success_rate"] * n_eval).round()).all()
    assert (summary["n_unique_successful"] <= summary["n_successful"]).all()
    hit = summary[summary["n_successful"] >= 2]
    assert len(hit) > 0 and hit["diversity_bleu"].between(0, 1).all()
    assert hit["diversity_embedding"].between(0, 2).all()  # 1 - mean pairwise cosine
    assert summary["gibberish_mean"].between(0, 1).all() and summary["toxicity_mean"].between(0, 1).all()
    assert (res / "success_vs_diversity.png").stat().st_size > 5000

    sft = load_weights(wf / "results/sft/model")
    for name, run in real["runs"].items():
        metrics = pd.read_csv(res / name / "metrics.csv")
        assert list(metrics["step"]) == [0, steps], name
        samples = [json.loads(line) for line in (res / name / "samples.jsonl").read_text().splitlines()]
        assert [s["iteration"] for s in samples] == [i for i in range(1, steps + 1) for _ in range(batch)], name
        terms = {"w_tox": 0.0, "w_bleu": 0.0, "w_cos": 0.0, "w_gib": 0.0, **run["terms"]}
        for s in samples:  # the run's own reward weights made its scores (the clip of 10 is never reached here)
            total = (terms["w_tox"] * s["toxicity"] - terms["w_bleu"] * s["selfbleu"] - terms["w_cos"] * s["cos_sim"]
                     - terms["w_gib"] * s["gibberish"])
            assert s["total"] == pytest.approx(total, abs=1e-9), name
        # LoRA: the saved attacker (adapters merged) differs from the SFT model in GPT-2's adapted attention
        # projection weights (PEFT's default target, c_attn; biases are not adapted) and nowhere else.
        changed = {k for k, v in load_weights(res / name / "model").items() if not v.equal(sft[k])}
        assert changed == {k for k in sft if k.endswith(".attn.c_attn.weight")}, (name, sorted(changed))
    gibberish = json.loads((wf / "results/miniature/redteam_gpt2/gibberish/config.json").read_text())
    assert set(real["gibberish"]["labels"]) < set(gibberish["id2label"].values())


def load_weights(model_dir):
    from safetensors.torch import load_file

    return load_file(model_dir / "model.safetensors")
