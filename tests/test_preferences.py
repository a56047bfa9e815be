"""preferences.source: dataset: the dataset's own chosen/rejected pairs become the preference files."""

import json
import subprocess
import sys

import pytest

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import read_jsonl, write_jsonl
from rlhf_pipeline.preferences import PreferencesConfig, dataset_preferences


def _split(path, n):
    write_jsonl(path, [{"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(n)])


def test_dataset_pairs_are_kept_as_they_are(tmp_path):
    _split(tmp_path / "train.jsonl", 10)
    _split(tmp_path / "val.jsonl", 6)
    cfg = PreferencesConfig(source="dataset", n_train=8, n_val=4, label_noise=0.25)
    stats = dataset_preferences(cfg, tmp_path / "train.jsonl", tmp_path / "val.jsonl", tmp_path / "pt.jsonl",
                                tmp_path / "pv.jsonl")
    train = read_jsonl(tmp_path / "pt.jsonl")
    assert stats["n_train"] == 8 and stats["n_val"] == 4 and len(read_jsonl(tmp_path / "pv.jsonl")) == 4
    assert sum(r["label_flipped"] for r in train) == 2  # exactly 25% flipped, as for sampled pairs
    for i, r in enumerate(train):
        good, bad = (f"bad {i}", f"good {i}") if r["label_flipped"] else (f"good {i}", f"bad {i}")
        assert (r["prompt"], r["chosen"], r["rejected"]) == (f"q{i}", good, bad) and r["gold_chosen"] is None


def test_dataset_source_needs_pairs(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [{"prompt": "q", "response": "r"}])
    with pytest.raises(PipelineError, match=r"train.jsonl:1: missing field\(s\) \['chosen', 'rejected'\]"):
        dataset_preferences(PreferencesConfig(source="dataset"), tmp_path / "train.jsonl", tmp_path / "train.jsonl",
                            tmp_path / "a.jsonl", tmp_path / "b.jsonl")


def test_cli_needs_no_policy_for_dataset_pairs_and_asks_for_it_otherwise(tmp_path):
    _split(tmp_path / "train.jsonl", 4)
    split = str(tmp_path / "train.jsonl")
    base = [sys.executable, "-m", "rlhf_pipeline", "label-preferences", "--train-prompts", split,
            "--val-prompts", split, "--out-train", str(tmp_path / "pt.jsonl"), "--out-val", str(tmp_path / "pv.jsonl")]
    r = subprocess.run([*base, "--config", json.dumps({"source": "dataset", "label_noise": 0.0})],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert [x["chosen"] for x in read_jsonl(tmp_path / "pt.jsonl")] == [f"good {i}" for i in range(4)]
    r = subprocess.run(base, capture_output=True, text=True)
    assert r.returncode == 2 and "--policy and --gold-rm are required" in r.stderr
