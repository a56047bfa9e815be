"""The CLI (src/rlhf_pipeline/cli.py and the family CLI modules): the parser is assembled from the families
in the order the code hashes read them; every stage and argument has help (the settings with their ranges);
bad input is one line and leaves no output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rlhf_pipeline import cli
from rlhf_pipeline.codegraph import cli_stages
from rlhf_pipeline.config import settings_help
from rlhf_pipeline.runs import PPORunConfig

ROOT = Path(__file__).resolve().parents[1]


def test_the_parser_has_exactly_the_stages_the_code_hashes_find():
    declared = [s.name for s in cli.stages()]
    assert declared == [name.replace("_", "-") for name in cli_stages(ROOT / "src" / "rlhf_pipeline" / "cli.py")]
    parser = cli.build_parser()
    assert list(next(a for a in parser._actions if a.dest == "stage").choices) == declared


def test_help_lists_every_setting_with_its_range():
    text = settings_help(PPORunConfig)
    assert "hparams.lam (a number, default 0.95; >= 0, <= 1): GAE lambda." in text
    r = _cli("ppo", "--help")
    assert r.returncode == 0 and "hparams.kl_coef" in r.stdout and "uwo_weight" in r.stdout


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "rlhf_pipeline", *args], capture_output=True, text=True)


def test_cli_bad_input_is_one_line_and_leaves_no_output(tmp_path):
    out = tmp_path / "model"
    r = _cli("sft", "--config", '{"epochs": 1}', "--train", str(tmp_path / "nope.jsonl"),
             "--val", str(tmp_path / "nope.jsonl"), "--out", str(out))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "nope.jsonl" in r.stderr
    assert not out.exists()

    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"prompt": "a"}) + "\n")
    r = _cli("sft", "--train", str(train), "--val", str(train), "--out", str(out))
    assert r.returncode == 2 and "missing field(s) ['response']" in r.stderr
    assert not out.exists()

    r = _cli("sft", "--config", '{"epoch": 1}', "--train", str(train), "--val", str(train), "--out", str(out))
    assert r.returncode == 2 and "unknown key(s) ['epoch']" in r.stderr
    r = _cli("sft", "--config", '{"epochs": -1}', "--train", str(train), "--val", str(train), "--out", str(out))
    assert r.returncode == 2 and r.stderr.strip() == "error: config sft.epochs: got -1, expected > 0"
    assert not out.exists()

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"prompt": "a", "response": "b"}\n{"prompt": "\xff", "response": "b"}\n')
    r = _cli("sft", "--train", str(bad), "--val", str(bad), "--out", str(out))
    assert r.returncode == 2 and f"{bad}:2: not UTF-8 text (byte 0xff" in r.stderr


def test_every_stage_and_argument_has_help():
    from rlhf_pipeline.cli import build_parser

    parser = build_parser()
    stages = next(a for a in parser._actions if a.dest == "stage").choices
    assert {"prepare-data", "sft", "gold-rm-train", "label-preferences", "rm-train", "rm-summary", "ppo",
            "gold-eval", "bon-sample", "bon", "plot-overoptimization", "schema"} <= set(stages)
    for name, sp in stages.items():
        for action in sp._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
