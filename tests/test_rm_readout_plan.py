"""Reward-model readouts that need an encoder-decoder backbone are refused at plan time on a decoder-only one.
(T5 members of every head train through the real rules in tests/test_hh_flant5_rm_miniature.py.)"""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]


def test_a_decoder_readout_on_a_decoder_only_backbone_is_refused_at_plan_time(tmp_path):
    """The rules train T5 members of every head end to end in tests/test_hh_flant5_rm_miniature.py (the real
    config's six readouts); here: a decoder-stack readout on the tiny Llama policy fails the plan, no job runs."""
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    # rm.init sft: the tiny Llama policy, decoder-only, has no decoder start token for a decoder-stack readout
    cfg["rm"].update(seeds=[1, 2], init="sft", head="mean", epochs=1,
                     members={2: {"head": "first_token_attention", "readout_stack": "decoder"}})
    cfg["ppo"]["runs"] = {"seed1": {"rm_seeds": [1]}}
    config = tmp_path / "t5.yaml"
    config.write_text(yaml.safe_dump(cfg))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(tmp_path / "wf"),
           "--configfile", str(config), "--cores", "2", "-n", "results/rm/summary.csv"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "config rm.members.2.head: got 'first_token_attention'" in r.stdout + r.stderr
