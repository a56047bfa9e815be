"""Config: one typed definition per setting (validation, schema, --help derived from it), plan-time
path checks, secrets, non-finite values, provenance and the CLI's bad-input behaviour."""

import copy
import dataclasses
import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from rlhf_pipeline.config import Section, json_schema, load_config_arg, settings_help
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import is_secret_key, redact, write_json, write_jsonl
from rlhf_pipeline.models import check_model, model_ref
from rlhf_pipeline.ppo import PPOConfig
from rlhf_pipeline.preferences import PreferencesConfig
from rlhf_pipeline.provenance import redact_argv, write_manifest
from rlhf_pipeline.reward.config import RMConfig
from rlhf_pipeline.runs import PPORunConfig
from rlhf_pipeline.sft import SFTConfig
from rlhf_pipeline.workflow_config import (
    WorkflowConfig,
    load_workflow_config,
    resolve_config,
    workflow_schema,
)

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
DEFAULT = ROOT / "config/config.yaml"


@pytest.fixture
def cfg():
    """The demo, resolved: every setting present (so a test can mutate any key)."""
    return resolve_config([], root=ROOT, check_paths=False)[0].to_dict()


def _error(cfg, mutate) -> str:
    mutate(cfg)
    with pytest.raises(PipelineError) as e:
        load_workflow_config(cfg)
    assert "\n" not in str(e.value)
    return str(e.value)


@pytest.mark.parametrize("mutate, expected", [
    # free-form sections of old: each PPO run's hparams, sft.tiny
    (lambda c: c["ppo"]["runs"]["seed1"].update(hparams={"kl_coeff": 0.1}),
     "config ppo.runs.seed1.hparams: unknown key(s) ['kl_coeff']; allowed keys: ['total_episodes'"),
    (lambda c: c["ppo"]["hparams"].update(batch_size=8, mini_batch_size=3),
     "config ppo.hparams.mini_batch_size: got 3, expected a divisor of batch_size=8"),
    (lambda c: c["ppo"]["runs"]["seed2"].update(hparams={"mini_batch_size": 3}),
     "config ppo.runs.seed2.hparams.mini_batch_size: got 3, expected a divisor of batch_size=16"),
    (lambda c: c["ppo"]["runs"]["seed1"].update(hparams={"lam": 5}), "config ppo.runs.seed1.hparams.lam: got 5"),
    (lambda c: c["sft"]["tiny"].update(hidden_sise=64), "config sft.tiny: unknown key(s) ['hidden_sise']"),
    (lambda c: c["sft"]["tiny"].update(num_attention_heads=3),
     "config sft.tiny.num_attention_heads: got 3, expected a divisor of hidden_size=128"),
    (lambda c: c["sft"].update(epochs=-1), "config sft.epochs: got -1, expected > 0"),
    (lambda c: c["rm"].update(lerning_rate=1e-4), "config rm: unknown key(s) ['lerning_rate']"),
    (lambda c: c["rm"].update(head="cls"), "config rm.head: got 'cls', expected one of ['last_token', 'mean',"),
    (lambda c: c["rm"].update(learning_rate="fast"), "config rm.learning_rate: got 'fast', expected a number"),
    (lambda c: c["rm"].update(learning_rate="nan"), "config rm.learning_rate: got 'nan', expected a number"),
    (lambda c: c["preferences"].update(label_noise=0.7), "config preferences.label_noise: got 0.7, expected < 0.5"),
    (lambda c: c["sft"].update(batch_size="32"), "config sft.batch_size: got '32', expected an integer"),
    (lambda c: c["sft"].update(bf16=1), "config sft.bf16: got 1, expected true or false"),
    (lambda c: c.update(sfft={}), "config: unknown key(s) ['sfft']"),
    (lambda c: c["dataset"].update(name="imbd"), "config dataset.name: got 'imbd', expected one of ['synthetic'"),
    (lambda c: c["bon"].update(ns=[1, 32]), "config bon.ns: got [1, 32], expected every n <= bon.n_samples=16"),
    (lambda c: c["bon"].update(ns=[0, 2]), "config bon.ns[0]: got 0, expected >= 1"),
    (lambda c: c["ppo"]["runs"].update(bad={"rm_seeds": [7]}),
     "config ppo.runs.bad.rm_seeds: got [7], expected seeds from rm.seeds [1, 2, 3] (RM seed(s) [7] are not trained)"),
    (lambda c: c["ppo"]["runs"].update(bad={"rm_seeds": [1, 2], "uwo_weight": -1}),
     "config ppo.runs.bad.uwo_weight: got -1, expected >= 0"),
    (lambda c: c["ppo"]["runs"].update(bad={"rm_seeds": [1], "objective": "median"}),
     "config ppo.runs.bad.objective: got 'median', expected one of ['mean', 'WCO', 'UWO']"),
    (lambda c: c["ppo"]["runs"].update(bad={"objective": "WCO"}),
     "config ppo.runs.bad: missing required key(s) ['rm_seeds']"),
    (lambda c: c["resources"]["default"].update(mem=4000), "config resources.default: unknown key(s) ['mem']"),
    (lambda c: c["rm"].update(init="not-a-model"),
     "config rm.init: 'not-a-model' is not a local directory and not in the local Hugging Face cache"),
])
def test_bad_config_names_the_key_before_any_job(cfg, mutate, expected):
    assert expected in _error(cfg, mutate)


