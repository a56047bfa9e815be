"""Dataset settings (rlhf_pipeline.data.config): defaults, values, bad keys and values."""

from __future__ import annotations

import pytest

from rlhf_pipeline.data import DatasetConfig
from rlhf_pipeline.errors import PipelineError


def test_config_from_dict_defaults_and_values():
    cfg = DatasetConfig.from_dict({"name": "synthetic", "path": None, "max_rows": None,
                                   "synthetic": {"n_train": 2000, "n_val": 200, "n_test": 200}})
    assert cfg == DatasetConfig()
    cfg = DatasetConfig.from_dict({"name": "imdb", "max_rows": 5, "synthetic": {"n_val": 7}})
    assert (cfg.name, cfg.max_rows, cfg.synthetic.n_val, cfg.synthetic.n_train) == ("imdb", 5, 7, 2000)


@pytest.mark.parametrize("d, words", [
    ({"nme": "synthetic"}, ["'nme'", "name", "max_rows", "synthetic"]),
    ({"synthetic": {"n_trian": 3}}, ["dataset.synthetic", "'n_trian'", "n_train"]),
    ({"max_rows": 0}, ["dataset.max_rows", "expected >= 1"]),
    ({"synthetic": {"n_test": "10"}}, ["dataset.synthetic.n_test"]),
])
def test_config_rejects_bad_keys_and_values(d, words):
    with pytest.raises(PipelineError) as e:
        DatasetConfig.from_dict(d)
    for w in words:
        assert w in str(e.value)
