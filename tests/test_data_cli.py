"""The prepare-data stage (rlhf_pipeline.data.cli): a bad row is one line and exit code 2."""

from __future__ import annotations

import json

from data_helpers import imdb_rows, write_folder


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
