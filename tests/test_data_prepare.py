"""The dataset stage (rlhf_pipeline.data.prepare): the synthetic set end to end, seeded and capped,
and an empty split refused before anything is written."""

from __future__ import annotations

import pandas as pd
import pytest
from data_helpers import alpaca_dsd

from rlhf_pipeline.data import DatasetConfig, SyntheticConfig, cap_rows, prepare_dataset
from rlhf_pipeline.errors import PipelineError


def small_cfg(**kw) -> DatasetConfig:
    return DatasetConfig(synthetic=SyntheticConfig(n_train=60, n_val=12, n_test=12), **kw)


def test_prepare_synthetic_end_to_end(tmp_path):
    counts = prepare_dataset(small_cfg(), tmp_path / "a", seed=0)
    assert counts == {"train": 60, "val": 12, "test": 12}
    for split, n in counts.items():
        df = pd.read_json(tmp_path / "a" / f"{split}.jsonl", lines=True)
        assert len(df) == n and list(df.columns) == ["prompt", "response"]
    prepare_dataset(small_cfg(), tmp_path / "b", seed=0)
    prepare_dataset(small_cfg(), tmp_path / "c", seed=1)
    same = (tmp_path / "a" / "train.jsonl").read_bytes()
    assert same == (tmp_path / "b" / "train.jsonl").read_bytes()
    assert same != (tmp_path / "c" / "train.jsonl").read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["test.jsonl", "train.jsonl", "val.jsonl"]


def test_max_rows_caps_each_split(tmp_path):
    assert prepare_dataset(small_cfg(max_rows=10), tmp_path, seed=0) == {"train": 10, "val": 10, "test": 10}
    rows = [{"prompt": str(i)} for i in range(10)]
    capped = cap_rows(rows, 4, 0, "train")
    assert len(capped) == 4 and capped == sorted(capped, key=lambda r: int(r["prompt"]))
    assert capped == cap_rows(rows, 4, 0, "train") and cap_rows(rows, None, 0, "train") == rows


def test_empty_split_is_an_error_and_writes_nothing(tmp_path):
    alpaca_dsd(n_val=1).save_to_disk(str(tmp_path / "af"))  # 1 val row -> test gets 0 rows
    with pytest.raises(PipelineError, match=r"split 'test' is empty"):
        prepare_dataset(DatasetConfig(name="alpaca_farm", path=str(tmp_path / "af")), tmp_path / "out", seed=0)
    assert not (tmp_path / "out").exists()
