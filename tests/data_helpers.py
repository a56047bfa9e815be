"""Tiny datasets shaped like the real ones (AlpacaFarm, Anthropic HH, IMDB), as in-memory DatasetDicts and as
folders of data files, and the dataset stage run on them; shared by the data tests."""

from __future__ import annotations

from datasets import Dataset, DatasetDict

from rlhf_pipeline.data import DatasetConfig, alpaca_farm, anthropic_hh, imdb, prepare_dataset
from rlhf_pipeline.io import read_jsonl, write_jsonl


def alpaca_dsd(n_val: int = 4) -> DatasetDict:
    def part(n, tag):
        return Dataset.from_dict({
            "instruction": [f"{tag} instruction {i}" for i in range(n)],
            "input": ["" if i % 2 == 0 else f"{tag} input {i}" for i in range(n)],
            "output": [f"{tag} output {i}" for i in range(n)],
        })
    return DatasetDict({"sft": part(3, "sft"), "preference": part(2, "pref"),
                        "unlabeled": part(2, "unl"), "val": part(n_val, "val")})


HH_CHOSEN = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant: An apple."
HH_REJECTED = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant: A car."


def hh_dsd(n_train: int = 20, n_test: int = 3) -> DatasetDict:
    def part(n):
        return Dataset.from_dict({"chosen": [HH_CHOSEN.replace("fruit", f"fruit {i}") for i in range(n)],
                                  "rejected": [HH_REJECTED.replace("fruit", f"fruit {i}") for i in range(n)]})
    return DatasetDict({"train": part(n_train), "test": part(n_test)})


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


def in_memory(name: str, splits: dict[str, list[dict]]) -> dict[str, list[dict]]:
    return MODULES[name].convert(DatasetDict({s: Dataset.from_list(r) for s, r in splits.items()}), seed=0)


def prepared(tmp_path, name: str, path, out: str = "out") -> dict[str, list[dict]]:
    """Run the stage on ``path`` and read back the three split files."""
    prepare_dataset(DatasetConfig(name=name, path=str(path)), tmp_path / out, seed=0)
    return {s: read_jsonl(tmp_path / out / f"{s}.jsonl") for s in ("train", "val", "test")}
