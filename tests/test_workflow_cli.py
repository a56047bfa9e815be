"""The workflow-level CLI stages (rlhf_pipeline.workflow_cli): settings-reference prints and updates the
generated reference."""

from __future__ import annotations

import shutil
from pathlib import Path

from rlhf_pipeline import cli
from rlhf_pipeline.settings_doc import render_settings_reference

ROOT = Path(__file__).resolve().parents[1]


def test_settings_reference_prints_and_updates_the_generated_reference(tmp_path, capsys):
    assert cli.main(["settings-reference"]) == 0
    assert capsys.readouterr().out == render_settings_reference()
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "config" / "README.md", readme)
    assert cli.main(["settings-reference", "--write", str(readme)]) == 0
    assert capsys.readouterr().out == f"{readme}: settings reference up to date\n"
    readme.write_text(readme.read_text().replace("| key | type |", "| key | kind |", 1))
    assert cli.main(["settings-reference", "--write", str(readme)]) == 0
    assert capsys.readouterr().out == f"{readme}: settings reference updated\n"
    assert (ROOT / "config" / "README.md").read_text() == readme.read_text()
    readme.write_text("no markers\n")
    assert cli.main(["settings-reference", "--write", str(readme)]) == 2
    assert "expected one <!-- settings-reference:begin --> line" in capsys.readouterr().err
    assert cli.main(["settings-reference", "--write", str(tmp_path / "missing.md")]) == 2
