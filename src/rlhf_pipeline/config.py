"""Config plumbing shared by every stage: one typed dataclass per config section is the single
definition of its settings.

Each setting is declared once, with :func:`setting`: its type (the annotation), default, range or
allowed values, and help text (TRL's ``field(metadata={"help": ...})`` style)::

    @dataclass
    class RMConfig(Section):
        epochs: float = setting(2, gt=0, help="Passes over the training pairs.")

Everything that must agree is derived from that declaration:

- validation (:meth:`Section.from_dict`, and ``__post_init__`` for direct construction): unknown
  keys, wrong types and out-of-range values raise one :class:`PipelineError` line naming the full
  key path (``ppo.runs.seed1.hparams.kl_coef``) and what is allowed; cross-field rules live in each
  section's :meth:`Section.check`, once;
- the workflow's JSON Schema (:func:`json_schema`; ``workflow/schemas/config.schema.yaml`` is
  generated from it by ``python -m rlhf_pipeline schema``, and a test keeps the file equal);
- the CLI's ``--help`` (:func:`settings_help`).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import hashlib
import json
import math
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from .errors import PipelineError

T = TypeVar("T", bound="Section")
MISSING = dataclasses.MISSING

# The key path of the section being built by from_dict, so __post_init__ names the full path.
_WHERE: contextvars.ContextVar[str | None] = contextvars.ContextVar("config_where", default=None)


def setting(default: Any = MISSING, *, help: str, default_factory: Any = MISSING, ge: float | None = None,
            gt: float | None = None, le: float | None = None, lt: float | None = None,
            choices: tuple | None = None, min_items: int | None = None, unique: bool = False) -> Any:
    """A config field: its default, allowed range (``ge``/``gt``/``le``/``lt``), allowed values
    (``choices``; matched case-insensitively and returned in their canonical spelling), list
    constraints (``min_items``, ``unique``) and ``help`` text, all in one place."""
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices,
            "min_items": min_items, "unique": unique}
    meta = {k: v for k, v in meta.items() if v is not None and v is not False}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@contextlib.contextmanager
def _at(where: str) -> Iterator[None]:
    token = _WHERE.set(where)
    try:
        yield
    finally:
        _WHERE.reset(token)


class Section:
    """Base of every config section (a dataclass). Subclasses set ``section`` (the key path used
    when they are built directly) and may override :meth:`check` for cross-field rules."""

    section: ClassVar[str] = "config"

    def __post_init__(self) -> None:
        where = _WHERE.get()
        where = self.section if where is None else where
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = _onto_default(f, getattr(self, f.name))
            value = convert(hints[f.name], value, join(where, f.name), f.metadata)
            setattr(self, f.name, value)
        self.check(where)

    def check(self, where: str) -> None:
        """Cross-field rules; raise :func:`bad` naming ``where.<key>``. Default: none."""

    @classmethod
    def from_dict(cls: type[T], d: Any, where: str | None = None) -> T:
        """Build from a mapping; unknown keys, wrong types and out-of-range values raise
        PipelineError naming ``where.<key>`` (default: the class's ``section``; ``""`` = top level)."""
        where = cls.section if where is None else where
        d = {} if d is None else d
        check_keys(cls, d, where)
        with _at(where):
            return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (nested sections as dicts)."""
        return dataclasses.asdict(self)


def _onto_default(f: dataclasses.Field, value: Any) -> Any:
    """A mapping given for a nested section whose default is not its class's defaults
    (``setting(default_factory=lambda: SFTConfig(epochs=2))``) overrides that default key by key: the
    factory's values are the setting's defaults, so a partial mapping keeps the ones it does not name."""
    if not isinstance(value, dict) or f.default_factory is MISSING:
        return value
    default = f.default_factory()
    if not isinstance(default, Section):
        return value
    return deep_merge(default.to_dict(), value)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged onto ``base`` key by key, nested mappings included (new dicts; inputs unchanged)."""
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def join(where: str, key: str) -> str:
    """The key path of ``key`` inside section ``where`` (``""`` = the top level)."""
    return f"{where}.{key}" if where else key


def _config(where: str) -> str:
    return f"config {where}" if where else "config"


def check_keys(cls: type, d: Any, where: str) -> None:
    """PipelineError naming ``where`` unless ``d`` is a mapping whose keys are fields of ``cls``."""
    if not isinstance(d, dict):
        raise PipelineError(f"{_config(where)}: expected a mapping, got {type(d).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(map(str, d)) - set(names))
    if unknown:
        raise PipelineError(f"{_config(where)}: unknown key(s) {unknown}; allowed keys: {names}")
    missing = [f.name for f in dataclasses.fields(cls)
               if f.default is MISSING and f.default_factory is MISSING and f.name not in d]
    if missing:
        raise PipelineError(f"{_config(where)}: missing required key(s) {missing}")


def bad(where: str, value: Any, expected: str) -> typing.NoReturn:
    """Raise the one-line config error: key path, the value given (as :func:`~rlhf_pipeline.io.redact` writes
    it: secret-looking keys redacted, URL keys cut to their public part) and what was expected."""
    from .io import REDACTED, is_secret_key, redact

    key = where.rsplit(".", 1)[-1]
    shown = REDACTED if is_secret_key(key) else repr(redact({key: value})[key])
    raise PipelineError(f"{_config(where)}: got {shown}, expected {expected}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A section's resolved field types (read-only; once per class: a plan builds thousands of sections)."""
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, Section)


def _optional(tp: Any) -> tuple[Any, bool]:
    """``(inner, True)`` for ``X | None``; ``(tp, False)`` otherwise."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


@functools.cache
def _shape(tp: Any) -> tuple[Any, bool, Any]:
    """``(inner, nullable, origin)`` of a setting's type (:func:`_optional`, then ``typing.get_origin``), once
    per type: a sweep's plan converts tens of thousands of values."""
    inner, nullable = _optional(tp)
    return inner, nullable, typing.get_origin(inner)


def _describe(tp: Any) -> str:
    tp, nullable = _optional(tp)
    origin = typing.get_origin(tp)
    if origin is list:
        item = typing.get_args(tp)[0]
        text = "a list of " + {int: "integers", float: "numbers", bool: "booleans", str: "strings"}.get(item, "values")
    elif origin is dict or _is_section(tp):
        text = "a mapping"
    else:
        text = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(tp, "a value")
    return f"{text} or null" if nullable else text


def convert(tp: Any, value: Any, where: str, meta: Any = None) -> Any:
    """``value`` checked against type ``tp`` and the field's ``meta`` constraints, converted where
    that is lossless (int -> float, a mapping -> its section dataclass, a choice -> its canonical
    spelling). Raises PipelineError naming ``where``."""
    meta = meta or {}
    inner, nullable, origin = _shape(tp)
    if value is None:
        if nullable or tp is Any:
            return None
        bad(where, value, _describe(tp))
    tp = inner
    if tp is Any:
        return value
    if _is_section(tp):
        if isinstance(value, tp):
            return value
        return tp.from_dict(value, where)
    if origin is list:
        if not isinstance(value, list):
            bad(where, value, _describe(tp))
        (item_tp,) = typing.get_args(tp)
        item_meta = {k: meta[k] for k in ("ge", "gt", "le", "lt", "choices") if k in meta}
        value = [convert(item_tp, v, f"{where}[{i}]", item_meta) for i, v in enumerate(value)]
        if len(value) < meta.get("min_items", 0):
            bad(where, value, f"at least {meta['min_items']} item(s)")
        if meta.get("unique") and len({json.dumps(v, sort_keys=True) for v in value}) != len(value):
            bad(where, value, "items without repeats")
        return value
    if origin is dict:
        if not isinstance(value, dict):
            bad(where, value, "a mapping")
        _, val_tp = typing.get_args(tp)
        return {str(k): convert(val_tp, v, join(where, str(k))) for k, v in value.items()}
    return _in_range(_scalar(tp, value, where), where, meta, shown=value)


def _scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            bad(where, value, "true or false")
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            bad(where, value, "an integer")
    elif tp is float:
        if isinstance(value, str) and _numeric(value):
            value = float(value)  # YAML 1.1 reads 1e-4 (no dot) as text; the number is unambiguous
        if isinstance(value, bool) or not isinstance(value, int | float):
            bad(where, value, "a number")
        value = float(value)
    elif tp is str and not isinstance(value, str):
        bad(where, value, "a string")
    return value


def _numeric(s: str) -> bool:
    """A finite number written as text (``1e-4``), not ``nan``/``inf``."""
    try:
        return math.isfinite(float(s))
    except ValueError:
        return False


_LIMITS = frozenset({"choices", "ge", "gt", "le", "lt"})


def _in_range(value: Any, where: str, meta: Any, shown: Any = None) -> Any:
    if not _LIMITS & meta.keys():  # most settings: nothing to check
        return value
    shown = value if shown is None else shown
    choices = meta.get("choices")
    if choices is not None:
        folded = {str(c).lower(): c for c in choices}
        if str(value).lower() not in folded:
            bad(where, shown, f"one of {list(choices)}")
        value = folded[str(value).lower()]
    for key, op, text in (("ge", float.__ge__, ">="), ("gt", float.__gt__, ">"),
                          ("le", float.__le__, "<="), ("lt", float.__lt__, "<")):
        bound = meta.get(key)
        if bound is not None and not op(float(value), float(bound)):
            bad(where, shown, f"{text} {bound}")
    return value


def default_of(cls: type, name: str) -> Any:
    """The default of setting ``name`` of dataclass ``cls`` (a ``default_factory`` is called), for a CLI
    flag or keyword argument that must default to the setting, never to a copy of its value."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not MISSING:
                return f.default
            if f.default_factory is not MISSING:
                return f.default_factory()
            raise TypeError(f"{cls.__name__}.{name} has no default")
    raise AttributeError(f"{cls.__name__} has no setting {name!r}")


# ---- derived views: JSON Schema and --help ----------------------------------------------------------

def _default(f: dataclasses.Field) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        value = f.default_factory()
        return value.to_dict() if isinstance(value, Section) else value
    return MISSING


def json_schema(cls: type[Section]) -> dict[str, Any]:
    """The JSON Schema of a section, derived from its fields (types, defaults, ranges, help)."""
    hints = _hints(cls)
    props = {}
    for f in dataclasses.fields(cls):
        prop = _type_schema(hints[f.name])
        meta = f.metadata
        if "choices" in meta:
            target = prop["items"] if prop.get("type") == "array" else prop
            target.pop("type", None)
            target["enum"] = list(meta["choices"]) + ([None] if _optional(hints[f.name])[1] else [])
        for key, word in (("ge", "minimum"), ("gt", "exclusiveMinimum"), ("le", "maximum"),
                          ("lt", "exclusiveMaximum")):
            if key in meta:
                target = prop["items"] if prop.get("type") == "array" else prop
                target[word] = meta[key]
        if "min_items" in meta:
            prop["minItems"] = meta["min_items"]
        if meta.get("unique"):
            prop["uniqueItems"] = True
        default = _default(f)
        if default is not MISSING:
            prop["default"] = default
        prop["description"] = meta.get("help", "")
        props[f.name] = prop
    schema = {"type": "object", "additionalProperties": False, "properties": props}
    required = [f.name for f in dataclasses.fields(cls) if _default(f) is MISSING]
    if required:
        schema["required"] = required
    return schema


def _type_schema(tp: Any) -> dict[str, Any]:
    inner, nullable = _optional(tp)
    origin = typing.get_origin(inner)
    if _is_section(inner):
        out = json_schema(inner)
    elif origin is list:
        out = {"type": "array", "items": _type_schema(typing.get_args(inner)[0])}
    elif origin is dict:
        out = {"type": "object", "additionalProperties": _type_schema(typing.get_args(inner)[1])}
    elif inner is Any:
        return {}
    else:
        out = {"type": {int: "integer", float: "number", bool: "boolean", str: "string"}[inner]}
    if nullable:
        out["type"] = [out["type"], "null"] if "type" in out else "null"
    return out


def settings_help(cls: type[Section], prefix: str = "") -> str:
    """One line per setting (nested sections flattened as ``a.b``): type, default, range, help."""
    hints = _hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if _is_section(_optional(tp)[0]):
            lines.append(settings_help(_optional(tp)[0], f"{prefix}{f.name}."))
            continue
        meta = f.metadata
        limits = [f"{word} {meta[k]}" for k, word in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
                  if k in meta]
        if "choices" in meta:
            limits.append("one of " + "|".join(map(str, meta["choices"])))
        default = _default(f)
        shown = "required" if default is MISSING else f"default {json.dumps(default)}"
        extra = f"; {', '.join(limits)}" if limits else ""
        lines.append(f"  {prefix}{f.name} ({_describe(tp)}, {shown}{extra}): {meta.get('help', '')}")
    return "\n".join(lines)


# ---- the CLI's --config and hashes ---------------------------------------------------------------------

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
        try:
            obj = yaml.safe_load(path.read_text()) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise PipelineError(f"--config: {value}: not valid YAML/JSON ({type(e).__name__})") from None
    if not isinstance(obj, dict):
        raise PipelineError(f"--config: expected a mapping, got {type(obj).__name__}")
    return obj


def config_hash(obj: Any) -> str:
    """A short stable hash of a config section (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
