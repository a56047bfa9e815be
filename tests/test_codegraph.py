"""Stage source sets from the import graph (src/rlhf_pipeline/codegraph.py): tiny packages written into
tmp_path for each import form, then the real package (its stages' file sets, and that a new module
a stage imports changes that stage's hash and no other's). Pure ast; nothing here imports torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rlhf_pipeline.codegraph import (
    CACHE_FILE,
    DEFAULT_EXCLUDE,
    cli_stages,
    entry_source,
    module_files,
    source_hash,
    stage_code_hash,
    stage_entry_imports,
    stage_files,
    stage_handlers,
    stage_hashes,
)

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "rlhf_pipeline"


def write_pkg(root: Path, files: dict[str, str], name: str = "mypkg") -> Path:
    """Write a package ``name`` under ``root``: {relative path: source}; every directory gets an
    ``__init__.py`` (empty unless given)."""
    pkg = root / name
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    for d in [pkg, *(p for p in pkg.rglob("*") if p.is_dir())]:
        (d / "__init__.py").touch()
    return pkg


def names(files: list[Path]) -> list[str]:
    return [f.as_posix() for f in files]


# --- import forms -------------------------------------------------------------------------------------

def test_absolute_imports(tmp_path):
    pkg = write_pkg(tmp_path, {
        "a.py": "import mypkg.b\n",
        "b.py": "from mypkg.c import X\n",
        "c.py": "X = 1\n",
        "sub/d.py": "import mypkg.sub.e as e\n",
        "sub/e.py": "",
        "unrelated.py": "",
    })
    assert names(module_files(pkg, ["mypkg.a"])) == ["__init__.py", "a.py", "b.py", "c.py"]
    assert names(module_files(pkg, ["mypkg.sub.d"])) == ["__init__.py", "sub/__init__.py", "sub/d.py", "sub/e.py"]
    assert names(module_files(pkg, ["mypkg"])) == ["__init__.py"]


def test_relative_imports(tmp_path):
    pkg = write_pkg(tmp_path, {
        "top.py": "",
        "sub/__init__.py": "NAME = 1\n",
        "sub/x.py": """\
            from .y import f
            from ..top import g
            from . import z, NAME
            from .. import other
        """,
        "sub/y.py": "",
        "sub/z.py": "",
        "sub/unused.py": "",
        "other.py": "",
    })
    assert names(module_files(pkg, ["mypkg.sub.x"])) == [
        "__init__.py", "other.py", "sub/__init__.py", "sub/x.py", "sub/y.py", "sub/z.py", "top.py"]


def test_relative_imports_in_a_package_init_are_relative_to_that_package(tmp_path):
    pkg = write_pkg(tmp_path, {"sub/__init__.py": "from .inner import f\nfrom .. import top\n",
                               "sub/inner.py": "", "top.py": ""})
    assert names(module_files(pkg, ["mypkg.sub"])) == ["__init__.py", "sub/__init__.py", "sub/inner.py", "top.py"]


def test_from_package_import_counts_a_submodule_only_when_it_is_one(tmp_path):
    pkg = write_pkg(tmp_path, {
        "sub/__init__.py": "helper = 1\n",
        "sub/real.py": "",
        "sub/never.py": "",
        "a.py": "from mypkg.sub import real, helper\n",
        "b.py": "from mypkg.sub import *\n",
    })
    assert names(module_files(pkg, ["mypkg.a"])) == ["__init__.py", "a.py", "sub/__init__.py", "sub/real.py"]
    assert names(module_files(pkg, ["mypkg.b"])) == ["__init__.py", "b.py", "sub/__init__.py"]


def test_function_local_imports_count(tmp_path):
    pkg = write_pkg(tmp_path, {
        "a.py": """\
            def run():
                from .heavy import model
                return model

            class C:
                def method(self):
                    import mypkg.other
        """,
        "heavy.py": "", "other.py": "",
    })
    assert names(module_files(pkg, ["mypkg.a"])) == ["__init__.py", "a.py", "heavy.py", "other.py"]


def test_type_checking_only_imports_do_not_count(tmp_path):
    pkg = write_pkg(tmp_path, {
        "a.py": """\
            from __future__ import annotations
            import typing
            from typing import TYPE_CHECKING

            if TYPE_CHECKING:
                from .typed_only import T
            if typing.TYPE_CHECKING:
                import mypkg.typed_too
            else:
                from . import runtime_branch

            def f(x: T) -> None:
                if TYPE_CHECKING:
                    from .typed_in_function import U
        """,
        "typed_only.py": "", "typed_too.py": "", "typed_in_function.py": "", "runtime_branch.py": "",
    })
    assert names(module_files(pkg, ["mypkg.a"])) == ["__init__.py", "a.py", "runtime_branch.py"]


def test_parent_package_inits_are_included_and_followed(tmp_path):
    pkg = write_pkg(tmp_path, {
        "deep/__init__.py": "from .registered import REGISTRY\n",
        "deep/registered.py": "",
        "deep/er/leaf.py": "",
        "deep/er/sibling.py": "",
        "a.py": "from .deep.er.leaf import f\n",
    })
    assert names(module_files(pkg, ["mypkg.a"])) == [
        "__init__.py", "a.py", "deep/__init__.py", "deep/er/__init__.py", "deep/er/leaf.py", "deep/registered.py"]


def test_a_package_wins_over_a_same_named_module_file(tmp_path):
    pkg = write_pkg(tmp_path, {"a.py": "from . import thing\n", "thing.py": "", "thing/__init__.py": ""})
    assert names(module_files(pkg, ["mypkg.a"])) == ["__init__.py", "a.py", "thing/__init__.py"]


def test_import_cycles_terminate(tmp_path):
    pkg = write_pkg(tmp_path, {
        "a.py": "from . import b\n",
        "b.py": "def f():\n    from .c import g\n",
        "c.py": "import mypkg.a\n",
    })
    expected = ["__init__.py", "a.py", "b.py", "c.py"]
    assert names(module_files(pkg, ["mypkg.a"])) == names(module_files(pkg, ["mypkg.c"])) == expected


def test_third_party_and_stdlib_imports_are_ignored(tmp_path):
    pkg = write_pkg(tmp_path, {
        "a.py": """\
            import os.path
            import numpy as np
            from torch import nn
            import mypkgextra
            from mypkg_other.sub import x

            def lazy():
                import transformers
        """,
    })
    assert names(module_files(pkg, ["mypkg.a"])) == ["__init__.py", "a.py"]


def test_result_is_sorted_and_independent_of_entry_order(tmp_path):
    pkg = write_pkg(tmp_path, {"z.py": "from . import b\n", "b.py": "", "m/a.py": "from .. import z\n"})
    files = module_files(pkg, ["mypkg.z", "mypkg.m.a"])
    assert names(files) == sorted(names(files))
    assert files == module_files(pkg, ["mypkg.m.a", "mypkg.z"])
    assert all(not f.is_absolute() for f in files)


def test_exclude_drops_a_file_and_does_not_follow_it(tmp_path):
    pkg = write_pkg(tmp_path, {
        "a.py": "from . import errors, io\n",
        "errors.py": "from . import only_via_errors\n",
        "only_via_errors.py": "",
        "io.py": "",
    })
    assert names(module_files(pkg, ["mypkg.a"], exclude={"errors.py"})) == ["__init__.py", "a.py", "io.py"]
    with pytest.raises(ValueError, match="missing.py"):
        module_files(pkg, ["mypkg.a"], exclude={"missing.py"})


def test_broken_intra_package_imports_are_errors(tmp_path):
    pkg = write_pkg(tmp_path, {"a.py": "\nfrom .missing import x\n", "b.py": "from ... import x\n",
                               "c.py": "import mypkg.nope\n"})
    with pytest.raises(ValueError, match=r"a\.py:2: imports mypkg\.missing"):
        module_files(pkg, ["mypkg.a"])
    with pytest.raises(ValueError, match="beyond the top-level package"):
        module_files(pkg, ["mypkg.b"])
    with pytest.raises(ValueError, match="mypkg.nope"):
        module_files(pkg, ["mypkg.c"])
    with pytest.raises(ValueError, match="not a module of package mypkg"):
        module_files(pkg, ["otherpkg.a"])


# --- entry functions (the CLI handlers) ----------------------------------------------------------------

MINI_CLI = {
    "cli.py": """\
        from __future__ import annotations

        from pathlib import Path

        from .cfg import load
        from .errors import Oops
        from .launch import relaunch


        def _helper(path):
            from .helped import read
            return read(path)


        def _report(args):
            from .provenance import write
            write(args)


        def cmd_alpha(args):
            from .alpha import run
            run(load(args.config), _helper(args.path))
            _report(args)


        def cmd_beta(args):
            import numpy
            from .beta import run
            if not Path(args.x).exists():
                raise Oops(args.x)
            run(args)
            _report(args)


        def main(argv=None):
            relaunch()
    """,
    "cfg.py": "", "errors.py": "class Oops(Exception):\n    pass\n", "launch.py": "", "helped.py": "",
    "provenance.py": "from . import cfg\n", "alpha.py": "from . import shared\n", "beta.py": "", "shared.py": "",
}


def test_stage_entry_imports_reads_one_function_and_what_it_uses(tmp_path):
    pkg = write_pkg(tmp_path, MINI_CLI)
    cli = pkg / "cli.py"
    assert cli_stages(cli) == ["alpha", "beta"]
    # own lazy import, the helpers' imports, and module-level imports it refers to by name; not launch
    # (only main uses it) and not what cmd_beta imports
    assert stage_entry_imports(cli, "cmd_alpha") == ["mypkg.alpha", "mypkg.cfg", "mypkg.helped", "mypkg.provenance"]
    assert stage_entry_imports(cli, "cmd_beta") == ["mypkg.beta", "mypkg.errors", "mypkg.provenance"]
    assert stage_entry_imports(cli, "cmd_beta", exclude={"cli.py::_report"}) == ["mypkg.beta", "mypkg.errors"]
    assert (names(module_files(pkg, ["mypkg.cli:cmd_alpha"]))
            == ["__init__.py", "alpha.py", "cfg.py", "helped.py", "provenance.py", "shared.py"])
    with pytest.raises(ValueError, match="no top-level function cmd_gamma"):
        stage_entry_imports(cli, "cmd_gamma")


def test_stage_files_and_exclusions(tmp_path):
    pkg = write_pkg(tmp_path, MINI_CLI)
    exclude = {"errors.py", "provenance.py", "cli.py::_report"}
    assert names(stage_files(pkg, "alpha", exclude=exclude, runner=None)) == [
        "__init__.py", "alpha.py", "cfg.py", "helped.py", "shared.py"]
    assert names(stage_files(pkg, "beta", exclude=exclude, runner=None)) == ["__init__.py", "beta.py"]
    with pytest.raises(ValueError, match=r"stage 'gamma'.*stages: alpha, beta"):
        stage_files(pkg, "gamma", exclude=exclude, runner=None)
    with pytest.raises(ValueError, match="defines no top-level _gone"):
        stage_files(pkg, "alpha", exclude={"cli.py::_gone"}, runner=None)
    with pytest.raises(ValueError, match="runner 'stage.py::run'"):
        stage_files(pkg, "alpha", exclude=exclude)  # the default runner: no such file here


def test_entry_source_is_the_handler_and_the_helpers_it_uses(tmp_path):
    pkg = write_pkg(tmp_path, MINI_CLI)
    text = entry_source(pkg / "cli.py", "cmd_alpha", exclude={"cli.py::_report"})
    assert "def _helper" in text and "def cmd_alpha" in text
    assert "def _report" not in text and "def cmd_beta" not in text and "def main" not in text
    assert text.index("def _helper") < text.index("def cmd_alpha")  # file order


def test_stage_code_hash_follows_the_handler_text_of_its_own_stage_only(tmp_path):
    pkg = write_pkg(tmp_path, MINI_CLI)
    exclude = {"errors.py", "provenance.py", "cli.py::_report"}
    before = stage_hashes(pkg, exclude=exclude, runner=None)
    assert set(before) == {"alpha", "beta"}
    assert before["alpha"] == stage_code_hash(pkg, "alpha", exclude=exclude, runner=None)
    cli = pkg / "cli.py"

    cli.write_text(cli.read_text().replace("return read(path)", "return read(path)[:10]"))  # _helper: alpha's
    after = stage_hashes(pkg, exclude=exclude, runner=None)
    assert after["alpha"] != before["alpha"] and after["beta"] == before["beta"]

    cli.write_text(cli.read_text().replace("def main(argv=None):", "def main(argv=None):  # edited"))
    cli.write_text(cli.read_text().replace("write(args)", "write(args, indent=2)"))  # excluded _report
    assert stage_hashes(pkg, exclude=exclude, runner=None) == after

    without_handler = stage_code_hash(pkg, "alpha", exclude=exclude, include_handler=False, runner=None)
    cli.write_text(cli.read_text().replace("[:10]", "[:20]"))
    assert stage_code_hash(pkg, "alpha", exclude=exclude, include_handler=False, runner=None) == without_handler
    assert stage_code_hash(pkg, "alpha", exclude=exclude, runner=None) != after["alpha"]


# --- family CLI modules on a shared stage skeleton -------------------------------------------------------

MINI_FAMILIES = {
    "cli.py": """\
        from importlib import import_module

        from .launch import relaunch
        from .skeleton import run

        FAMILIES = ("fam.cli", "other_cli")


        def main(argv=None):
            relaunch()
            for name in FAMILIES:
                import_module(f"mypkg.{name}")
    """,
    "skeleton.py": """\
        from .cfgload import load


        def stage(help, config=None, args=()):
            from .parser_only import declare
            return declare


        def run(declared, args):
            cfg = load(args) if declared.config else None
            need_paths(args.inputs)
            record = declared.handler(args, cfg)
            write_record(record)


        def need_paths(paths):
            from .paths_only import check
            check(paths)


        def write_record(record):
            from .provenance import write
            write(record)


        def read_prompts(path):
            from .io import read
            return read(path)
    """,
    "fam/__init__.py": "from .registered import REGISTRY\n",
    "fam/cli.py": """\
        from ..skeleton import need_paths, read_prompts, stage
        from ..wfconfig import DEFAULTS
        from .config import FamConfig


        def _rows(path):
            from .rows import rows
            return rows(path)


        @stage("Alpha help.", config=FamConfig, args=[DEFAULTS["x"]])
        def cmd_alpha(args, cfg):
            from .alpha import run
            need_paths(args.path)
            run(cfg, _rows(args.path))


        @stage("Beta help.", args=[DEFAULTS["y"]])
        def cmd_beta(args, cfg):
            from .beta import run
            run(read_prompts(args.prompts))
    """,
    "other_cli.py": """\
        from .skeleton import stage


        @stage("Gamma help.")
        def cmd_gamma(args, cfg):
            from .gamma import run
            run()
    """,
    "cfgload.py": "", "launch.py": "", "parser_only.py": "", "paths_only.py": "", "provenance.py": "", "io.py": "",
    "wfconfig.py": "", "gamma.py": "",
    "fam/registered.py": "", "fam/config.py": "", "fam/rows.py": "", "fam/alpha.py": "", "fam/beta.py": "",
}
FAMILY_EXCLUDE = {"provenance.py", "skeleton.py::need_paths", "skeleton.py::write_record"}
FAMILY_RUNNER = "skeleton.py::run"


def test_handlers_are_found_in_the_family_modules_cli_lists(tmp_path):
    pkg = write_pkg(tmp_path, MINI_FAMILIES)
    assert cli_stages(pkg / "cli.py") == ["alpha", "beta", "gamma"]  # FAMILIES order, then file order
    assert stage_handlers(pkg) == {"alpha": "fam/cli.py::cmd_alpha", "beta": "fam/cli.py::cmd_beta",
                                   "gamma": "other_cli.py::cmd_gamma"}
    (pkg / "cli.py").write_text((pkg / "cli.py").read_text().replace('"other_cli"', '"missing_cli"'))
    with pytest.raises(ValueError, match="FAMILIES names missing_cli"):
        cli_stages(pkg / "cli.py")
    (pkg / "cli.py").write_text((pkg / "cli.py").read_text().replace('"missing_cli"', '"fam.cli"'))
    with pytest.raises(ValueError, match="stage 'alpha': handlers in fam/cli.py and fam/cli.py"):
        cli_stages(pkg / "cli.py")


def test_a_family_stage_runs_its_handler_the_runner_and_the_skeleton_helpers_it_uses(tmp_path):
    pkg = write_pkg(tmp_path, MINI_FAMILIES)

    def files(stage):
        return names(stage_files(pkg, stage, exclude=FAMILY_EXCLUDE, runner=FAMILY_RUNNER))

    # the handler's imports and helpers, its decorator's config= (not its help or arguments: wfconfig,
    # parser_only), the parent package of its CLI module (fam/__init__.py and what it imports), the runner's
    # imports (cfgload); not the excluded path check and manifest writer, nor launch (cli.main only)
    assert files("alpha") == ["__init__.py", "cfgload.py", "fam/__init__.py", "fam/alpha.py", "fam/config.py",
                              "fam/registered.py", "fam/rows.py"]
    assert files("beta") == ["__init__.py", "cfgload.py", "fam/__init__.py", "fam/beta.py", "fam/registered.py",
                             "io.py"]  # read_prompts: a skeleton helper imported by name
    assert files("gamma") == ["__init__.py", "cfgload.py", "gamma.py"]
    text = entry_source(pkg / "fam" / "cli.py", "cmd_alpha", package_dir=pkg, exclude=FAMILY_EXCLUDE,
                        runner=FAMILY_RUNNER)
    assert "def _rows" in text and "def cmd_alpha" in text and "@config=FamConfig" in text
    assert "Alpha help" not in text and "def need_paths" not in text and "def cmd_beta" not in text
    assert stage_entry_imports(pkg / "fam" / "cli.py", "cmd_beta", package_dir=pkg, runner=FAMILY_RUNNER) == [
        "mypkg.fam.beta", "mypkg.io"]
    assert "mypkg.skeleton" in stage_entry_imports(pkg / "fam" / "cli.py", "cmd_beta", package_dir=pkg, runner=None)


def test_family_stage_hashes_follow_what_each_stage_runs(tmp_path):
    pkg = write_pkg(tmp_path, MINI_FAMILIES)
    fam, skeleton = pkg / "fam" / "cli.py", pkg / "skeleton.py"

    def hashes():
        return stage_hashes(pkg, exclude=FAMILY_EXCLUDE, runner=FAMILY_RUNNER)

    def edit(path, old, new):
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))

    before = hashes()
    assert len(set(before.values())) == 3
    edit(fam, '"Alpha help."', '"Alpha help, reworded."')  # the command line is not hashed
    edit(fam, 'args=[DEFAULTS["x"]]', 'args=[DEFAULTS["z"]]')
    edit(skeleton, "check(paths)", "check(paths, strict=True)")  # the excluded path check
    edit(skeleton, "write(record)", "write(record, indent=2)")  # the excluded manifest writer
    assert hashes() == before

    edit(fam, "return rows(path)", "return rows(path)[:10]")  # alpha's own helper
    after = hashes()
    assert after["alpha"] != before["alpha"] and after["beta"] == before["beta"] and after["gamma"] == before["gamma"]
    edit(fam, "config=FamConfig", "config=OtherConfig")  # the config the skeleton builds for alpha
    assert hashes()["alpha"] != after["alpha"]
    edit(skeleton, "return read(path)", "return read(path)[1:]")  # read_prompts: beta's
    assert {s for s, h in hashes().items() if h != after[s]} == {"alpha", "beta"}
    changed = hashes()
    edit(skeleton, "record = declared.handler(args, cfg)", "record = declared.handler(args, cfg or {})")  # run
    assert all(h != changed[s] for s, h in hashes().items())


def test_cached_stage_hashes_are_those_of_the_files_as_they_are_now(tmp_path):
    """With a cache_dir the hashes are read back while no file changes, and are those computed without one
    after any edit: the key is every file's text, so an edit to the same size at the same modification
    time still misses the cache."""
    pkg = write_pkg(tmp_path, {**MINI_FAMILIES,
                               "fam/rows.py": "def rows(path):\n    return open(path).read().split()\n"})
    cache = tmp_path / "plan" / ".snakemake"

    def hashes(**cache_dir):
        return stage_hashes(pkg, exclude=FAMILY_EXCLUDE, runner=FAMILY_RUNNER, **cache_dir)

    before = hashes(cache_dir=cache)
    assert before == hashes()
    stored = cache / CACHE_FILE
    record = json.loads(stored.read_text())
    assert record["hashes"] == before
    stored.write_text(json.dumps({**record, "hashes": {**before, "alpha": "stored"}}))  # made recognisable
    assert hashes(cache_dir=cache)["alpha"] == "stored"  # nothing changed: read back, nothing parsed

    rows = pkg / "fam" / "rows.py"  # alpha's: edited to the same size, its modification time put back
    st = rows.stat()
    rows.write_text(rows.read_text().replace("split()", "strip()"))
    os.utime(rows, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (rows.stat().st_size, rows.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    after = hashes(cache_dir=cache)
    assert after == hashes() and after["alpha"] != before["alpha"] and after["beta"] == before["beta"]
    record = json.loads(stored.read_text())
    assert record["hashes"] == after  # kept for the next plan

    (pkg / "fam" / "unused.py").write_text("X = 1\n")  # a new file: a new key (no stage imports it: same hashes)
    assert hashes(cache_dir=cache) == after and json.loads(stored.read_text())["key"] != record["key"]
    stored.write_text("{damaged")
    assert hashes(cache_dir=cache) == after
    assert hashes(cache_dir=rows) == after  # a cache_dir that cannot be one: computed, nothing written


def test_a_cli_module_is_imported_by_name_only(tmp_path):
    pkg = write_pkg(tmp_path, {**MINI_FAMILIES, "other_cli.py": """\
        from . import skeleton


        def cmd_gamma(args, cfg):
            skeleton.read_prompts(args.prompts)
    """})
    with pytest.raises(ValueError, match=r"other_cli\.py:1: imports CLI module mypkg\.skeleton as a module"):
        stage_files(pkg, "gamma", exclude=FAMILY_EXCLUDE, runner=FAMILY_RUNNER)


# --- hashing ------------------------------------------------------------------------------------------

def test_source_hash_covers_paths_and_contents_not_location_or_order(tmp_path):
    pkg = write_pkg(tmp_path / "one", {"a.py": "A = 1\n", "b.py": "B = 2\n"})
    h = source_hash(pkg, [Path("a.py"), Path("b.py")])
    assert len(h) == 16 and int(h, 16) >= 0
    assert source_hash(pkg, ["b.py", "a.py"]) == h
    assert source_hash(pkg, [pkg / "a.py", pkg / "b.py"]) == h  # absolute paths hash as relative ones
    moved = tmp_path / "two" / "mypkg"
    shutil.copytree(pkg, moved)
    assert source_hash(moved, ["a.py", "b.py"]) == h
    assert source_hash(pkg, ["a.py", "b.py"], extra={"cli.py::cmd_x": "def cmd_x(): ..."}) != h
    (moved / "b.py").write_text("B = 3\n")
    assert source_hash(moved, ["a.py", "b.py"]) != h
    (moved / "b.py").rename(moved / "c.py")
    (moved / "c.py").write_text("B = 2\n")
    assert source_hash(moved, ["a.py", "c.py"]) != h  # same contents, other name
    assert source_hash(pkg, ["a.py"]) != h


# --- the real package ------------------------------------------------------------------------------------

def test_default_exclusions_exist_in_the_package():
    assert {e.partition("::")[0] for e in DEFAULT_EXCLUDE} == {"errors.py", "provenance.py", "stage.py"}
    for entry in DEFAULT_EXCLUDE:
        file, _, name = entry.partition("::")
        assert (PACKAGE / file).is_file(), entry
        if name:
            assert f"def {name}(" in (PACKAGE / file).read_text(), entry


STAGES = [
    "prepare_data", "sft", "gold_rm_train", "label_preferences", "rm_train", "rm_summary", "ppo",
    "gold_eval", "bon_sample", "bon", "plot_overoptimization", "aggregate_replicates", "fit_curves", "rm_diversity",
    "debate_data", "debate_human",
    "debate_chunk", "debate_summary", "debate_rejudge", "debate_sft", "debate_pairs", "debate_dpo", "debate_ppo",
    "debate_strength",
    "redteam_target_data", "redteam_classifier", "redteam", "redteam_summary", "ad_data", "ad_lm", "ad_eval", "ad_rl",
    "config", "miniature_assets", "schema", "settings_reference"]
"""Every stage, in --help order: the workflow's rules call code_hash(<stage>) by these names."""

