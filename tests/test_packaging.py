"""Packaging: the conda environment lists pyproject.toml's dependencies exactly, and the lock pins every one."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_conda_env_matches_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "workflow/envs/rlhf.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert [p for p in pip if not p.startswith("-e")] == deps


def test_lock_pins_every_dependency():
    import re

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lock = {line.split("==")[0].lower() for line in (ROOT / "requirements.lock").read_text().split() if "==" in line}
    for d in deps:
        name = re.split(r"[<>=!~ \[]", d)[0].lower()
        assert name in lock, name
