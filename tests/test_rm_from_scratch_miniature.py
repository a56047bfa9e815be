"""Miniature of config/experiments/rm_from_scratch.yaml: proxy RMs on the tiny SFT policy's own backbone."""

import json

import pandas as pd
import pytest
from miniature_harness import run_miniature

pytestmark = pytest.mark.integration


def test_rm_from_scratch_miniature_trains_rms_on_the_policy_backbone(tmp_path):
    wf = tmp_path / "wf"
    run_miniature("rm_from_scratch", wf)  # its targets: results/rm/summary.csv
    assert not (wf / "results/ppo").exists()
    summary = pd.read_csv(wf / "results/rm/summary.csv")
    assert list(summary["seed"]) == [1, 2, 3] and set(summary["head"]) == {"last_token"}
    assert summary["accuracy_gold"].between(0, 1).all()
    config = json.loads((wf / "results/rm/seed1/model/config.json").read_text())
    assert config["backbone_config"]["model_type"] == "llama"  # the SFT policy's backbone, not MiniLM (bert)
