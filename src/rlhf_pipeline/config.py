"""Config plumbing shared by every stage.

A stage's settings are a typed dataclass (see e.g. :class:`rlhf_pipeline.sft.SFTConfig`) built from
one section of the workflow config. The JSON Schema in ``workflow/schemas/config.schema.yaml`` is
the contract for config *files* (Snakemake validates it before any job runs); the dataclasses are
the contract for the Python API and the CLI, and a test keeps the two in step (same keys, same
defaults).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import PipelineError

T = TypeVar("T")


def check_section_keys(cls: type, d: Any, where: str) -> None:
    """PipelineError naming ``where`` unless ``d`` is a mapping whose keys are fields of ``cls``."""
    if not isinstance(d, dict):
        raise PipelineError(f"config {where}: expected a mapping, got {type(d).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise PipelineError(f"config {where}: unknown key(s) {unknown}; allowed keys: {names}")


def section_from_dict(cls: type[T], d: dict[str, Any] | None, where: str) -> T:
    """Build dataclass ``cls`` from ``d``; unknown keys raise PipelineError naming them."""
    d = {} if d is None else d
    check_section_keys(cls, d, where)
    return cls(**d)


def load_config_arg(value: str | None) -> dict[str, Any]:
    """The CLI's ``--config``: a JSON object string, or a path to a YAML/JSON file holding one."""
    if value is None:
        return {}
    text = value.strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise PipelineError(f"--config: not valid JSON ({e.msg})") from None
    else:
        path = Path(value)
        if not path.is_file():
            raise PipelineError(f"--config: {value} is neither a JSON object nor an existing file")
        obj = yaml.safe_load(path.read_text()) or {}
    if not isinstance(obj, dict):
        raise PipelineError(f"--config: expected a mapping, got {type(obj).__name__}")
    return obj


def config_hash(obj: Any) -> str:
    """A short stable hash of a config section (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in {"1", "true", "yes"}


def validate_config(config: dict[str, Any], schema_path: str | Path) -> None:
    """Check a whole workflow config against the JSON Schema; one PipelineError line per problem.

    Each line names the key path (``rm.head``), what is wrong and, for enums, the allowed values -
    unlike a raw jsonschema error, whose first line does not say which key failed.
    """
    import jsonschema

    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        key = ".".join(str(p) for p in err.absolute_path) or "<top level>"
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            problems.append(f"{key}: {err.message}; allowed keys: {allowed}" if allowed else f"{key}: {err.message}")
        else:
            problems.append(f"{key}: {err.message}")
    if problems:
        raise PipelineError("invalid config: " + "; ".join(problems))