@pytest.mark.parametrize("mutate, expected", [
    (lambda d: d["judges"].update(j2={"type": "oracle"}), "config debate.judges.j2.type: got 'oracle'"),
    (lambda d: d["debaters"].update(api={"type": "openai_compatible", "model": "m"}),
     "config debate.debaters.api.base_url: got None, expected the server's base URL"),
    (lambda d: d["tournaments"]["default"].update(debaters=["weak", "nobody"]),
     "config debate.tournaments.default.debaters: got ['weak', 'nobody'], expected names from debate.debaters"),
    (lambda d: d["tournaments"]["default"].update(formats=["debate", "duel"]),
     "config debate.tournaments.default.formats[1]: got 'duel', expected one of"),
    (lambda d: (d["judges"].update(claude={"type": "anthropic", "model": "c", "api_key_env": "ANTHROPIC_KEY"}),
                d["tournaments"]["default"].update(judge="claude"),
                d["debaters"]["strong"].update(best_of_n={"n": 4})),
     "config debate.tournaments.default.judge: got 'claude', expected a judge with probabilities"),
    (lambda d: (d["judges"].update(gpt={"type": "openai_compatible", "model": "g", "base_url": "http://x/v1",
                                        "api_key_env": "RLHF_TEST_UNSET_KEY"}),
                d["tournaments"]["default"].update(judge="gpt")),
     "config debate.judges.gpt.api_key_env: got 'RLHF_TEST_UNSET_KEY', expected the name of a set environment"),
    (lambda d: d.update(prompts="no/such/prompts.yaml"), "no/such/prompts.yaml: prompts file not found"),
])
def test_bad_debate_config_names_the_key(cfg, mutate, expected, monkeypatch):
    monkeypatch.delenv("RLHF_TEST_UNSET_KEY", raising=False)
    assert expected in _error(cfg, lambda c: mutate(c["debate"]))


def test_objective_spelling_is_canonical(cfg):
    cfg["ppo"]["runs"]["seed1"]["objective"] = "wco"
    assert load_workflow_config(cfg).ppo.run_config("seed1").objective == "WCO"


def test_secret_in_a_config_value_is_never_echoed(cfg):
    msg = _error(cfg, lambda c: c["sft"]["tiny"].update(hf_api_token="hf_PLANTED"))
    assert "hf_api_token" in msg and "hf_PLANTED" not in msg


def test_gold_rm_paths_checked_at_plan_time(cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "config.json").write_text("{not json")
    (tmp_path / "models").mkdir()
    cases = {str(empty): "holds no config.json", str(corrupt): "config.json is not valid JSON",
             "models/gold": "models/gold does not exist", "/nonexistent/gold": "/nonexistent/gold does not exist",
             "org/missing-model": "not in the local Hugging Face cache"}
    for path, expected in cases.items():
        msg = _error(copy.deepcopy(cfg), lambda c, p=path: c["gold_rm"].update(path=p))
        assert msg.startswith("config gold_rm.path: ") and expected in msg, msg


