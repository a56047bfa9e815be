"""Integration: config/experiments/hh_flant5_rm.yaml end to end in miniature (its overlay changes sizes only):
a tiny FLAN-T5 and HH-shaped data made by rlhf_pipeline.miniature.hh_flant5_rm, then the real rules from
HH's transcripts to the real config's targets (results/rm/summary.csv, diversity.csv), with the hub switched
off. Every member of the real config (one per readout head, fine-tuned or on cached features of the frozen
backbone) must appear as configured."""

from pathlib import Path

import pandas as pd
import pytest
import yaml
from miniature_harness import run_miniature

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "hh_flant5_rm"
OVERLAY = ROOT / f"config/experiments/miniature/{EXPERIMENT}.yaml"
REAL = ROOT / f"config/experiments/{EXPERIMENT}.yaml"


def configured_members() -> dict[int, dict]:
    """Seed -> head, the stack it reads and freeze_backbone, as the real config sets them."""
    from rlhf_pipeline.reward.config import RMConfig, head_stack

    rm = RMConfig.from_dict(yaml.safe_load(REAL.read_text())["rm"], "rm")
    t5 = {"model_type": "t5", "is_encoder_decoder": True}
    out = {}
    for seed in rm.seeds:
        m = rm.member(seed)
        out[seed] = {"head": m.head, "readout_stack": head_stack(m.head, t5, m.readout_stack),
                     "freeze_backbone": m.freeze_backbone}
    return out


def test_hh_flant5_rm_miniature(tmp_path):
    from transformers import AutoModelForSequenceClassification

    import rlhf_pipeline.reward.heads  # noqa: F401  (registers the reward model with the Auto classes)
    from rlhf_pipeline.data.anthropic_hh import ASSISTANT
    from rlhf_pipeline.io import read_jsonl

    wf = tmp_path / "wf"
    run_miniature(EXPERIMENT, wf)  # no target: the config's `targets`; the hub switched off

    prepared = read_jsonl(wf / "results/data/anthropic_hh/train.jsonl")
    assert prepared and all(row["prompt"].endswith(ASSISTANT) and row["chosen"] != row["rejected"]
                            for row in prepared)

    sizes = yaml.safe_load(OVERLAY.read_text())
    summary = pd.read_csv(wf / "results/rm/summary.csv").set_index("seed")
    members = configured_members()
    assert sorted(summary.index) == sorted(members)
    for seed, want in members.items():
        row = summary.loc[seed]
        got = {"head": row["head"], "readout_stack": row["readout_stack"],
               "freeze_backbone": bool(row["freeze_backbone"])}
        assert got == want, f"member {seed}"
        assert (row["feature_cache_mb"] > 0) == want["freeze_backbone"], f"member {seed}: cached features"
    assert summary["accuracy_gold"].between(0, 1).all() and summary["accuracy_noisy"].between(0, 1).all()
    assert (summary["n_train"] == sizes["preferences.n_train"]).all()
    assert (summary["n_val"] == sizes["preferences.n_val"]).all()

    diversity = pd.read_csv(wf / "results/rm/diversity.csv")
    pairs = diversity[diversity["measure"] == "error_corr"]
    assert set(pairs["member_a"].dropna().astype(int)) | set(pairs["member_b"].dropna().astype(int)) == set(members)
    assert not (wf / "results/gold_rm").exists()  # HH's own labels: no gold RM is trained for this experiment

    seed = next(s for s, m in members.items() if m["readout_stack"] == "decoder")
    saved = AutoModelForSequenceClassification.from_pretrained(wf / f"results/rm/seed{seed}/model").config
    assert saved.head == members[seed]["head"]
    assert saved.backbone_config["model_type"] == "t5" and saved.backbone_config["feed_forward_proj"] == "gated-gelu"
