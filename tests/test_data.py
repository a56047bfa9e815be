"""Dataset prep: config, the synthetic world and its gold quality, real adapters, the stage."""

from __future__ import annotations

import json
import statistics

import pandas as pd
import pytest
from datasets import Dataset, DatasetDict

from rlhf_pipeline.data import (
    ADAPTERS,
    DatasetConfig,
    SyntheticConfig,
    alpaca_farm,
    anthropic_hh,
    cap_rows,
    get_adapter,
    imdb,
    prepare_dataset,
    synthetic,
)
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import read_jsonl, write_jsonl
from rlhf_pipeline.models import join_text, load_tokenizer

FRUITS = "name some fruits. answer:"


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("minilm")


def small_cfg(**kw) -> DatasetConfig:
    return DatasetConfig(synthetic=SyntheticConfig(n_train=60, n_val=12, n_test=12), **kw)


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Synthetic world: gold quality
# ---------------------------------------------------------------------------------------------

def test_quality_hand_computed_values():
    # d=4 distinct fruits, no repeats, no off-topic, n=5 words -> min(4,5) = 4
    assert synthetic.quality(FRUITS, "apple, banana, cherry and grape") == 4.0
    # d=1, r=3 repeats -> 1 - 3 = -2
    assert synthetic.quality(FRUITS, "apple apple apple apple") == -2.0
    # d=0, o=3 off-topic, n=4 -> 0 - 1.5 - 1 (no answer) = -2.5
    assert synthetic.quality(FRUITS, "dog, cat and horse") == -2.5
    # "i like" + 12 fruits: d=12 capped at 5, n=14 -> 5 - 0.25*(14-12) = 4.5
    assert synthetic.quality(FRUITS, "i like " + " ".join(synthetic.TOPICS["fruits"])) == 4.5
    # d=2, r=1 (second apple), o=1 (dog), n=5 ("and" is filler) -> 2 - 1 - 0.5 = 0.5
    assert synthetic.quality(FRUITS, "apple and pear apple dog") == 0.5
    assert synthetic.quality_terms(FRUITS, "apple and pear apple dog") == {"d": 2, "r": 1, "o": 1, "n": 5}
    # clipping at both ends; empty answer costs the no-answer point
    assert synthetic.quality(FRUITS, " ".join(["apple"] * 20)) == -3.0
    assert synthetic.quality(FRUITS, "") == -1.0


def test_quality_ordering():
    def q(r):
        return synthetic.quality(FRUITS, r)

    assert q("apple banana cherry grape") > q("apple")
    assert q("apple apple apple apple") < q("apple banana cherry grape")
    assert q("dog cat") < q("apple") < q("apple pear")
    assert q("apple pear plum") > q("apple pear plum lion")  # an off-topic word costs
    # quality reads the topic from the prompt: fruit words are off-topic for animals
    assert synthetic.quality("list a few animals. answer:", "apple pear") < 0 < q("apple pear")
    # punctuation and spacing of decoded text do not matter
    assert q("apple , banana and cherry") == q("apple, banana and cherry") == 3.0


def test_quality_needs_a_topic():
    with pytest.raises(PipelineError, match="names no topic"):
        synthetic.quality("tell me a joke. answer:", "apple")


def test_topics_are_disjoint():
    seen = [w for ws in synthetic.TOPICS.values() for w in ws]
    assert len(seen) == len(set(seen))
    assert not set(seen) & synthetic.FILLER


def test_every_word_is_one_minilm_token(tok):
    vocab = set(synthetic.TOPICS) | set(synthetic.FILLER)
    vocab |= {w for ws in synthetic.TOPICS.values() for w in ws}
    for text in (*synthetic.TEMPLATES, *synthetic.OPENERS, *synthetic.LEADS, synthetic.ANSWER_CUE):
        vocab |= set(text.replace("{topic}", "").replace(",", " ").replace(".", " ")
                     .replace("?", " ").replace(":", " ").split())
    multi = [w for w in sorted(vocab) if len(tok.tokenize(w)) != 1]
    assert multi == []