CLI_FILES = {"cli.py", "stage.py", "workflow_cli.py"}


def test_cli_has_the_known_stages():
    assert cli_stages(PACKAGE / "cli.py") == STAGES
    assert list(stage_hashes(PACKAGE)) == STAGES


@pytest.mark.parametrize("stage", STAGES)
def test_every_cli_handler_resolves(stage):
    files = names(stage_files(PACKAGE, stage))
    file, handler = stage_handlers(PACKAGE)[stage].split("::")
    assert file.endswith("cli.py") and handler == f"cmd_{stage}"
    own = [m for m in stage_entry_imports(PACKAGE / file, handler, package_dir=PACKAGE)
           if m not in ("rlhf_pipeline.errors", "rlhf_pipeline.provenance")]
    assert files and own, stage
    assert "__init__.py" in files and "config.py" in files  # the runner loads --config
    assert not [f for f in files if f in CLI_FILES or f.endswith("/cli.py")]
    assert not {"errors.py", "provenance.py"} & set(files)
    assert all((PACKAGE / f).is_file() for f in files)


def test_the_skeleton_is_hashed_less_its_path_check_and_manifest_writer():
    text = entry_source(PACKAGE / "reward" / "cli.py", "cmd_rm_train", package_dir=PACKAGE, exclude=DEFAULT_EXCLUDE)
    assert "def cmd_rm_train" in text and "@config=RMConfig" in text
    assert "Train one proxy reward model" not in text and "--prefs-train" not in text  # the command line
    assert "def cmd_rm_summary" not in text and "def need_paths" not in text
    runner = entry_source(PACKAGE / "stage.py", "run", package_dir=PACKAGE, exclude=DEFAULT_EXCLUDE)
    assert "def run(" in runner
    assert not any(f"def {name}(" in runner for name in ("need_inputs", "need_paths", "write_record"))


