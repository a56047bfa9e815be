"""Config validation, schema <-> dataclass consistency, provenance and CLI bad-input behaviour."""

import copy
import dataclasses
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from rlhf_pipeline.config import load_config_arg, section_from_dict, validate_config
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.preferences import PreferencesConfig
from rlhf_pipeline.provenance import redact, write_manifest
from rlhf_pipeline.sft import SFTConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
DEFAULT = ROOT / "config/config.yaml"


@pytest.fixture
def cfg():
    return yaml.safe_load(DEFAULT.read_text())


def test_default_and_experiment_configs_are_valid(cfg):
    validate_config(cfg, SCHEMA)
    for path in sorted((ROOT / "config/experiments").glob("*.yaml")):
        merged = copy.deepcopy(cfg)
        for key, value in yaml.safe_load(path.read_text()).items():
            merged[key] = value  # --configfile replaces top-level sections it names
        validate_config(merged, SCHEMA)


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["rm"].update(lerning_rate=1e-4), "'lerning_rate' was unexpected"),
    (lambda c: c["rm"].update(head="cls"), "rm.head: 'cls' is not one of ['last_token', 'mean', 'attention']"),
    (lambda c: c["preferences"].update(label_noise=0.7), "preferences.label_noise: 0.7"),
    (lambda c: c["sft"].update(batch_size="32"), "sft.batch_size: '32' is not of type 'integer'"),
    (lambda c: c.update(sfft={}), "'sfft' was unexpected"),
    (lambda c: c["dataset"].update(name="imbd"), "dataset.name: 'imbd' is not one of"),
])
def test_bad_config_names_the_key(cfg, mutate, expected):
    mutate(cfg)
    with pytest.raises(PipelineError) as e:
        validate_config(cfg, SCHEMA)
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


def _schema_defaults(section):
    schema = yaml.safe_load(SCHEMA.read_text())
    props = schema["properties"][section]["properties"]
    return {k: v["default"] for k, v in props.items() if "default" in v}


@pytest.mark.parametrize("section, cls", [("sft", SFTConfig), ("preferences", PreferencesConfig)])
def test_schema_defaults_match_dataclass_defaults(section, cls):
    defaults = _schema_defaults(section)
    fields = {f.name for f in dataclasses.fields(cls)}
    schema_keys = set(yaml.safe_load(SCHEMA.read_text())["properties"][section]["properties"])
    assert schema_keys == fields
    obj = dataclasses.asdict(cls())
    for key, value in defaults.items():
        if key == "lora":
            continue
        assert obj[key] == value, key


def test_dataclass_rejects_unknown_key():
    with pytest.raises(PipelineError, match=r"sft: unknown key\(s\) \['epoch'\]; allowed keys"):
        SFTConfig.from_dict({"epoch": 2})
    with pytest.raises(PipelineError, match="label_noise"):
        PreferencesConfig.from_dict({"label_noise": 0.5})


def test_config_arg_accepts_json_and_files(tmp_path):
    assert load_config_arg('{"epochs": 2}') == {"epochs": 2}
    f = tmp_path / "s.yaml"
    f.write_text("epochs: 3\n")
    assert load_config_arg(str(f)) == {"epochs": 3}
    with pytest.raises(PipelineError, match="neither a JSON object nor an existing file"):
        load_config_arg(str(tmp_path / "missing.yaml"))


def test_manifest_records_provenance_without_secrets(tmp_path):
    m = write_manifest(tmp_path / "manifest.json", "sft", {"epochs": 1, "hf_token": "hf_abc", "nested": {"api_key": "x"}}, seed=3)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["config_hash"] == m["config_hash"] and len(m["config_hash"]) == 16
    assert on_disk["seed"] == 3 and "commit" in on_disk["git"] and "torch" in on_disk["packages"]
    text = (tmp_path / "manifest.json").read_text()
    assert "hf_abc" not in text and '"x"' not in text
    assert redact({"a": [{"password": 1}]}) == {"a": [{"password": "<redacted>"}]}


def test_conda_env_matches_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "workflow/envs/rlhf.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert [p for p in pip if not p.startswith("-e")] == deps


def test_lock_pins_every_dependency():
    import re

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lock = {l.split("==")[0].lower() for l in (ROOT / "requirements.lock").read_text().split() if "==" in l}
    for d in deps:
        name = re.split(r"[<>=!~ \[]", d)[0].lower()
        assert name in lock, name


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "rlhf_pipeline", *args], capture_output=True, text=True)


def test_cli_bad_input_is_one_line_and_leaves_no_output(tmp_path):
    out = tmp_path / "model"
    r = _cli("sft", "--config", '{"epochs": 1}', "--train", str(tmp_path / "nope.jsonl"),
             "--val", str(tmp_path / "nope.jsonl"), "--out", str(out))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "nope.jsonl" in r.stderr
    assert not out.exists()

    train = tmp_path / "train.jsonl"
    train.write_text(json.dumps({"prompt": "a"}) + "\n")
    r = _cli("sft", "--train", str(train), "--val", str(train), "--out", str(out))
    assert r.returncode == 2 and "missing field(s) ['response']" in r.stderr
    assert not out.exists()

    r = _cli("sft", "--config", '{"epoch": 1}', "--train", str(train), "--val", str(train), "--out", str(out))
    assert r.returncode == 2 and "unknown key(s) ['epoch']" in r.stderr


def test_every_stage_has_help():
    r = _cli("--help")
    assert r.returncode == 0
    for stage in ("prepare-data", "sft", "gold-rm-train", "label-preferences", "rm-train", "rm-summary"):
        assert stage in r.stdout
        assert _cli(stage, "--help").returncode == 0


def test_section_from_dict_roundtrip():
    cfg = section_from_dict(SFTConfig, {"epochs": 2, "lora": {"enabled": True, "r": 4}}, "sft")
    assert cfg.epochs == 2 and cfg.lora.enabled and cfg.lora.r == 4
