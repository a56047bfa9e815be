"""The AlpacaFarm adapter (rlhf_pipeline.data.alpaca_farm): its prompt template, splits, a folder
without a test split, a null input."""

from __future__ import annotations

from data_helpers import NATIVE, alpaca_dsd, alpaca_rows, in_memory, prepared, write_folder

from rlhf_pipeline.data import alpaca_farm
from rlhf_pipeline.io import write_jsonl


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


def test_alpaca_farm_folder_without_test_halves_val_and_ignores_other_files(tmp_path):
    folder = write_folder(tmp_path / "af", {"train": alpaca_rows(4, "sft"), "validation": alpaca_rows(4, "val")})
    (folder / "README.md").write_text("not data")
    write_jsonl(folder / "notes.jsonl", [{"x": 1}])
    assert prepared(tmp_path, "alpaca_farm", folder) == in_memory("alpaca_farm", NATIVE["alpaca_farm"])


def test_alpaca_input_may_be_null_or_empty(tmp_path):
    rows = alpaca_rows(2, "sft")
    rows[1]["input"] = None
    out = prepared(tmp_path, "alpaca_farm", write_folder(tmp_path / "af", {"sft": rows, "val": alpaca_rows(2, "v")}))
    assert "### Input:" not in out["train"][1]["prompt"]
    assert out["train"][1]["prompt"] == alpaca_farm.alpaca_prompt("sft instruction 1")
