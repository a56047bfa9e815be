"""``python -m rlhf_pipeline <stage>``: one subcommand per workflow stage.

Each research family declares its own stages in its CLI module (:data:`FAMILIES`), on the shared
skeleton of :mod:`rlhf_pipeline.stage`: a subcommand parses its arguments, builds the stage's typed
config from ``--config`` (a JSON object or a YAML/JSON file holding that config section), checks its
inputs, calls one library function and writes a provenance manifest. Bad input ends with one line on
stderr and exit code 2, before any compute starts. Heavy libraries are imported inside the handlers so
``--help`` is fast. This module only assembles the parser from the families and runs a stage.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from .errors import PipelineError
from .launch import maybe_relaunch, stage_accelerate_config
from .runtime import keep_freed_memory
from .stage import Stage, declared_stages, run

FAMILIES = ("data.cli", "sft.cli", "reward.cli", "ppo.cli", "evaluation.cli", "debate.cli", "redteam.cli",
            "ad.cli", "workflow_cli")
"""The modules that declare the stages (below the package), in ``--help`` order. The workflow's code
hashes find the handlers through this tuple (:mod:`rlhf_pipeline.codegraph` reads it, never imports it)."""


def stages() -> list[Stage]:
    """Every declared stage, family by family in :data:`FAMILIES` order, each family's in file order."""
    return [s for family in FAMILIES for s in declared_stages(import_module(f"{__package__}.{family}"))]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rlhf_pipeline", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="stage", required=True, metavar="<stage>")
    for declared in stages():
        declared.add_to(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:  # a real command line: training stages relaunch under accelerate (several GPUs or nodes)
        try:
            maybe_relaunch(args.stage, sys.argv[1:], stage_accelerate_config(args.declared_stage, args))
        except PipelineError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    keep_freed_memory()
    try:
        run(args.declared_stage, args)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
