"""Dataset name -> adapter (rlhf_pipeline.data.registry)."""

from __future__ import annotations

import pytest

from rlhf_pipeline.data import ADAPTERS, DatasetConfig, get_adapter, prepare_dataset
from rlhf_pipeline.errors import PipelineError


def test_unknown_dataset_lists_registered_names(tmp_path):
    with pytest.raises(PipelineError) as e:
        prepare_dataset(DatasetConfig(name="squad"), tmp_path / "out", seed=0)
    for name in ("'squad'", "synthetic", "alpaca_farm", "anthropic_hh", "imdb"):
        assert name in str(e.value)
    assert not (tmp_path / "out").exists()
    assert get_adapter("synthetic") is ADAPTERS["synthetic"]
