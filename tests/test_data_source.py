"""Loading a dataset source (rlhf_pipeline.data.source): save_to_disk directories, folders of data
files with native or project split names, and bad rows, files and encodings named in one line."""

from __future__ import annotations

import pandas as pd
import pytest
from data_helpers import NATIVE, alpaca_dsd, alpaca_rows, hh_dsd, hh_rows, imdb_rows, in_memory, prepared, write_folder
from datasets import Dataset, DatasetDict

from rlhf_pipeline.data import DatasetConfig, anthropic_hh, imdb, prepare_dataset
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import read_jsonl, write_jsonl


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


def test_unloadable_path_is_a_pipeline_error(tmp_path):
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(PipelineError, match="unsupported file type"):
        prepare_dataset(DatasetConfig(name="imdb", path=str(tmp_path / "data.txt")), tmp_path / "out", seed=0)


def save_dsd(folder, splits: dict[str, list[dict]]):
    """A ``save_to_disk`` directory with these splits."""
    DatasetDict({s: Dataset.from_list(rows) for s, rows in splits.items()}).save_to_disk(str(folder))
    return folder


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
