"""The Apptainer image definition and its wiring into the workflow (workflow/rules/container.smk).

No apptainer binary is needed: the .def is parsed with spython and checked against the Makefile's
install steps, the rules are read through Snakemake's API with `--sdm apptainer` settings, and the
build rule is dry-run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from slurm_harness import REPO, copy_workflow
from spython.main.parse.parsers import SingularityParser

import rlhf_pipeline

DEF = REPO / "singularity" / "rlhf-pipeline.def"
MAKEFILE = (REPO / "Makefile").read_text()
PREFIX = "/opt/rlhf-pipeline"


@pytest.fixture(scope="module")
def recipe():
    return SingularityParser(str(DEF)).recipe["spython-base"]


def makefile_var(name: str) -> str:
    m = re.search(rf"^{name}\s*\?=\s*(.*)$", MAKEFILE, re.M)
    assert m, f"{name} not set in the Makefile"
    return m.group(1).strip()


def pip_installs(lines: list[str]) -> list[list[str]]:
    """The argument lists of the `pip install` commands in `lines`, in order."""
    out = []
    for line in lines:
        words = shlex.split(line, comments=True)
        if "pip" in " ".join(words[:3]) and "install" in words:
            out.append(words[words.index("install") + 1:])
    return out


def test_base_image_and_files(recipe):
    assert recipe.fromHeader.startswith("python:3.11")
    files = dict(line.split() for line in recipe.files)
    assert files == {name: f"{PREFIX}/{name}" for name in ("pyproject.toml", "requirements.lock", "README.md", "src")}


def test_install_matches_makefile(recipe):
    torch_pin = makefile_var("TORCH")  # torch==2.13.0
    gpu_args = re.search(r'TORCH_PIP_ARGS="([^"]+)"', MAKEFILE).group(1)  # the Makefile's documented GPU install
    make_steps = pip_installs([line.strip() for line in MAKEFILE.splitlines() if line.startswith("\t")])
    assert make_steps[0][-2:] == ["$(TORCH)", "$(TORCH_PIP_ARGS)"] and "-c" in make_steps[1]
    assert make_steps[1][make_steps[1].index("-c") + 1] == "requirements.lock"

    steps = pip_installs(recipe.install)
    assert len(steps) == 2, steps
    torch_step, pkg_step = (" ".join(w for w in s if w != "-q") for s in steps)
    assert torch_step == f"{torch_pin} {gpu_args}"  # torch first, pinned, CUDA index
    assert pkg_step == f"-c {PREFIX}/requirements.lock {PREFIX}"  # the lock, non-editable, no [dev]
    assert "git" in " ".join(recipe.install)  # provenance records the commit with git


def test_environment_test_runscript_labels(recipe):
    env = dict(e.split("=", 1) for e in recipe.environ)
    assert env["HF_HOME"] == "/hf-cache" and env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert recipe.test  # spython turns %test into a script; its lines land in the install steps
    test_lines = [line for line in recipe.install if "/tests.sh" in line]
    assert any("python -m rlhf_pipeline --help" in line for line in test_lines)
    assert any("import rlhf_pipeline" in line for line in test_lines)
    assert recipe.cmd == 'exec python -m rlhf_pipeline "$@"'
    labels = dict(line.split(None, 1) for line in recipe.labels)
    pyproject_version = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)
    assert labels["org.opencontainers.image.version"] == pyproject_version == rlhf_pipeline.__version__


# --- rules: every containerised rule lists the image as input -----------------------------------------

RULES_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import DeploymentMethod, DeploymentSettings, OutputSettings, ResourceSettings

    snakefile = Path(sys.argv[1]).resolve()
    with SnakemakeApi(OutputSettings(quiet={})) as api:
        wf = api.workflow(resource_settings=ResourceSettings(), snakefile=snakefile, workdir=snakefile.parent,
                          deployment_settings=DeploymentSettings(deployment_method={DeploymentMethod.APPTAINER}))
        rules = {r.name: {"container": r.container_img, "input": [str(f) for f in r.input],
                          "local": r.name in wf._workflow._localrules, "runs": r.shellcmd is not None}
                 for r in wf._workflow.rules}
    print("RULES=" + json.dumps(rules))
""")