def test_model_ref_decides_hub_or_local_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    assert model_ref("minilm").local and Path(model_ref("minilm").path).is_dir()
    assert not model_ref("EleutherAI/pythia-70m").local and not model_ref("gpt2").local
    for local in ("results/gold_rm/model", "./m", "/abs/m", "~/m", "a/b/c"):
        assert model_ref(local).local, local
    check_model("x", "minilm", kind="tokenizer")
    check_model("x", "EleutherAI/pythia-70m", offline=False)  # online: a hub id is not checked here


def test_hub_offline_is_the_default_and_real_configs_turn_it_off(cfg):
    assert WorkflowConfig().hub_offline and load_workflow_config(cfg).hub_offline
    for path in (ROOT / "config/experiments").glob("*.yaml"):
        exp = yaml.safe_load(path.read_text())
        uses_hub = any("/" in str(v) for v in (exp.get("sft", {}).get("model"), exp.get("rm", {}).get("init"),
                                               exp.get("gold_rm", {}).get("path")) if v)
        assert not uses_hub or exp.get("hub_offline") is False, path.name


def test_schema_file_is_generated_from_the_dataclasses():
    assert yaml.safe_load(SCHEMA.read_text()) == workflow_schema(), (
        "workflow/schemas/config.schema.yaml is stale: run `python -m rlhf_pipeline schema --out "
        "workflow/schemas/config.schema.yaml`")


def test_schema_validates_the_default_and_rejects_what_the_dataclasses_reject(cfg):
    import jsonschema

    jsonschema.validate(cfg, workflow_schema())
    cfg["ppo"]["hparams"]["lam"] = 5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(cfg, workflow_schema())


def _sections(cls=WorkflowConfig, seen=None):
    import typing

    seen = set() if seen is None else seen
    for tp in typing.get_type_hints(cls).values():
        for t in (tp, *typing.get_args(tp)):
            if isinstance(t, type) and issubclass(t, Section) and t not in seen:
                seen.add(t)
                _sections(t, seen)
    return seen


def test_every_section_documents_every_setting():
    sections = _sections()
    assert {PPOConfig, SFTConfig, RMConfig, PreferencesConfig} <= sections and len(sections) >= 14
    for cls in sections:
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
        assert set(json_schema(cls)["properties"]) == {f.name for f in dataclasses.fields(cls)}


def test_direct_construction_validates_like_from_dict():
    for build in (lambda: PPOConfig(lam=5), lambda: RMConfig(epochs=0), lambda: SFTConfig(batch_size=0),
                  lambda: PPOConfig(batch_size=8, mini_batch_size=3)):
        with pytest.raises(PipelineError, match=r"^config [a-z_.]+: got "):
            build()
    assert SFTConfig(lora={"r": 4}).lora.r == 4 and SFTConfig(epochs=2).epochs == 2.0


def test_run_config_is_one_typed_section(cfg):
    c = load_workflow_config(cfg)
    run = c.ppo.run_config("ensemble_uwo")
    assert isinstance(run, PPORunConfig) and run.rm_seeds == [1, 2, 3] and run.objective == "UWO"
    assert run.hparams.seed == c.ppo.hparams.seed and c.ppo.run_config("seed2").hparams.seed == 2
    assert run.reward_batch_size == c.ppo.reward_batch_size and run.hparams.kl_coef == 0.02
    assert PPORunConfig.from_dict(run.to_dict()) == run  # what the stage gets is what the workflow resolved


def test_help_lists_every_setting_with_its_range():
    text = settings_help(PPORunConfig)
    assert "hparams.lam (a number, default 0.95; >= 0, <= 1): GAE lambda." in text
    r = _cli("ppo", "--help")
    assert r.returncode == 0 and "hparams.kl_coef" in r.stdout and "uwo_weight" in r.stdout


def test_config_arg_accepts_json_and_files(tmp_path):
    assert load_config_arg('{"epochs": 2}') == {"epochs": 2}
    f = tmp_path / "s.yaml"
    f.write_text("epochs: 3\n")
    assert load_config_arg(str(f)) == {"epochs": 3}
    with pytest.raises(PipelineError, match="neither a JSON object nor an existing file"):
        load_config_arg(str(tmp_path / "missing.yaml"))