def test_prompts_and_responses_are_short_and_end_on_token_boundary(tok):
    assert max(len(tok(p)["input_ids"]) for p in synthetic.all_prompts()) <= 13  # incl. [CLS]
    rows = synthetic.make_split("train", 300, seed=0)
    for r in rows:
        assert r["prompt"].endswith("answer:") and r["prompt"] == r["prompt"].lower()
        p = tok(r["prompt"])["input_ids"]
        full = tok(join_text(r["prompt"], r["response"]))["input_ids"]
        assert full[:len(p)] == p
        assert len(full) - len(p) <= 24


# ---------------------------------------------------------------------------------------------
# Synthetic world: splits, demonstrations, scored responses
# ---------------------------------------------------------------------------------------------

def test_synthetic_is_deterministic_and_seeded():
    a = synthetic.make_split("train", 50, seed=3)
    assert a == synthetic.make_split("train", 50, seed=3)
    assert a != synthetic.make_split("train", 50, seed=4)
    assert synthetic.sample_scored_responses(40, 1) == synthetic.sample_scored_responses(40, 1)
    assert synthetic.sample_scored_responses(40, 1) != synthetic.sample_scored_responses(40, 2)


def test_synthetic_splits_do_not_share_prompts():
    pool = synthetic.prompt_pool(0)
    train, val, test = (set(pool[s]) for s in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(synthetic.all_prompts())
    for s, prompts in pool.items():  # every topic in every split
        assert {synthetic.topic_of(p) for p in prompts} == set(synthetic.TOPICS), s
    rows = synthetic.make_split("test", 30, seed=0)
    assert {r["prompt"] for r in rows} <= test


def test_demonstrations_are_diverse_in_quality():
    rows = synthetic.make_split("train", 1000, seed=0)
    assert all(set(r) == {"prompt", "response"} for r in rows)  # no chosen/rejected
    qs = [synthetic.quality(r["prompt"], r["response"]) for r in rows]
    assert statistics.pstdev(qs) > 1.5
    assert sum(q >= 3 for q in qs) > 300          # good answers
    assert sum(q <= 0 for q in qs) > 150          # repetitive / off-topic / rambling
    assert sum(0 < q < 3 for q in qs) > 150       # mediocre
    assert len({r["response"] for r in rows}) > 800


def test_scored_responses_cover_the_range_including_degenerate():
    rows = synthetic.sample_scored_responses(1500, seed=0)
    assert all(set(r) == {"prompt", "response", "quality"} for r in rows)
    assert all(r["quality"] == synthetic.quality(r["prompt"], r["response"]) for r in rows)
    qs = [r["quality"] for r in rows]
    assert min(qs) == -3.0 and max(qs) == 5.0
    assert len(set(qs)) > 20
    terms = [synthetic.quality_terms(r["prompt"], r["response"]) for r in rows]
    assert any(t["d"] == 1 and t["r"] >= 8 for t in terms)       # one on-topic word repeated
    assert any(t["n"] >= 16 for t in terms)                      # very long
    assert any(t["n"] <= 1 for t in terms)                       # empty-ish
    assert any(t["d"] == 0 and t["o"] >= 3 for t in terms)       # off-topic


# ---------------------------------------------------------------------------------------------
# Stage
# ---------------------------------------------------------------------------------------------

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


def test_unknown_dataset_lists_registered_names(tmp_path):
    with pytest.raises(PipelineError) as e:
        prepare_dataset(DatasetConfig(name="squad"), tmp_path / "out", seed=0)
    for name in ("'squad'", "synthetic", "alpaca_farm", "anthropic_hh", "imdb"):
        assert name in str(e.value)
    assert not (tmp_path / "out").exists()
    assert get_adapter("synthetic") is ADAPTERS["synthetic"]


# ---------------------------------------------------------------------------------------------
# Real adapters on tiny in-memory data shaped like the real sets
# ---------------------------------------------------------------------------------------------

def alpaca_dsd(n_val: int = 4) -> DatasetDict:
    def part(n, tag):
        return Dataset.from_dict({
            "instruction": [f"{tag} instruction {i}" for i in range(n)],
            "input": ["" if i % 2 == 0 else f"{tag} input {i}" for i in range(n)],
            "output": [f"{tag} output {i}" for i in range(n)],
        })
    return DatasetDict({"sft": part(3, "sft"), "preference": part(2, "pref"),
                        "unlabeled": part(2, "unl"), "val": part(n_val, "val")})


def test_alpaca_farm_convert():
    out = alpaca_farm.convert(alpaca_dsd(), seed=0)
    assert [len(out[s]) for s in ("train", "val", "test")] == [3, 2, 2]
    assert out["train"][0] == {
        "prompt": "Below is an instruction that describes a task. Write a response that "
                  "appropriately completes the request.\n\n### Instruction:\nsft instruction 0"
                  "\n\n### Response:",
        "response": "sft output 0",
    }
    assert out["train"][1]["prompt"] == (
        "Below is an instruction that describes a task, paired with an input that provides "
        "further context. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nsft instruction 1\n\n### Input:\nsft input 1\n\n### Response:")
    val_test = {r["response"] for r in out["val"] + out["test"]}
    assert val_test == {f"val output {i}" for i in range(4)}
    assert out == alpaca_farm.convert(alpaca_dsd(), seed=0)


HH_CHOSEN = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant: An apple."
HH_REJECTED = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant: A car."


def hh_dsd(n_train: int = 20, n_test: int = 3) -> DatasetDict:
    def part(n):
        return Dataset.from_dict({"chosen": [HH_CHOSEN.replace("fruit", f"fruit {i}") for i in range(n)],
                                  "rejected": [HH_REJECTED.replace("fruit", f"fruit {i}") for i in range(n)]})
    return DatasetDict({"train": part(n_train), "test": part(n_test)})


def test_anthropic_hh_split_pair():
    prompt, chosen, rejected = anthropic_hh.split_pair(HH_CHOSEN, HH_REJECTED)
    assert prompt == "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant:"
    assert (chosen, rejected) == ("An apple.", "A car.")
    assert join_text(prompt, chosen) == HH_CHOSEN and join_text(prompt, rejected) == HH_REJECTED
    # responses that start alike still split at the last assistant turn
    p2, c2, r2 = anthropic_hh.split_pair("\n\nHuman: Q\n\nAssistant: A yes", "\n\nHuman: Q\n\nAssistant: A no")
    assert (p2, c2, r2) == ("\n\nHuman: Q\n\nAssistant:", "A yes", "A no")
    assert anthropic_hh.split_pair("no turns here", "none here") is None


def test_anthropic_hh_convert():
    out = anthropic_hh.convert(hh_dsd(), seed=0)
    assert [len(out[s]) for s in ("train", "val", "test")] == [19, 1, 3]
    row = out["test"][0]
    assert set(row) == {"prompt", "response", "chosen", "rejected"}
    assert row["chosen"] == row["response"] == "An apple." and row["rejected"] == "A car."
    assert row["prompt"].endswith("Name a fruit 0.\n\nAssistant:")

    def prompts(s):
        return {r["prompt"] for r in out[s]}

    assert not prompts("train") & prompts("val")
    assert out == anthropic_hh.convert(hh_dsd(), seed=0)
    assert out["val"] != anthropic_hh.convert(hh_dsd(), seed=5)["val"]


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


# ---------------------------------------------------------------------------------------------
# Real adapters through the stage, from local paths, and their errors
# ---------------------------------------------------------------------------------------------

def test_prepare_from_save_to_disk_directory(tmp_path):
    hh_dsd().save_to_disk(str(tmp_path / "hh"))
    counts = prepare_dataset(DatasetConfig(name="anthropic_hh", path=str(tmp_path / "hh"), max_rows=5),
                             tmp_path / "out", seed=0)
    assert counts == {"train": 5, "val": 1, "test": 3}
    rows = read_jsonl(tmp_path / "out" / "train.jsonl", required=["prompt", "chosen", "rejected"])
    assert rows[0]["chosen"] == "An apple."
    df = pd.read_json(tmp_path / "out" / "test.jsonl", lines=True)
    assert list(df.columns) == ["prompt", "response", "chosen", "rejected"]


def test_prepare_from_data_files_directory(tmp_path):
    src = tmp_path / "imdb"
    src.mkdir()
    text = "a b c d e f g h i j k"
    pd.DataFrame({"text": [text] * 6, "label": [0] * 6}).to_json(src / "train.jsonl", orient="records", lines=True)
    pd.DataFrame({"text": [text] * 2, "label": [1] * 2}).to_json(src / "test.jsonl", orient="records", lines=True)
    counts = prepare_dataset(DatasetConfig(name="imdb", path=str(src)), tmp_path / "out", seed=0)
    assert counts == {"train": 5, "val": 1, "test": 2}


def test_missing_column_names_dataset_split_and_column(tmp_path):
    dsd = alpaca_dsd()
    dsd["val"] = dsd["val"].rename_column("output", "answer")
    dsd.save_to_disk(str(tmp_path / "af"))
    with pytest.raises(PipelineError) as e:
        prepare_dataset(DatasetConfig(name="alpaca_farm", path=str(tmp_path / "af")), tmp_path / "out", seed=0)
    msg = str(e.value)
    for w in ("alpaca_farm", str(tmp_path / "af"), "'val'", "'output'", "['instruction', 'input', 'output']"):
        assert w in msg
    assert not (tmp_path / "out").exists()
    with pytest.raises(PipelineError, match=r"no split 'test'"):
        anthropic_hh.convert(DatasetDict({"train": hh_dsd()["train"]}), seed=0)
    with pytest.raises(PipelineError, match=r"split 'train' has no column 'text'"):
        imdb.convert(DatasetDict({"train": Dataset.from_dict({"review": ["x"]}),
                                  "test": Dataset.from_dict({"text": ["x"]})}), seed=0)


def test_empty_split_is_an_error_and_writes_nothing(tmp_path):
    alpaca_dsd(n_val=1).save_to_disk(str(tmp_path / "af"))  # 1 val row -> test gets 0 rows
    with pytest.raises(PipelineError, match=r"split 'test' is empty"):
        prepare_dataset(DatasetConfig(name="alpaca_farm", path=str(tmp_path / "af")), tmp_path / "out", seed=0)
    assert not (tmp_path / "out").exists()


def test_unloadable_path_is_a_pipeline_error(tmp_path):
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(PipelineError, match="unsupported file type"):
        prepare_dataset(DatasetConfig(name="imdb", path=str(tmp_path / "data.txt")), tmp_path / "out", seed=0)



# ---------------------------------------------------------------------------------------------
# Real adapters from folders of data files and save_to_disk directories; bad rows and files
# ---------------------------------------------------------------------------------------------

REVIEW = "This movie was great and I would watch it again"
MODULES = {"alpaca_farm": alpaca_farm, "anthropic_hh": anthropic_hh, "imdb": imdb}


def alpaca_rows(n: int, tag: str) -> list[dict]:
    return [{"instruction": f"{tag} instruction {i}", "input": "" if i % 2 == 0 else f"{tag} input {i}",
             "output": f"{tag} output {i}"} for i in range(n)]


def hh_rows(n: int) -> list[dict]:
    return [{"chosen": HH_CHOSEN.replace("fruit", f"fruit {i}"),
             "rejected": HH_REJECTED.replace("fruit", f"fruit {i}")} for i in range(n)]


def imdb_rows(n: int, label: int = 0) -> list[dict]:
    return [{"text": f"{REVIEW} number {i}", "label": label} for i in range(n)]


NATIVE = {
    "alpaca_farm": {"sft": alpaca_rows(4, "sft"), "val": alpaca_rows(4, "val"), "unlabeled": alpaca_rows(2, "u")},
    "anthropic_hh": {"train": hh_rows(20), "test": hh_rows(3)},
    "imdb": {"train": imdb_rows(20), "test": imdb_rows(3, 1)},
}
"""Tiny sources with each real set's native split names."""


def write_folder(folder, splits: dict[str, list[dict]]):
    """A folder of data files: one ``<split>.jsonl`` per split."""
    for split, rows in splits.items():
        write_jsonl(folder / f"{split}.jsonl", rows)
    return folder


def save_dsd(folder, splits: dict[str, list[dict]]):
    """A ``save_to_disk`` directory with these splits."""
    DatasetDict({s: Dataset.from_list(rows) for s, rows in splits.items()}).save_to_disk(str(folder))
    return folder


def in_memory(name: str, splits: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return MODULES[name].convert(DatasetDict({s: Dataset.from_list(r) for s, r in splits.items()}), seed=0)


def prepared(tmp_path, name: str, path, out: str = "out") -> dict[str, list[dict]]:
    """Run the stage on ``path`` and read back the three split files."""
    prepare_dataset(DatasetConfig(name=name, path=str(path)), tmp_path / out, seed=0)
    return {s: read_jsonl(tmp_path / out / f"{s}.jsonl") for s in ("train", "val", "test")}


def prepare_error(tmp_path, name: str, path) -> str:
    """The one-line PipelineError of the stage on ``path``; nothing may be written."""
    with pytest.raises(PipelineError) as e:
        prepare_dataset(DatasetConfig(name=name, path=str(path)), tmp_path / "out", seed=0)
    assert not (tmp_path / "out").exists()
    msg = str(e.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("name", sorted(NATIVE))
def test_folder_and_save_to_disk_with_native_split_names(tmp_path, name):
    expected = in_memory(name, NATIVE[name])
    assert prepared(tmp_path, name, write_folder(tmp_path / "folder", NATIVE[name]), "a") == expected
    assert prepared(tmp_path, name, save_dsd(tmp_path / "disk", NATIVE[name]), "b") == expected


PROJECT = {
    "alpaca_farm": {"train": alpaca_rows(4, "sft"), "val": alpaca_rows(3, "val"), "test": alpaca_rows(2, "test")},
    "anthropic_hh": {"train": hh_rows(5), "val": hh_rows(2), "test": hh_rows(3)},
    "imdb": {"train": imdb_rows(5), "val": imdb_rows(2), "test": imdb_rows(3, 1)},
}
"""Tiny sources with the project's split names: every split used as it is."""


@pytest.mark.parametrize("name", sorted(PROJECT))
@pytest.mark.parametrize("val_name", ["val", "validation"])
def test_folder_and_save_to_disk_with_project_split_names(tmp_path, name, val_name):
    splits = {val_name if s == "val" else s: rows for s, rows in PROJECT[name].items()}
    from_folder = prepared(tmp_path, name, write_folder(tmp_path / "folder", splits), "a")
    assert from_folder == prepared(tmp_path, name, save_dsd(tmp_path / "disk", splits), "b")
    assert [len(from_folder[s]) for s in ("train", "val", "test")] == [len(PROJECT[name][s]) for s in
                                                                        ("train", "val", "test")]
    if name == "alpaca_farm":
        assert from_folder["test"][0]["response"] == "test output 0"
        assert from_folder["train"] == in_memory(name, NATIVE[name])["train"]


def test_alpaca_farm_folder_without_test_halves_val_and_ignores_other_files(tmp_path):
    folder = write_folder(tmp_path / "af", {"train": alpaca_rows(4, "sft"), "validation": alpaca_rows(4, "val")})
    (folder / "README.md").write_text("not data")
    write_jsonl(folder / "notes.jsonl", [{"x": 1}])
    assert prepared(tmp_path, "alpaca_farm", folder) == in_memory("alpaca_farm", NATIVE["alpaca_farm"])


def test_folder_split_names_that_clash_or_are_missing(tmp_path):
    folder = write_folder(tmp_path / "af", {"sft": alpaca_rows(2, "a"), "train": alpaca_rows(2, "b"),
                                            "val": alpaca_rows(2, "v")})
    msg = prepare_error(tmp_path, "alpaca_farm", folder)
    assert "['sft', 'train']" in msg and "keep one" in msg
    folder = write_folder(tmp_path / "hh", {"train": hh_rows(2)})
    write_jsonl(folder / "train.json", hh_rows(2))
    assert "split 'train' has several data files ['train.json', 'train.jsonl']" in prepare_error(
        tmp_path, "anthropic_hh", folder)
    folder = write_folder(tmp_path / "imdb", {"train": imdb_rows(2), "dev": imdb_rows(2)})
    msg = prepare_error(tmp_path, "imdb", folder)
    assert "no split 'test'; found ['train']" in msg and "test.<ext>" in msg


def test_alpaca_input_may_be_null_or_empty(tmp_path):
    rows = alpaca_rows(2, "sft")
    rows[1]["input"] = None
    out = prepared(tmp_path, "alpaca_farm", write_folder(tmp_path / "af", {"sft": rows, "val": alpaca_rows(2, "v")}))
    assert "### Input:" not in out["train"][1]["prompt"]
    assert out["train"][1]["prompt"] == alpaca_farm.alpaca_prompt("sft instruction 1")


BAD_FIELDS = [  # (dataset, source split, row, field, bad value, problem)
    ("imdb", "train", 1, "text", None, "is null"),
    ("imdb", "test", 2, "text", "", "is empty"),
    ("anthropic_hh", "train", 3, "rejected", None, "is null"),
    ("anthropic_hh", "test", 0, "chosen", " \n ", "holds only whitespace"),
    ("alpaca_farm", "sft", 1, "instruction", None, "is null"),
    ("alpaca_farm", "val", 2, "output", "", "is empty"),
]


def with_value(splits: dict[str, list[dict]], split: str, row: int, field: str, value) -> dict[str, list[dict]]:
    """A copy of ``splits`` with one field of one row replaced."""
    out = {s: [dict(r) for r in rows] for s, rows in splits.items()}
    out[split][row][field] = value
    return out


@pytest.mark.parametrize("name, split, row, field, value, problem", BAD_FIELDS)
def test_bad_text_field_names_file_split_row_and_field(tmp_path, name, split, row, field, value, problem):
    splits = with_value(NATIVE[name], split, row, field, value)
    assert prepare_error(tmp_path, name, save_dsd(tmp_path / "disk", splits)) == (
        f"dataset {name}: {tmp_path / 'disk'}: split {split!r} row {row}: field {field!r} {problem}; "
        "expected a non-empty string")
    folder = write_folder(tmp_path / "folder", splits)
    (folder / f"{split}.jsonl").write_text("\n" + (folder / f"{split}.jsonl").read_text())  # a blank line 1
    assert prepare_error(tmp_path, name, folder) == (
        f"dataset {name}: {folder / f'{split}.jsonl'}:{row + 2}: split {split!r} row {row}: field {field!r} "
        f"{problem}; expected a non-empty string")


@pytest.mark.parametrize("name, split, field, value, expected", [
    ("imdb", "train", "text", 7, "is a int (7); expected a non-empty string"),
    ("alpaca_farm", "val", "input", 3, "is a int (3); expected a string or null"),
])
def test_text_field_of_another_type_in_a_data_file(tmp_path, name, split, field, value, expected):
    folder = write_folder(tmp_path / "folder", with_value(NATIVE[name], split, 0, field, value))
    assert prepare_error(tmp_path, name, folder) == (
        f"dataset {name}: {folder / f'{split}.jsonl'}:1: split {split!r} row 0: field {field!r} {expected}")


def test_non_utf8_byte_names_file_and_line(tmp_path):
    folder = write_folder(tmp_path / "imdb", {"train": imdb_rows(3), "test": imdb_rows(2)})
    data = (folder / "train.jsonl").read_bytes().replace(b"number 2", b"caf\xe9 2")
    (folder / "train.jsonl").write_bytes(data)
    column = data.splitlines()[2].index(b"\xe9") + 1
    assert prepare_error(tmp_path, "imdb", folder) == (
        f"dataset imdb: {folder / 'train.jsonl'}:3: not valid UTF-8 (byte 0xe9 at column {column}); "
        "data files must be UTF-8 encoded")
    (tmp_path / "hh.csv").write_bytes(b"chosen,rejected\n\"a\",\"b\"\n\"\xff\",\"c\"\n")
    assert prepare_error(tmp_path, "anthropic_hh", tmp_path / "hh.csv") == (
        f"dataset anthropic_hh: {tmp_path / 'hh.csv'}:3: not valid UTF-8 (byte 0xff at column 2); "
        "data files must be UTF-8 encoded")


def test_non_utf8_byte_in_a_folder_datasets_lays_out_names_the_row(tmp_path):
    # no <split>.<ext> at the top: datasets infers the splits (e.g. a hub snapshot); the check is per row
    folder = write_folder(tmp_path / "snap" / "data", {"train": imdb_rows(3), "test": imdb_rows(2)})
    (folder / "train.jsonl").write_bytes((folder / "train.jsonl").read_bytes().replace(b"number 1", b"\xe9"))
    assert prepare_error(tmp_path, "imdb", tmp_path / "snap") == (
        f"dataset imdb: {tmp_path / 'snap'}: split 'train' row 1: field 'text' is not valid UTF-8")


@pytest.mark.parametrize("content, what", [(b"", "0 bytes"), (b"\n  \n\n", "only blank lines")])
def test_empty_data_file_is_named(tmp_path, content, what):
    folder = write_folder(tmp_path / "hh", {"train": hh_rows(3), "test": hh_rows(2)})
    (folder / "test.jsonl").write_bytes(content)
    assert prepare_error(tmp_path, "anthropic_hh", folder) == (
        f"dataset anthropic_hh: {folder / 'test.jsonl'}: empty file ({what}); expected rows of data")
    (tmp_path / "one.csv").write_bytes(content)
    assert f"{tmp_path / 'one.csv'}: empty file ({what})" in prepare_error(tmp_path, "imdb", tmp_path / "one.csv")


def test_empty_data_file_in_a_folder_datasets_lays_out_is_named(tmp_path):
    folder = write_folder(tmp_path / "snap" / "data", {"train": imdb_rows(3)})
    (folder / "test.jsonl").write_bytes(b"")
    assert f"{folder / 'test.jsonl'}: empty file (0 bytes)" in prepare_error(tmp_path, "imdb", tmp_path / "snap")


def test_cli_reports_a_bad_row_in_one_line_with_exit_code_2(tmp_path, capsys):
    from rlhf_pipeline.cli import main

    splits = {"train": imdb_rows(3), "test": imdb_rows(2)}
    splits["train"][1]["text"] = None
    folder = write_folder(tmp_path / "imdb", splits)
    config = json.dumps({"name": "imdb", "path": str(folder)})
    assert main(["prepare-data", "--config", config, "--out-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"error: dataset imdb: {folder / 'train.jsonl'}:2: split 'train' row 1: field 'text' is null; "
                   "expected a non-empty string")
    assert not (tmp_path / "out").exists()
