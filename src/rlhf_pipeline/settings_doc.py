"""The settings reference of ``config/README.md``, generated from the config dataclasses.

Nothing here is written by hand: the reference is rendered from the workflow's JSON Schema
(:func:`rlhf_pipeline.workflow_config.workflow_schema`), which is itself derived from each setting's one
declaration (``setting(default, help=..., ge=..., choices=...)``). One table per config section: key,
type, default, allowed range or values, help. A named collection (``ppo.runs``, ``rm.members``, ...) gets
its own table, headed ``<section>.<name>``, for the settings of one entry.

``config/README.md`` holds the rendered text between :data:`BEGIN` and :data:`END`;
``python -m rlhf_pipeline settings-reference --write config/README.md`` (:func:`update_settings_reference`)
rewrites it, and ``tests/test_docs.py`` keeps the file equal to :func:`render_settings_reference`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PipelineError

BEGIN = "<!-- settings-reference:begin -->"
END = "<!-- settings-reference:end -->"

_NO_DEFAULT = object()
_TYPE_NAMES = {"integer": "int", "number": "float", "boolean": "bool", "string": "str", "object": "mapping",
               "array": "list", "null": "null"}
_VALUE_TYPES = {str: "str", bool: "bool", int: "int", float: "float"}
_BOUNDS = (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<"))


@dataclass
class _Table:
    """One config section: its key path, its help, and one row per plain setting."""

    path: str
    help: str
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)


def render_settings_reference() -> str:
    """The settings reference as markdown: one table per config section (key, type, default, allowed
    values, help), every cell derived from the config dataclasses."""
    from .workflow_config import workflow_schema

    tables: list[_Table] = []
    _walk(workflow_schema(), "", "Settings outside any section.", _NO_DEFAULT, tables)
    parts = []
    for t in tables:
        lines = [f"### `{t.path}`" if t.path else "### top level"]
        if t.help:
            lines.append(_cell(t.help))
        if t.rows:
            lines.append("| key | type | default | allowed | help |\n|---|---|---|---|---|\n"
                         + "\n".join("| " + " | ".join(row) + " |" for row in t.rows))
        parts.append("\n\n".join(lines))
    return "\n\n".join(parts) + "\n"


def update_settings_reference(path: str | Path) -> bool:
    """Replace the text between the ``settings-reference`` markers of ``path`` (``config/README.md``) with
    :func:`render_settings_reference`; True if the file changed."""
    path = Path(path)
    text = path.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise PipelineError(f"{path}: expected one {BEGIN} line followed by one {END} line")
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    new = f"{before}{BEGIN}\n{render_settings_reference()}{END}{after}"
    if new == text:
        return False
    path.write_text(new)
    return True


def between_markers(text: str) -> str:
    """The text between the markers (what :func:`render_settings_reference` returned when it was written)."""
    if BEGIN not in text or END not in text:
        raise PipelineError(f"no {BEGIN} ... {END} block")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].removeprefix("\n")


# ---- walking the schema ------------------------------------------------------------------------------------

def _is_section(schema: dict[str, Any]) -> bool:
    return "properties" in schema


def _collection_entry(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The entry schema of a named collection (``dict[str, Section]``), else None."""
    entry = schema.get("additionalProperties")
    return entry if isinstance(entry, dict) and _is_section(entry) else None


def _walk(schema: dict[str, Any], path: str, help_text: str, default: Any, tables: list[_Table]) -> None:
    """Append the table of section ``schema`` at ``path``, then those of its nested sections in field order.
    ``default``: the section's effective default (a nested section's default may differ from its class's)."""
    table = _Table(path, help_text)
    tables.append(table)
    nested = []
    for key, prop in schema["properties"].items():
        own = prop.get("default", _NO_DEFAULT)
        value = default.get(key, own) if isinstance(default, dict) else own
        sub = f"{path}.{key}" if path else key
        entry = _collection_entry(prop)
        if _is_section(prop):
            nullable = " May be null; default " + _default(value) + "." if "null" in prop.get("type", ()) else ""
            nested.append((prop, sub, prop.get("description", "") + nullable, value))
            continue
        if entry is not None:
            nested.append((entry, f"{sub}.<name>", f"One entry of `{sub}` (a mapping of names to entries). "
                           + prop.get("description", ""), _NO_DEFAULT))
        table.rows.append((f"`{key}`", _type(prop), _default(value), _allowed(prop),
                           _cell(prop.get("description", ""))))
    for args in nested:
        _walk(*args, tables)


def _type(schema: dict[str, Any]) -> str:
    types = schema.get("type")
    types = types if isinstance(types, list) else [types] if types else []
    names = [_one_type(schema, t) for t in types if t != "null"]
    if "enum" in schema:
        names = sorted({_VALUE_TYPES[type(v)] for v in schema["enum"] if v is not None}) or names
    if not names:
        names = ["any"]
    if "null" in types or None in schema.get("enum", ()):
        names.append("null")
    return " \\| ".join(names)


def _one_type(schema: dict[str, Any], name: str) -> str:
    if name == "array":
        return f"list[{_type(schema.get('items', {}))}]"
    if name == "object":
        entry = schema.get("additionalProperties")
        if _is_section(schema):
            return "mapping (section)"
        if _collection_entry(schema) is not None:
            return "mapping of name to entry"
        if isinstance(entry, dict):
            return f"dict[str, {_type(entry)}]"
    return _TYPE_NAMES[name]


def _allowed(schema: dict[str, Any]) -> str:
    out = _limits(schema)
    items = schema.get("items")
    if isinstance(items, dict):
        out += [f"each {limit}" for limit in _limits(items)]
    if "minItems" in schema:
        out.append(f"at least {schema['minItems']} item(s)")
    if schema.get("uniqueItems"):
        out.append("no repeats")
    return "; ".join(out)


def _limits(schema: dict[str, Any]) -> list[str]:
    out = [f"{word} {schema[key]}" for key, word in _BOUNDS if key in schema]
    if "enum" in schema:
        out.append("one of " + ", ".join(_code(v) for v in schema["enum"]))
    return out


def _default(value: Any) -> str:
    return "required" if value is _NO_DEFAULT else _code(value)


def _code(value: Any) -> str:
    return "`" + json.dumps(value).replace("|", "\\|") + "`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


__all__ = ["BEGIN", "END", "between_markers", "render_settings_reference", "update_settings_reference"]
