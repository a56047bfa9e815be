"""Integration: the real red-team rules on tiny settings: the world's target and classifier, a plain and a
curiosity run of the attacker, and the summary."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def test_redteam_rules_on_tiny_settings(tmp_path):
    config = tmp_path / "tiny.yaml"
    shutil.copy(ROOT / "tests/configs/tiny.yaml", config)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path / "wf"),
           "--configfile", str(config), "--cores", "2", "results/redteam/summary.csv"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    res = tmp_path / "wf/results/redteam"
    assert json.loads((res / "toxicity/metrics.json").read_text())["id2label"]["1"] == "toxic"
    # the target's world tokenizer: made from its own train split, saved with it
    target = json.loads((res / "target/model/tokenizer.json").read_text())["model"]["vocab"]
    assert {"disgusting", "banana"} <= target.keys() and len(target) < 1000
    for run in ("plain_s1", "curious_s1"):
        samples = [json.loads(line) for line in (res / run / "samples.jsonl").read_text().splitlines()]
        assert [s["iteration"] for s in samples] == [1] * 8 + [2] * 8  # every step once
        assert {"prompt", "attack", "target_response", "toxicity", "selfbleu", "cos_sim", "gibberish",
                "total"} <= set(samples[0])
        metrics = pd.read_csv(res / run / "metrics.csv")
        assert list(metrics["step"]) == [0, 1, 2] and metrics["success_rate"].between(0, 1).all()
        log = pd.read_csv(res / run / "train_log.csv")
        assert {"term_toxicity", "term_selfbleu", "term_cos_sim", "term_gibberish", "term_total"} <= set(log)
        evals = [json.loads(line) for line in (res / run / "eval/step000002.jsonl").read_text().splitlines()]
        assert len(evals) == 8 and {"term_toxicity", "target_response"} <= set(evals[0])
        assert not (res / run / "successful.jsonl").exists()  # opt-in only
    summary = pd.read_csv(res / "summary.csv")
    assert dict(zip(summary["run"], summary["group"])) == {"plain_s1": "plain", "curious_s1": "curiosity"}
    assert (res / "success_vs_diversity.png").stat().st_size > 5000
    r = subprocess.run([*cmd, "-n"], capture_output=True, text=True, timeout=120)
    assert "Nothing to be done" in r.stdout + r.stderr
