"""The IMDB adapter (rlhf_pipeline.data.imdb): cleaned reviews split into prompt and response, shuffled
rows."""

from __future__ import annotations

from datasets import Dataset, DatasetDict

from rlhf_pipeline.data import imdb
from rlhf_pipeline.models import join_text


def test_imdb_convert():
    text = "This movie was great.<br /><br />I loved every minute of it and would watch again"
    dsd = DatasetDict({"train": Dataset.from_dict({"text": [text] * 4, "label": [1] * 4}),
                       "test": Dataset.from_dict({"text": [text, "too short"], "label": [0, 1]})})
    out = imdb.convert(dsd, seed=0)
    clean = "This movie was great. I loved every minute of it and would watch again"
    for rows in out.values():
        for r in rows:
            assert set(r) == {"prompt", "response"}
            assert join_text(r["prompt"], r["response"]) == clean
            assert 4 <= len(r["prompt"].split()) <= 8
    # val carved from train (5% of 4 rows, at least 1); the 2-word review has no response: skipped
    assert [len(out[s]) for s in ("train", "val", "test")] == [3, 1, 1]
    assert imdb.split_review("one two three", 2) == ("one two", "three")
    assert imdb.split_review("one two", 2) is None


def test_imdb_rows_are_shuffled_so_the_first_eval_prompts_are_not_all_one_label():
    texts = [f"negative review number {i} was dull and slow" for i in range(20)]
    texts += [f"positive review number {i} was bright and fun" for i in range(20)]
    dsd = DatasetDict({"train": Dataset.from_dict({"text": texts, "label": [0] * 20 + [1] * 20}),
                       "test": Dataset.from_dict({"text": texts, "label": [0] * 20 + [1] * 20})})
    first = [r["prompt"].split()[0] for r in imdb.convert(dsd, seed=0)["test"][:10]]
    assert {"negative", "positive"} <= set(first)  # the source is sorted by label; the split is not
    assert imdb.convert(dsd, seed=0) == imdb.convert(dsd, seed=0)
