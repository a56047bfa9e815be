"""AlpacaFarm instructions (``tatsu-lab/alpaca_farm``, config ``alpaca_instructions``).

Source splits ``sft`` (10k), ``preference`` (20k), ``unlabeled`` (20k) and ``val`` (2k), each with
columns ``instruction``, ``input``, ``output``. Mapping:

- ``sft`` -> ``train``: prompt in the Alpaca format, ``response`` = ``output`` (SFT demonstration);
- ``val`` -> ``val`` and ``test``: a seeded shuffle puts half of ``val`` (rounded down) in ``test``
  and the rest in ``val``, both with ``response`` = ``output``;
- ``preference`` and ``unlabeled`` are not used (preference pairs are sampled from the SFT policy
  on the ``train`` prompts and labelled by the gold RM).

The project's own split names work too: ``train`` instead of ``sft``, ``validation`` instead of
``val``, and a ``test`` split, if present, becomes ``test`` as it is (``val`` is then not halved).
``instruction`` and ``output`` must be non-empty strings; ``input`` may be empty or null (no
``### Input:`` block).

A folder of data files (``dataset.path``) holds one file per split, ``<split>.<ext>`` with
``<ext>`` one of ``.jsonl``, ``.json``, ``.csv``, ``.parquet``:

- ``sft.<ext>`` or ``train.<ext>`` (required) -> ``train``;
- ``val.<ext>`` or ``validation.<ext>`` (required) -> ``val`` (and ``test`` if there is no test file);
- ``test.<ext>`` (optional) -> ``test``.

Other files in the folder are ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .source import IN_MEMORY, Layout, Origin, as_origin, carve, column, load_source, read_splits

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

NAME = "alpaca_farm"
DEFAULT_PATH = "tatsu-lab/alpaca_farm"
CONFIG_NAME = "alpaca_instructions"
COLUMNS = ["instruction", "input", "output"]
LAYOUT = Layout(splits={"train": ("sft", "train"), "val": ("val", "validation"), "test": ("test",)},
                optional="test", columns=COLUMNS, required=("instruction", "output"), nullable=("input",))

PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately "
    "completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:"
)
PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)


def alpaca_prompt(instruction: str, input: str | None = None) -> str:
    """The Alpaca prompt, with the ``### Input:`` block only when ``input`` is non-empty."""
    if input:
        return PROMPT_WITH_INPUT.format(instruction=instruction, input=input)
    return PROMPT_NO_INPUT.format(instruction=instruction)


def is_alpaca_prompt(text: str) -> bool:
    """True when ``text`` is an Alpaca prompt (either template, ending in ``### Response:``)."""
    text = text.strip()
    return (text.startswith((PROMPT_NO_INPUT.split("{")[0], PROMPT_WITH_INPUT.split("{")[0]))
            and text.endswith("### Response:"))


def _rows(ds: Dataset) -> list[dict[str, Any]]:
    return [
        {"prompt": alpaca_prompt(i, x), "response": o}
        for i, x, o in zip(column(ds, "instruction"), column(ds, "input"), column(ds, "output"))
    ]


def convert(dsd: DatasetDict, seed: int, source: str | Origin = IN_MEMORY
            ) -> dict[str, list[dict[str, Any]]]:
    """AlpacaFarm DatasetDict -> rows per split (mapping in the module docstring)."""
    picked = read_splits(dsd, as_origin(source, NAME), LAYOUT)
    if "test" in picked:
        val, test = dsd[picked["val"]], dsd[picked["test"]]
    else:
        val, test = carve(dsd[picked["val"]], len(dsd[picked["val"]]) // 2, seed, f"{NAME}/test")
    return {"train": _rows(dsd[picked["train"]]), "val": _rows(val), "test": _rows(test)}


def load_rows(cfg, seed: int) -> dict[str, list[dict[str, Any]]]:
    """The ``alpaca_farm`` adapter: load ``cfg.path`` (or the hub default) and convert it."""
    dsd, origin = load_source(NAME, cfg.path, DEFAULT_PATH, CONFIG_NAME, LAYOUT.names)
    return convert(dsd, seed, origin)
