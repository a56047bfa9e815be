"""The venv's hook on Snakemake's config loader (rlhf_pipeline.snakemake_hooks): Snakemake's own
--configfile errors end in the workflow's one line naming the file; the loader is wrapped once."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("text, expected", [
    (None, "does not exist"),
    ("", "is empty (expected a mapping of settings)"),
    ("a: [1, 2\n", "not valid YAML/JSON at line 2"),
])
def test_snakemake_s_own_configfile_errors_end_in_one_line_naming_the_file(tmp_path, text, expected):
    """Snakemake reads --configfile files before the workflow runs; the venv's hook (make setup) makes its
    errors the workflow's one line (rlhf_pipeline.snakemake_hooks)."""
    path = tmp_path / "exp.yaml"
    if text is not None:
        path.write_text(text)
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                        str(tmp_path), "--configfile", str(path), "-n"], capture_output=True, text=True, timeout=300)
    last = r.stdout.strip().splitlines()[-1]  # Snakemake logs errors on stdout
    assert r.returncode != 0 and last.startswith(f"config file {path}: ") and expected in last


def test_the_hook_wraps_snakemake_s_loader_once_and_passes_good_files_through(tmp_path):
    import importlib

    from rlhf_pipeline import snakemake_hooks

    module = importlib.import_module(snakemake_hooks.TARGET)
    snakemake_hooks.install()
    snakemake_hooks.patch(module)
    wrapped = module.load_configfile
    assert hasattr(wrapped, "__wrapped__") and not hasattr(wrapped.__wrapped__, "__wrapped__")  # wrapped once
    good = tmp_path / "good.yaml"
    good.write_text("seed: 3\n")
    assert dict(module.load_configfile(good)) == {"seed": 3}
