"""The skeleton every CLI stage shares (``python -m rlhf_pipeline <stage>``).

A research family's CLI module (``data/cli.py``, ``reward/cli.py``, ...) declares each of its stages
once, with :func:`stage` on the stage's handler ``cmd_<stage>``: its help text, the typed config
section that ``--config`` holds, its own arguments and the inputs that must exist. :func:`run` does
what every stage does around its handler:

1. build the typed config from ``--config`` (a JSON object or a YAML/JSON file holding that config
   section), so bad settings stop the stage before anything is read or computed;
2. check that the declared inputs exist (:func:`need_paths`);
3. call the handler, which calls one library function and returns what the manifest records
   (:class:`Record`), or None;
4. write the provenance manifest of that record when ``--manifest`` is given.

Bad input raises :class:`~rlhf_pipeline.errors.PipelineError`, which ``cli.main`` turns into one line
on stderr and exit code 2. Heavy libraries are imported inside the handlers, so assembling the parser
(``--help``) stays fast.

The workflow hashes each stage's code from this structure (:mod:`rlhf_pipeline.codegraph`, reading
source only): the handler (not its decorator, which declares the command line, except ``config=``),
what it uses, and :func:`run`, less :func:`need_inputs`, :func:`need_paths` and :func:`write_record`,
which decide nothing a stage writes.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .codegraph import HANDLER_PREFIX  # a stage's handler is cmd_<stage>: how the code hashes find it
from .config import load_config_arg, settings_help
from .errors import PipelineError

CKPT_HELP = ("resumable checkpoints (keep outside declared outputs): resume from the newest complete one; "
             "SIGTERM/SIGUSR1 checkpoint and exit 128+signal; deleted on success. Omitted: no checkpoints")
MANIFEST_HELP = "write a provenance manifest (JSON) here"
ALPACAFARM_HELP = "the gold RM is an AlpacaFarm RM: format its inputs with the Alpaca instruction template"


@dataclass(frozen=True)
class Arg:
    """One ``ArgumentParser.add_argument`` call of a stage: its flags (or positional name) and keywords."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any]


def arg(*flags: str, **kwargs: Any) -> Arg:
    """A stage argument, declared as for ``add_argument``: ``arg("--out", required=True, help=...)``."""
    return Arg(flags, kwargs)


@dataclass
class Record:
    """What a handler hands to the provenance manifest: the settings it ran with (None: the stage's typed
    config), the seed, and extra results (metrics, counts)."""

    config: dict[str, Any] | None = None
    seed: int | None = None
    extra: dict[str, Any] | None = None


