"""Integration: reward models on a (tiny, randomly initialised) T5 backbone through the real rules, one
ensemble member per readout head: fine-tuned members and members trained on cached features of the frozen
backbone; results/rm/summary.csv reports each member's head and accuracy."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def tiny_t5(path: Path) -> Path:
    from transformers import T5Config, T5Model

    from rlhf_pipeline.models import load_tokenizer

    tok = load_tokenizer("minilm")
    cfg = T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                   num_heads=4, decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id,
                   eos_token_id=tok.eos_token_id)
    T5Model(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_t5_reward_models_through_the_rules(tmp_path):
    t5 = tiny_t5(tmp_path / "t5")
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    members = {2: {"head": "decoder_output", "freeze_backbone": True}, 3: {"head": "last_token"},
               4: {"head": "attention"}, 5: {"head": "layer_attention", "freeze_backbone": True},
               6: {"head": "first_token_attention", "readout_stack": "encoder"},
               7: {"head": "first_token_attention", "readout_stack": "decoder", "freeze_backbone": True}}
    cfg["rm"].update(seeds=[1, 2, 3, 4, 5, 6, 7], init=str(t5), head="mean", epochs=1, members=members)
    cfg["ppo"]["runs"] = {"seed1": {"rm_seeds": [1]}}
    config = tmp_path / "t5.yaml"
    config.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path / "wf"),
           "--configfile", str(config), "--cores", "2", "results/rm/summary.csv"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    summary = pd.read_csv(tmp_path / "wf/results/rm/summary.csv")
    assert dict(zip(summary["seed"], summary["head"])) == {
        1: "mean", 2: "decoder_output", 3: "last_token", 4: "attention", 5: "layer_attention",
        6: "first_token_attention", 7: "first_token_attention"}
    assert summary["accuracy_gold"].between(0, 1).all()
    assert list(summary["freeze_backbone"]) == [False, True, False, False, True, False, True]
    model = tmp_path / "wf/results/rm/seed2/model"
    from transformers import AutoModelForSequenceClassification

    import rlhf_pipeline.reward.heads  # noqa: F401  (registers the reward model with the Auto classes)
    loaded = AutoModelForSequenceClassification.from_pretrained(model)
    assert loaded.config.head == "decoder_output" and loaded.config.backbone_config["model_type"] == "t5"

    cfg["rm"].update(seeds=[1, 2], members={2: {"head": "first_token_attention", "readout_stack": "decoder"}})
    cfg["sft"]["model"] = None
    cfg["rm"]["init"] = "sft"  # a decoder-only policy has no decoder start token: rejected before any job
    config.write_text(yaml.safe_dump(cfg))
    r = subprocess.run([*cmd, "-n"], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "config rm.members.2.head: got 'first_token_attention'" in r.stdout + r.stderr
    shutil.rmtree(tmp_path / "wf", ignore_errors=True)
