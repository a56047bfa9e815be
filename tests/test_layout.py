"""Tests are laid out so the test of a module is found by its name.

The tests of ``src/rlhf_pipeline/<pkg>/<mod>.py`` live in ``tests/test_<pkg>_<mod>.py`` (a top-level module
``x.py``: ``tests/test_x.py``; a package's ``__init__.py``: ``tests/test_<pkg>.py``); an experiment's miniature
run is ``tests/test_<experiment>_miniature.py`` (one per ``config/experiments/*.yaml``, see
tests/test_miniature_overlays.py). Every other test file is workflow-level and declared in
:data:`WORKFLOW_LEVEL` with the reason it is not a module's test. Inputs shared by the tests of one family sit
in ``tests/<family>_helpers.py``, shared fixtures in ``tests/conftest.py``.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "rlhf_pipeline"
EXPERIMENTS = ROOT / "config" / "experiments"

WORKFLOW_LEVEL = {
    "test_workflow.py": "the demo's rules run by Snakemake end to end on tiny settings, and what reruns",
    "test_debate_workflow.py": "the debate rules run by Snakemake on tiny settings",
    "test_optimizers_workflow.py": "every optimiser (PPO, GRPO, RLOO, online DPO) through the real rules on tiny "
                                   "settings",
    "test_redteam_workflow.py": "the red-team rules run by Snakemake on tiny settings",
    "test_debate_outage.py": "a served judge's outage through the real debate rules, and the rerun that recovers",
    "test_url_credentials_workflow.py": "credentials in server URLs, never written by a run of the real rules",
    "test_rm_readout_plan.py": "a readout the backbone lacks fails Snakemake's plan before any job",
    "test_experiment_plans.py": "real experiment configs plan the jobs they promise (snakemake -n)",
    "test_rules_layout.py": "the rule files' layout, read through Snakemake's API",
    "test_container.py": "the Apptainer image definition and its wiring into the rules",
    "test_slurm.py": "the SLURM profile, and real jobs through a one-node SLURM cluster",
    "test_recovery.py": "crash recovery of a local run as docs/operations.md tells it, and the default profile",
    "test_preemption.py": "SIGTERM / SIGUSR1 of the SFT, RM and PPO stages through the real CLI, then resume",
    "test_config_layers.py": "how config files, their bases and the command line layer into one resolved config",
    "test_miniature_overlays.py": "every experiment has a sizes-only miniature overlay and a miniature test",
    "test_docs.py": "the documentation agrees with the workflow, the settings and the files it links",
    "test_imports.py": "the import graph between the research families",
    "test_one_definition.py": "no rule, flag or keyword repeats a setting's default",
    "test_packaging.py": "the conda environment and the lock agree with pyproject.toml",
    "test_layout.py": "this file: the tests' own layout",
}
"""Test files that are not a module's tests: file name -> why it is workflow-level."""


def module_test_names(package: Path) -> dict[str, str]:
    """``test_<pkg>_<mod>.py`` -> the dotted module it is named after, for every module of ``package``."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and parts[-1] != "__main__":
            names["test_" + "_".join(parts) + ".py"] = ".".join(parts)
    return names


def layout_problems(files: list[str], modules: dict[str, str], experiments: set[str],
                    workflow_level: dict[str, str]) -> list[str]:
    """One line per test file that follows no convention, and per workflow-level entry that is wrong."""
    problems = []
    for name in sorted(files):
        miniature = name.endswith("_miniature.py")
        experiment = name.removeprefix("test_").removesuffix("_miniature.py") if miniature else None
        if name in modules or experiment in experiments or name in workflow_level:
            continue
        if experiment is not None:
            problems.append(f"tests/{name}: no experiment config/experiments/{experiment}.yaml")
        else:
            problems.append(f"tests/{name}: names no module of src/rlhf_pipeline (test_<pkg>_<mod>.py for "
                            f"<pkg>/<mod>.py) and is not a declared workflow-level test")
    for name in sorted(workflow_level):
        if name not in files:
            problems.append(f"WORKFLOW_LEVEL: tests/{name} does not exist")
        elif name in modules:
            problems.append(f"WORKFLOW_LEVEL: tests/{name} is the test of {modules[name]}, not workflow-level")
    return problems


def test_every_test_file_is_a_module_s_an_experiment_s_or_declared_workflow_level():
    files = [p.name for p in (ROOT / "tests").glob("test_*.py")]
    experiments = {p.stem for p in EXPERIMENTS.glob("*.yaml")}
    assert layout_problems(files, module_test_names(PACKAGE), experiments, WORKFLOW_LEVEL) == []


def test_the_mapping_finds_modules_packages_and_experiments_and_flags_made_up_names(tmp_path):
    pkg = tmp_path / "pkg"
    for rel in ("__init__.py", "__main__.py", "top.py", "fam/__init__.py", "fam/mod.py", "fam/sub/__init__.py",
                "fam/sub/leaf.py"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text("")
    modules = module_test_names(pkg)
    assert modules == {"test_top.py": "top", "test_fam.py": "fam", "test_fam_mod.py": "fam.mod",
                       "test_fam_sub.py": "fam.sub", "test_fam_sub_leaf.py": "fam.sub.leaf"}
    files = ["test_fam_mod.py", "test_fam_sub_leaf.py", "test_exp_miniature.py", "test_wf.py",
             "test_fam_nothing.py", "test_mod.py", "test_other_miniature.py", "test_top.py"]
    assert layout_problems(files, modules, {"exp"}, {"test_wf.py": "why", "test_gone.py": "why",
                                                     "test_top.py": "why"}) == [
        "tests/test_fam_nothing.py: names no module of src/rlhf_pipeline (test_<pkg>_<mod>.py for <pkg>/<mod>.py) "
        "and is not a declared workflow-level test",
        "tests/test_mod.py: names no module of src/rlhf_pipeline (test_<pkg>_<mod>.py for <pkg>/<mod>.py) and is "
        "not a declared workflow-level test",
        "tests/test_other_miniature.py: no experiment config/experiments/other.yaml",
        "WORKFLOW_LEVEL: tests/test_gone.py does not exist",
        "WORKFLOW_LEVEL: tests/test_top.py is the test of top, not workflow-level",
    ]


def test_the_real_package_maps_its_modules_and_packages():
    modules = module_test_names(PACKAGE)
    assert modules["test_ppo_trainer.py"] == "ppo.trainer" and modules["test_evaluation_gold_eval.py"] == \
        "evaluation.gold_eval"
    assert modules["test_debate_backends_api.py"] == "debate.backends.api" and modules["test_models.py"] == "models"
    assert modules["test_cli.py"] == "cli" and "test___main__.py" not in modules and "test_.py" not in modules