# ---- secrets ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["hf_token", "HF_TOKEN", "api_key", "openaiApiKey", "OPENAI_API_KEY", "password",
                                 "client_secret", "credentials", "apikey", "access-token"])
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["tokenizer", "max_new_tokens", "tokens", "key", "api_key_env", "secretary",
                                 "n_tokens", "monkey", "keyword"])
def test_not_secret_keys(key):
    assert not is_secret_key(key)  # api_key_env: the name of the variable that holds the key


def test_every_writer_redacts(tmp_path):
    write_json(tmp_path / "m.json", {"epochs": 1, "tokenizer": "minilm", "nested": {"hf_token": "hf_PLANTED"}})
    write_jsonl(tmp_path / "r.jsonl", [{"prompt": "p", "api_key": "sk-PLANTED"}])
    for f in tmp_path.iterdir():
        assert "PLANTED" not in f.read_text() and "<redacted>" in f.read_text()
    assert json.loads((tmp_path / "m.json").read_text())["tokenizer"] == "minilm"
    assert redact({"a": [{"password": 1}], "max_new_tokens": 8}) == {"a": [{"password": "<redacted>"}],
                                                                     "max_new_tokens": 8}


def test_argv_redaction_hides_values_not_flags():
    argv = ["prog", "sft", "--tokenizer", "minilm", "--api-key", "sk-1", "--hf-token=hf_2",
            '--config', '{"max_new_tokens": 8, "auth_token": "t3"}']
    out = redact_argv(argv)
    assert out[:6] == ["prog", "sft", "--tokenizer", "minilm", "--api-key", "<redacted>"]
    assert out[6] == "--hf-token=<redacted>" and "t3" not in out[8] and '"max_new_tokens": 8' in out[8]


def test_manifest_records_provenance_without_secrets(tmp_path):
    m = write_manifest(tmp_path / "manifest.json", "sft", {"epochs": 1, "hf_token": "hf_abc",
                                                            "nested": {"api_key": "x"}}, seed=3)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["config_hash"] == m["config_hash"] and len(m["config_hash"]) == 16
    assert on_disk["seed"] == 3 and "commit" in on_disk["git"] and "torch" in on_disk["packages"]
    text = (tmp_path / "manifest.json").read_text()
    assert "hf_abc" not in text and '"x"' not in text


# ---- non-finite values ----------------------------------------------------------------------------

def test_json_writers_never_write_nan(tmp_path):
    with pytest.raises(PipelineError, match=r"r.jsonl: row 2: scores\[1\] is nan; refusing to write invalid JSON"):
        write_jsonl(tmp_path / "r.jsonl", [{"scores": [1.0]}, {"scores": [1.0, math.nan]}])
    assert not (tmp_path / "r.jsonl").exists()
    write_json(tmp_path / "m.json", {"accuracy": math.nan, "loss": math.inf, "n": 3})
    assert json.loads((tmp_path / "m.json").read_text()) == {"accuracy": None, "loss": None, "n": 3}


# ---- packaging ----------------------------------------------------------------------------------

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


# ---- the CLI ----------------------------------------------------------------------------------------

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
    r = _cli("sft", "--config", '{"epochs": -1}', "--train", str(train), "--val", str(train), "--out", str(out))
    assert r.returncode == 2 and r.stderr.strip() == "error: config sft.epochs: got -1, expected > 0"
    assert not out.exists()

    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"prompt": "a", "response": "b"}\n{"prompt": "\xff", "response": "b"}\n')
    r = _cli("sft", "--train", str(bad), "--val", str(bad), "--out", str(out))
    assert r.returncode == 2 and f"{bad}:2: not UTF-8 text (byte 0xff" in r.stderr


def test_every_stage_and_argument_has_help():
    from rlhf_pipeline.cli import build_parser

    parser = build_parser()
    stages = next(a for a in parser._actions if a.dest == "stage").choices
    assert {"prepare-data", "sft", "gold-rm-train", "label-preferences", "rm-train", "rm-summary", "ppo",
            "gold-eval", "bon-sample", "bon", "plot-overoptimization", "schema"} <= set(stages)
    for name, sp in stages.items():
        for action in sp._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
