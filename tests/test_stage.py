"""The stage skeleton (rlhf_pipeline.stage) runs every stage the same way: typed config, then inputs, then
the handler, then the manifest of what it returns."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.sft import SFTConfig
from rlhf_pipeline.stage import Record, arg, run, stage


def _probe(tmp_path: Path, record: Record | None):
    calls = []

    @stage("A probe.", config=SFTConfig, inputs=["path", "paths"], args=[
        arg("--path", help="one input"), arg("--paths", nargs="*", help="inputs")])
    def cmd_probe_stage(args, cfg):
        calls.append(cfg)
        return record

    sub = argparse.ArgumentParser().add_subparsers(dest="stage")
    cmd_probe_stage.add_to(sub)
    return cmd_probe_stage, sub.choices["probe-stage"], calls


def test_the_skeleton_builds_the_config_checks_inputs_and_writes_the_record(tmp_path):
    probe, parser, calls = _probe(tmp_path, Record(seed=5, extra={"rows": 3}))
    assert probe.name == "probe-stage"
    there = tmp_path / "there.jsonl"
    there.write_text("")
    manifest = tmp_path / "manifest.json"

    run(probe, parser.parse_args(["--config", '{"epochs": 2}', "--path", str(there), "--manifest", str(manifest)]))
    assert calls == [SFTConfig(epochs=2)]
    written = json.loads(manifest.read_text())
    assert (written["stage"], written["config"], written["seed"], written["rows"]) == (
        "probe-stage", SFTConfig(epochs=2).to_dict(), 5, 3)

    with pytest.raises(PipelineError, match="config sft.epochs: got -1"):  # the config before any input
        run(probe, parser.parse_args(["--config", '{"epochs": -1}', "--path", str(tmp_path / "missing")]))
    with pytest.raises(PipelineError, match="missing2: input does not exist"):
        run(probe, parser.parse_args(["--paths", str(there), str(tmp_path / "missing2")]))
    assert len(calls) == 1  # the handler never ran on bad input


def test_a_handler_returning_nothing_writes_no_manifest(tmp_path):
    probe, parser, calls = _probe(tmp_path, None)
    run(probe, parser.parse_args(["--manifest", str(tmp_path / "m.json")]))
    assert calls == [SFTConfig()] and not (tmp_path / "m.json").exists()


def test_a_handler_is_named_after_its_stage():
    def probe(args):
        return None

    with pytest.raises(ValueError, match="probe: a stage handler is named cmd_<stage>"):
        stage("A probe.")(probe)