def test_real_stage_file_sets():
    gold_eval = names(stage_files(PACKAGE, "gold_eval"))
    # models/__init__.py (join_text) shapes every gold score; the hand-kept list had dropped it
    assert {"models/__init__.py", "evaluation/gold_eval.py", "reward/gold.py", "reward/heads.py",
            "evaluation/plots.py"} <= set(gold_eval)
    assert {"sft/__init__.py", "models/__init__.py", "models/lora.py", "trainer_checkpoints.py"} <= set(
        names(stage_files(PACKAGE, "sft")))
    assert {"ppo/trainer.py", "ppo/losses.py", "reward/ensemble.py", "io.py"} <= set(
        names(stage_files(PACKAGE, "ppo")))  # trainer only via train_ppo's lazy import; io via stage.read_prompts
    assert "data/source.py" in names(stage_files(PACKAGE, "prepare_data"))
    assert "settings_doc.py" in names(stage_files(PACKAGE, "settings_reference"))
    assert not any(f.startswith(("ppo/", "evaluation/")) for f in names(stage_files(PACKAGE, "sft")))


def copy_package(tmp_path: Path) -> Path:
    dest = tmp_path / "rlhf_pipeline"
    shutil.copytree(PACKAGE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_a_new_module_changes_its_stages_hash_only(tmp_path):
    pkg = copy_package(tmp_path)
    assert stage_hashes(pkg) == stage_hashes(PACKAGE)  # location-independent
    before = stage_hashes(pkg)

    (pkg / "evaluation" / "kl_binning.py").write_text("BIN_WIDTH = 0.5\n")
    gold_eval_py = pkg / "evaluation" / "gold_eval.py"
    gold_eval_py.write_text(gold_eval_py.read_text()
                            + "\n\ndef _bin_width():\n    from .kl_binning import BIN_WIDTH\n\n    return BIN_WIDTH\n")
    added = stage_hashes(pkg)
    assert "evaluation/kl_binning.py" in names(stage_files(pkg, "gold_eval"))
    for unrelated in ("sft", "rm_summary", "ppo", "prepare_data"):
        assert "evaluation/kl_binning.py" not in names(stage_files(pkg, unrelated))
        assert added[unrelated] == before[unrelated], unrelated
    assert added["gold_eval"] != before["gold_eval"]

    (pkg / "evaluation" / "kl_binning.py").write_text("BIN_WIDTH = 0.25\n")  # edit only the new module
    edited = stage_hashes(pkg)
    assert edited["gold_eval"] != added["gold_eval"]
    assert all(edited[s] == added[s] for s in ("sft", "rm_summary", "ppo", "prepare_data"))


def test_a_shared_module_edit_reruns_the_stages_that_import_it(tmp_path):
    pkg = copy_package(tmp_path)
    before = stage_hashes(pkg)
    models = pkg / "models" / "__init__.py"
    models.write_text(models.read_text() + "\n# edited\n")
    after = stage_hashes(pkg)
    changed = {s for s in before if after[s] != before[s]}
    assert {"gold_eval", "sft", "rm_train", "ppo", "label_preferences", "bon_sample"} <= changed
    assert "prepare_data" not in changed  # the data stage never imports models


def test_hashing_the_whole_package_imports_nothing_it_reads():
    code = textwrap.dedent(f"""\
        import sys
        from rlhf_pipeline.codegraph import stage_hashes
        hashes = stage_hashes({str(PACKAGE)!r})
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("rlhf_pipeline", "torch", "transformers"))
        print(len(hashes), ",".join(loaded))
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, check=True)
    n, loaded = out.stdout.split()  # -S: no site .pth files (the venv's Snakemake hook imports its own module)
    assert loaded == "rlhf_pipeline,rlhf_pipeline.codegraph"
    assert int(n) == len(cli_stages(PACKAGE / "cli.py"))