def rules_under_apptainer(snakefile: Path) -> dict:
    """name -> {container, input, local, runs} of every rule, parsed as an `--sdm apptainer` run parses them
    (local: a `localrule`, run by Snakemake itself, never submitted to SLURM; runs: it has a shell command)."""
    run = subprocess.run([sys.executable, "-c", RULES_SCRIPT, str(snakefile)], capture_output=True, text=True,
                         timeout=120)
    line = next((x for x in run.stdout.splitlines() if x.startswith("RULES=")), None)
    assert line, run.stdout[-2000:] + run.stderr[-2000:]
    return json.loads(line[len("RULES="):])


def rules_missing_image(rules: dict) -> list[str]:
    """Rules that run in a local `container:` image that is not among their inputs (Snakemake issue 848); a
    rule without a command (rule all) starts no container."""
    return sorted(name for name, r in rules.items() if r["runs"]
                  and r["container"] and "://" not in r["container"] and r["container"] not in r["input"])


def test_missing_image_input_is_caught(tmp_path):
    (tmp_path / "Snakefile").write_text(textwrap.dedent("""
        rule with_input:
            input: "img.sif"
            output: "a.txt"
            container: "img.sif"
            shell: "touch {output}"

        rule without_input:
            output: "b.txt"
            container: "img.sif"
            shell: "touch {output}"

        rule remote_image:
            output: "c.txt"
            container: "docker://python:3.11-slim"
            shell: "touch {output}"
    """))
    assert rules_missing_image(rules_under_apptainer(tmp_path / "Snakefile")) == ["without_input"]


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("container") / "wf")


def test_every_rule_but_build_image_runs_in_the_one_image_and_lists_it(workflow_copy):
    """One `container:` for the workflow (the Snakefile's); build_image opts out, and add_image_input makes
    the image an input of every rule that runs in it (Snakemake issue 848)."""
    rules = rules_under_apptainer(workflow_copy / "Snakefile")
    image = built_image_name(workflow_copy)
    assert rules["build_image"]["container"] is None and image not in rules["build_image"]["input"]
    running = {name for name, r in rules.items() if r["runs"] and name != "build_image"}
    assert len(running) >= 30
    assert {name for name in running if rules[name]["container"] != image} == set()
    assert rules_missing_image(rules) == []
    assert [name for name in running if rules[name]["input"].count(image) != 1] == []
    smk = [workflow_copy / "Snakefile", *sorted((workflow_copy / "workflow" / "rules").glob("*.smk"))]
    directives = [f"{p.name}: {line.strip()}" for p in smk for line in p.read_text().splitlines()
                  if re.match(r"\s*container:", line)]
    assert [d.split(":")[0] for d in directives] == ["Snakefile", "container.smk"], directives  # + build_image's


def built_image_name(wf: Path) -> str:
    """singularity/rlhf-pipeline-<sha256 of the .def, lock file and pyproject.toml, 12 hex>.sif"""
    h = hashlib.sha256()
    for rel in ("singularity/rlhf-pipeline.def", "requirements.lock", "pyproject.toml"):
        h.update(rel.encode())
        h.update((wf / rel).read_bytes())
    return f"singularity/rlhf-pipeline-{h.hexdigest()[:12]}.sif"


def dry_run(wf: Path, *args: str, path_prefix: str | None = None) -> str:
    env = dict(os.environ)
    if path_prefix:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1", *args], cwd=wf, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run.stdout


def test_build_image_dry_run(workflow_copy):
    out = dry_run(workflow_copy, "--", built_image_name(workflow_copy))
    assert "rule build_image:" in out
    assert "apptainer build --force --fakeroot" in out and "singularity/rlhf-pipeline.def" in out


TARGET = "results/data/synthetic/train.jsonl"


def test_laptop_plan_needs_no_image(workflow_copy):
    assert "build_image" not in dry_run(workflow_copy, "--", TARGET)


def test_apptainer_plan_builds_image_first(workflow_copy, tmp_path):
    # Snakemake only asks the apptainer binary for its version before a dry run; none is installed here.
    fake = tmp_path / "bin" / "apptainer"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'apptainer version 1.3.4'\n")
    fake.chmod(0o755)
    out = dry_run(workflow_copy, TARGET, "results/sft/manifest.json", "--sdm", "apptainer",
                  path_prefix=str(fake.parent))
    jobs = dict(re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n)+)", out, re.M))
    assert set(jobs) == {"build_image", "prepare_data", "sft"}
    image = built_image_name(workflow_copy)
    for rule in ("prepare_data", "sft"):
        inputs = re.search(r"^    input: (.*)$", jobs[rule], re.M).group(1).split(", ")
        assert image in inputs, f"{rule} does not wait for the image: {inputs}"
