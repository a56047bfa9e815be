"""How configs layer: dataclass defaults < the demo (only with no config file) or the files given, each after
the bases it names < the command line; named collections replace, dotted keys set one leaf; every value's
origin is shown; bad files fail in one line naming the file; plan-time hub and classifier-label checks."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import HubProbe
from rlhf_pipeline.workflow_config import WorkflowConfig, config_layers, explain_config, merge_layers, resolve_config

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / "config/experiments"


def resolved(*files, command_line=None):
    return resolve_config(list(files), command_line, root=ROOT, check_paths=False)


def test_no_file_is_the_demo_and_an_experiment_never_inherits_the_demo_s_sizes():
    demo = resolved()[0]
    assert demo.ppo.hparams.total_episodes == 640 and demo.debate.training.selfplay.questions == 48
    quality = resolved(EXP / "debate_quality.yaml")[0]
    # the 8B experiment stands on the dataclass defaults: every speech, every question (not the demo's caps)
    assert quality.debate.training.max_speeches is None
    assert quality.debate.training.selfplay.questions is None and quality.debate.training.strength.questions is None
    coste = resolved(EXP / "coste2023.yaml")[0]
    assert coste.debate.tournaments == {} and coste.redteam.runs == {}  # no demo tournaments or red-team runs
    assert coste.ppo.hparams.kl_coef == 0.01 and coste.rm.head == "last_token"


def test_bases_load_first_each_once_and_label_their_layers(tmp_path):
    longer = tmp_path / "longer.yaml"  # an overlay on an experiment that stands on the demo
    longer.write_text(yaml.safe_dump({"base": "config/experiments/coste_cpu.yaml", "ppo.hparams.total_episodes": 3072}))
    layers = config_layers([EXP / "coste_cpu.yaml", longer], root=ROOT)
    assert [(layer.kind, layer.source) for layer in layers] == [
        ("demo", "config/config.yaml"), ("experiment", "config/experiments/coste_cpu.yaml"),
        ("experiment", str(longer))]
    cfg = resolved(longer)[0]
    assert cfg.ppo.hparams.total_episodes == 3072 and cfg.ppo.hparams.lr_schedule == "constant"
    assert {"single", "mean_ind", "uwo_noisy"} <= set(cfg.ppo.runs) and cfg.ppo.runs["single"].replicates == 6


def test_named_collections_replace_dotted_keys_edit_one_leaf(tmp_path):
    over = tmp_path / "over.yaml"
    over.write_text(yaml.safe_dump({"base": "config/config.yaml", "ppo": {"runs": {"mine": {"rm_seeds": [1]}}},
                                    "redteam.runs.plain_s1.terms.w_tox": 2.0, "sft": {"epochs": 1}}))
    cfg = resolved(over)[0]
    assert list(cfg.ppo.runs) == ["mine"]
    assert set(cfg.redteam.runs) == {"plain_s1", "plain_s2", "curious_s1", "curious_s2"}  # edited, not replaced
    assert cfg.redteam.runs["plain_s1"].terms.w_tox == 2.0 and cfg.redteam.runs["plain_s1"].terms.w_gib == 0.5
    assert cfg.sft.epochs == 1 and cfg.sft.batch_size == 16  # nested mappings merge key by key (Snakemake's way)


def test_command_line_wins_and_every_value_names_its_layer(tmp_path):
    cfg, origins, layers = resolved(EXP / "coste_cpu.yaml", command_line={"sft": {"epochs": 2}})
    text = explain_config(cfg, origins, layers)
    lines = dict(line.split(": ", 1) for line in text.splitlines()[1:])
    assert text.splitlines()[0] == ("# layers, later wins: default < demo config/config.yaml < experiment "
                                    "config/experiments/coste_cpu.yaml < command line")
    assert lines["sft.epochs"].split("#")[1].strip() == "command line"
    assert lines["sft.learning_rate"].split("#")[1].strip() == "demo config/config.yaml"
    assert lines["ppo.hparams.total_episodes"].split("#")[1].strip() == "experiment config/experiments/coste_cpu.yaml"
    assert lines["ppo.hparams.lam"].split("#")[1].strip() == "default"
    assert json.loads(lines["ppo.hparams.total_episodes"].split("#")[0]) == 1536
    only = explain_config(cfg, origins, layers, only="ppo.hparams").splitlines()[1:]
    assert only and all(line.startswith("ppo.hparams.") for line in only)


def test_the_config_command_prints_the_resolution_and_a_yaml_that_resolves_the_same(tmp_path):
    cmd = [sys.executable, "-m", "rlhf_pipeline", "config", "--root", str(ROOT), "--no-check-paths"]
    r = subprocess.run([*cmd, "--configfile", str(EXP / "debate_quality.yaml"), "--config", "seed=3"],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert "seed: 3" in r.stdout and "# command line" in r.stdout
    assert "debate.training.max_speeches: null" in r.stdout
    r = subprocess.run([*cmd, "--configfile", str(EXP / "coste_cpu.yaml"), "--yaml"], capture_output=True,
                       text=True, timeout=120, cwd=ROOT)
    flat = tmp_path / "flat.yaml"
    flat.write_text(r.stdout)
    assert resolved(flat)[0] == resolved(EXP / "coste_cpu.yaml")[0]


@pytest.mark.parametrize("text, expected", [
    (None, "does not exist"),
    ("", "is empty (expected a mapping of settings)"),
    ("a: [1, 2\n", "not valid YAML/JSON at line 2"),
    ("- 1\n- 2\n", "expected a mapping of settings at the top level, got list"),
    ("base: nowhere.yaml\n", "base 'nowhere.yaml' does not exist"),
])
def test_a_bad_config_file_is_one_line_naming_it(tmp_path, text, expected):
    path = tmp_path / "exp.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(PipelineError) as e:
        resolved(path)
    assert str(e.value).startswith(f"config file {path}") and expected in str(e.value) and "\n" not in str(e.value)


def test_a_base_cycle_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text(f"base: {tmp_path / 'b.yaml'}\n")
    (tmp_path / "b.yaml").write_text(f"base: {tmp_path / 'a.yaml'}\n")
    with pytest.raises(PipelineError, match="its bases name it again"):
        resolved(tmp_path / "a.yaml")


def test_merge_records_origins_only_for_what_survives():
    from rlhf_pipeline.workflow_config import Layer

    a, b = Layer("experiment", "a", {"ppo": {"runs": {"x": {"rm_seeds": [1]}}}}), Layer(
        "experiment", "b", {"ppo": {"runs": {"y": {"rm_seeds": [2]}}}})
    raw, origins = merge_layers([a, b])
    assert raw == {"ppo": {"runs": {"y": {"rm_seeds": [2]}}}}
    assert origins == {("ppo", "runs", "y", "rm_seeds"): b}


def test_snakemake_plans_with_the_layers_and_names_a_bad_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: config/experiments/nope.yaml\n")
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory",
                        str(tmp_path), "--configfile", str(bad), "-n"], capture_output=True, text=True, timeout=300)
    expected = f"config file {bad}: base 'config/experiments/nope.yaml' does not exist"
    assert r.returncode != 0 and expected in r.stdout + r.stderr


def test_an_unreachable_hub_is_one_warning_naming_what_was_not_checked(capsys):
    hub = HubProbe(timeout=2, endpoint="http://127.0.0.1:9")  # nothing listens on the discard port
    cfg, _, _ = resolved(EXP / "redteam_gpt2.yaml")
    cfg.check_paths(hub=hub)
    err = capsys.readouterr().err.strip()
    assert err.startswith("warning: the Hugging Face hub is not reachable") and len(err.splitlines()) == 1
    assert "gpt2" in err and "facebook/roberta-hate-speech-dynabench-r4-target" in err


def test_a_toxicity_label_the_classifier_lacks_fails_at_plan_time(tmp_path):
    from transformers import BertConfig

    clf = tmp_path / "clf"
    BertConfig(id2label={0: "nothate", 1: "hate"}).save_pretrained(clf)
    cfg = resolved()[0].to_dict()
    cfg["redteam"]["toxicity"].update(model=str(clf), label="toxic")
    with pytest.raises(PipelineError, match=r"config redteam.toxicity.label: got 'toxic', expected labels of the "
                       r"classifier .*: one of \['nothate', 'hate'\]"):
        WorkflowConfig.from_dict(cfg, "").check_paths()
    cfg["redteam"]["toxicity"]["label"] = "hate"
    WorkflowConfig.from_dict(cfg, "").check_paths()
    cfg["redteam"]["toxicity"].update(model=None, label="hate")  # the project's own classifier: toxic / non_toxic
    with pytest.raises(PipelineError, match="config redteam.toxicity.label: got 'hate'"):
        WorkflowConfig.from_dict(cfg, "").check_paths()


@pytest.mark.parametrize("path", sorted(EXP.glob("*.yaml")) + sorted((EXP / "miniature").glob("*.yaml"))
                         + [ROOT / "tests/configs/tiny.yaml"], ids=lambda p: p.name)
def test_every_shipped_config_resolves(path):
    resolved(path)  # paths are checked by the miniature runs (real configs name hub ids)
