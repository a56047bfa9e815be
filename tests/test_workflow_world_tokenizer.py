"""Integration: the RLHF chain on tiny settings with `tokenizer: world` (rule world_tokenizer): the SFT
policy and what starts from it (proxy RMs with rm.init: sft, PPO) read the world tokenizer, the gold RM
keeps reading text through MiniLM, gold_eval is written, and the tokenizer's settings make it stale."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests/configs/tiny.yaml"
TARGET = "results/ppo/seed1/gold_eval.csv"


def snakemake(workdir: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "tiny.yaml"), str(workdir / "world.yaml"), "--cores", "2", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert r.returncode == 0, f"snakemake failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r.stdout + r.stderr


def planned(workdir: Path) -> set[str]:
    out = snakemake(workdir, "-n", TARGET)
    if "Nothing to be done" in out:
        return set()
    return set(re.findall(r"^(\w+)\s+\d+\s*$", out.split("Job stats:")[1].split("total")[0], re.M))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("world_tokenizer")
    shutil.copy(TINY, workdir / "tiny.yaml")
    (workdir / "world.yaml").write_text("tokenizer: world\n")
    snakemake(workdir, TARGET)
    return workdir


def test_policy_and_rms_read_the_world_tokenizer(run):
    res = run / "results"
    world = json.loads((res / "tokenizer/world/tokenizer.json").read_text())["model"]["vocab"]
    assert 193 < len(world) < 1000  # the tiny world's words, not MiniLM's 30,522
    assert json.loads((res / "tokenizer/manifest.json").read_text())["stage"] == "world-tokenizer"
    assert json.loads((res / "sft/model/config.json").read_text())["vocab_size"] == len(world)
    assert json.loads((res / "sft/manifest.json").read_text())["config"]["tokenizer"] == "results/tokenizer/world"
    rm = json.loads((res / "rm/seed1/model/config.json").read_text())["backbone_config"]  # starts from the policy
    assert rm["vocab_size"] == len(world)
    for model in ("sft/model", "rm/seed1/model"):
        assert json.loads((res / model / "tokenizer.json").read_text())["model"]["vocab"] == world, model
    gold = json.loads((res / "gold_rm/model/config.json").read_text())["backbone_config"]
    assert gold["vocab_size"] == 30522  # the gold RM reads text through MiniLM


def test_gold_eval_is_written(run):
    gold = pd.read_csv(run / "results/ppo/seed1/gold_eval.csv")
    assert list(gold["step"]) == [0, 1, 2] and gold["gold_reward"].notna().all()


def test_world_tokenizer_settings_make_the_chain_stale(run):
    assert planned(run) == set()
    cfg = yaml.safe_load((run / "world.yaml").read_text())
    (run / "world.yaml").write_text(yaml.safe_dump({**cfg, "world_tokenizer": {"vocab_size": 300}}))
    assert {"world_tokenizer", "sft", "ppo", "gold_eval"} <= planned(run)
    assert "gold_rm_train" not in planned(run)