@dataclass(frozen=True)
class Stage:
    """One declared stage (see :func:`stage`); calling it calls the handler."""

    name: str
    help: str
    handler: Callable[..., Record | None]
    config: type | None = None
    args: tuple[Arg, ...] = ()
    inputs: tuple[str, ...] = ()
    where: str | Callable[[argparse.Namespace], str] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Record | None:
        return self.handler(*args, **kwargs)

    def add_to(self, subparsers: Any) -> argparse.ArgumentParser:
        """Add this stage's subcommand; with a config, its settings are listed under --help."""
        epilog = None
        if self.config is not None:
            epilog = (f"settings of --config ({self.config.section}; omitted keys take these defaults):\n"
                      + settings_help(self.config))
        sp = subparsers.add_parser(self.name, help=self.help, description=self.help, epilog=epilog,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(declared_stage=self)
        if self.config is not None:
            sp.add_argument("--config", help=f"the {self.config.section} settings (listed below): a JSON object or "
                            "a YAML/JSON file")
            sp.add_argument("--manifest", help=MANIFEST_HELP)
        for a in self.args:
            sp.add_argument(*a.flags, **a.kwargs)
        return sp


def stage(help: str, config: type | None = None, args: Sequence[Arg] = (), inputs: Sequence[str] = (),
          where: str | Callable[[argparse.Namespace], str] | None = None) -> Callable[[Callable], Stage]:
    """Declare the decorated ``cmd_<stage>`` as stage ``<stage>`` (dashes for underscores).

    ``help``: one line for ``--help`` (an argparse help string: ``%%`` for a percent sign).
    ``config``: the :class:`~rlhf_pipeline.config.Section` that ``--config`` holds; the stage then gets
    ``--config`` and ``--manifest``, and the handler is called as ``handler(args, config)``, else as
    ``handler(args)``. ``args``: the stage's own arguments (:func:`arg`), in ``--help`` order.
    ``inputs``: argument names whose paths (a path, a list of paths, or nothing when not given) must
    exist before the handler runs. ``where``: where config errors point (default: the section's name;
    a function of the parsed arguments for a section whose place depends on them).
    """
    def declare(handler: Callable) -> Stage:
        if not handler.__name__.startswith(HANDLER_PREFIX):
            raise ValueError(f"{handler.__name__}: a stage handler is named {HANDLER_PREFIX}<stage>")
        name = handler.__name__[len(HANDLER_PREFIX):].replace("_", "-")
        return Stage(name, help, handler, config, tuple(args), tuple(inputs), where)

    return declare


def declared_stages(module: Any) -> list[Stage]:
    """The stages a module declares, in file order."""
    return [v for v in vars(module).values() if isinstance(v, Stage)]


def run(declared: Stage, args: argparse.Namespace) -> None:
    """Run one stage: typed config from ``--config``, inputs checked, the handler, its manifest."""
    cfg = None
    if declared.config is not None:
        where = declared.where(args) if callable(declared.where) else declared.where
        cfg = declared.config.from_dict(load_config_arg(args.config), where)
    need_inputs(args, declared.inputs)
    record = declared.handler(args) if cfg is None else declared.handler(args, cfg)
    if record is not None and getattr(args, "manifest", None):
        write_record(args.manifest, declared.name, record, cfg)


def need_inputs(args: argparse.Namespace, names: Sequence[str]) -> None:
    """:func:`need_paths` of the paths the arguments ``names`` hold (a path, a list, or nothing when not given)."""
    for name in names:
        value = getattr(args, name)
        if value:
            need_paths(*(value if isinstance(value, list) else [value]))


def need_paths(*paths: str | Path) -> None:
    """PipelineError naming the first path that does not exist."""
    for p in paths:
        if not Path(p).exists():
            raise PipelineError(f"{p}: input does not exist")


def write_record(path: str | Path, stage_name: str, record: Record, cfg: Any = None) -> None:
    """The provenance manifest of one stage run (:func:`rlhf_pipeline.provenance.write_manifest`)."""
    from .provenance import write_manifest

    config = record.config if record.config is not None else cfg.to_dict()
    write_manifest(path, stage_name, config, seed=record.seed, extra=record.extra)


# --- argument helpers the families share -----------------------------------------------------------

def named_args(items: Sequence[str] | None, flag: str, expected: str = "NAME=PATH") -> dict[str, str]:
    """``NAME=VALUE`` arguments as a dict (PipelineError naming the flag and ``expected`` when one is malformed)."""
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise PipelineError(f"{flag} {item!r}: expected {expected}")
        out[name] = value
    return out


def named_lists(items: Sequence[str] | None, what: str) -> dict[str, list[str]]:
    """``NAME=PATH[,PATH...]`` arguments as ``{name: [paths]}`` (every path must exist)."""
    out = {name: paths.split(",") for name, paths in named_args(items, what, "NAME=PATH[,PATH...]").items()}
    for paths in out.values():
        need_paths(*paths)
    return out


def read_prompts(path: str | Path, n: int | None = None) -> list[str]:
    """The ``prompt`` of every row of a JSONL file (the first ``n``); PipelineError when there are none."""
    from .io import read_jsonl

    prompts = [r["prompt"] for r in read_jsonl(path, required=["prompt"])]
    if not prompts:
        raise PipelineError(f"{path}: no prompts")
    return prompts[:n] if n else prompts
