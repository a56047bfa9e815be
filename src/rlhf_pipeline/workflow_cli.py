"""CLI stages of the workflow as a whole: ``config``, ``miniature-assets``, ``schema``, ``settings-reference``
(see :mod:`rlhf_pipeline.stage`)."""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import PipelineError
from .stage import arg, stage


@stage("Print the fully resolved workflow config of a set of config files, each value marked with where it came "
       "from (default / demo / experiment FILE / command line), as `snakemake --configfile ... --config ...` would "
       "resolve it; checks it as the plan does.", args=[
           arg("--configfile", nargs="+", metavar="FILE", help="config files, as given to snakemake (none: the "
               "embedded demo, config/config.yaml)"),
           arg("--config", nargs="+", metavar="KEY=VALUE", help="settings as given to snakemake --config"),
           arg("--only", metavar="KEY", help="only the settings under this key (e.g. ppo.hparams)"),
           arg("--yaml", action="store_true", help="print the resolved config as one YAML file instead"),
           arg("--root", default=".", help="the workflow's root directory (where config/config.yaml is)"),
           arg("--no-check-paths", action="store_true", help="skip the plan-time model and data path checks"),
       ])
def cmd_config(args) -> None:
    import yaml

    from .workflow_config import explain_config, resolve_config

    command_line = {}
    if args.config:
        from snakemake.cli import parse_config  # Snakemake's own parser: the same values `snakemake --config` gets

        try:
            command_line = parse_config(args.config)
        except ValueError as e:
            raise PipelineError(f"--config: {e}") from None
    cfg, origins, layers = resolve_config(args.configfile or [], command_line, args.root,
                                          check_paths=not args.no_check_paths)
    if args.yaml:
        sys.stdout.write(yaml.safe_dump(cfg.to_dict(), sort_keys=False, width=120))
    else:
        sys.stdout.write(explain_config(cfg, origins, layers, only=args.only))


@stage("Write the tiny models and shaped data files an experiment's miniature overlay "
       "(config/experiments/miniature/EXPERIMENT.yaml) names, under results/miniature/EXPERIMENT/ (made here; "
       "nothing is downloaded).", args=[
           arg("experiment", help="the experiment's name (config/experiments/EXPERIMENT.yaml)"),
           arg("--root", default="results/miniature", help="where the assets go (the overlays name paths under "
               "results/miniature/, relative to the workflow's working directory)"),
       ])
def cmd_miniature_assets(args) -> None:
    from .miniature import make_assets

    out = make_assets(args.experiment, args.root)
    print(f"{args.experiment}: " + (f"wrote {out}" if out else "needs no assets (the embedded world)"))


@stage("Print the workflow config's JSON Schema, generated from the config dataclasses.", args=[
    arg("--out", help="write it here instead of stdout (workflow/schemas/config.schema.yaml)"),
])
def cmd_schema(args) -> None:
    import yaml

    from .workflow_config import workflow_schema

    text = yaml.safe_dump(workflow_schema(), sort_keys=False, width=120)
    if args.out:
        from .io import atomic_file

        with atomic_file(args.out) as tmp:
            Path(tmp).write_text(text)
    else:
        sys.stdout.write(text)


@stage("Print the settings reference (markdown tables generated from the config dataclasses' help), or rewrite "
       "it between the settings-reference markers of a file.", inputs=["write"], args=[
           arg("--write", metavar="PATH", help="rewrite the reference between the markers of this file "
               "(config/README.md) instead of printing it; says whether the file changed"),
       ])
def cmd_settings_reference(args) -> None:
    from .settings_doc import render_settings_reference, update_settings_reference

    if args.write:
        changed = update_settings_reference(args.write)
        print(f"{args.write}: " + ("settings reference updated" if changed else "settings reference up to date"))
    else:
        sys.stdout.write(render_settings_reference())
