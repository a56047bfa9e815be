"""The workflow's config (rlhf_pipeline.workflow_config): a bad setting of any section is one line naming
the key before any job, plan-time path checks, secrets never echoed, the JSON Schema generated from the
dataclasses, each PPO run one typed section."""

import copy
from pathlib import Path

import pytest
import yaml

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.runs import PPORunConfig
from rlhf_pipeline.workflow_config import WorkflowConfig, load_workflow_config, resolve_config, workflow_schema

ROOT = Path(__file__).resolve().parents[1]


SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


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
    (lambda c: c.update(tokenizer="not/a-tokenizer"),
     "config tokenizer: 'not/a-tokenizer' is not a local directory and not in the local Hugging Face cache"),
    (lambda c: c["sft"].update(model="EleutherAI/pythia-1.4b"),
     "config tokenizer: got 'world', expected the tokenizer of sft.model ('EleutherAI/pythia-1.4b': its hub id"),
    (lambda c: (c["gold_rm"].update(path="world"), c["dataset"].update(name="imdb")),
     "config gold_rm.path: got 'world', expected a gold RM (a model directory or hub id) for dataset.name 'imdb'"),
    (lambda c: c["ppo"]["runs"]["seed2"].update(compare_with=["seed9"]),
     "config ppo.runs.seed2.compare_with: got ['seed9'], expected other configured runs"),
    (lambda c: c["redteam"].update(baseline_group="nobody"),
     "config redteam.baseline_group: got 'nobody', expected one of the runs' groups"),
    (lambda c: c["debate"]["training"].update(tokenizer="not/a-tokenizer"),
     "config debate.training.tokenizer: 'not/a-tokenizer' is not a local directory and not in the local Hugging"),
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


def test_run_config_is_one_typed_section(cfg):
    c = load_workflow_config(cfg)
    run = c.ppo.run_config("ensemble_uwo")
    assert isinstance(run, PPORunConfig) and run.rm_seeds == [1, 2, 3] and run.objective == "UWO"
    assert run.hparams.seed == c.ppo.hparams.seed and c.ppo.run_config("seed2").hparams.seed == 2
    assert run.reward_batch_size == c.ppo.reward_batch_size and run.hparams.kl_coef == 0.02
    assert PPORunConfig.from_dict(run.to_dict()) == run  # what the stage gets is what the workflow resolved
