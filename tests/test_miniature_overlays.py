"""Every real-scale experiment has a miniature overlay that changes sizes only, and a miniature test that runs
it end to end (tests/test_<experiment>_miniature.py, one test each)."""

import ast
from pathlib import Path

import pytest
import yaml

from rlhf_pipeline.miniature import OVERLAYS, has_assets, overlay_problems
from rlhf_pipeline.workflow_config import resolve_config

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "config/experiments").glob("*.yaml"))


def test_there_are_experiments():
    assert {"coste2023", "coste2023_grpo", "debate_quality", "redteam_gpt2", "hh_flant5_rm"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_has_a_sizes_only_overlay_and_one_miniature_test(experiment):
    overlay = ROOT / OVERLAYS / f"{experiment}.yaml"
    assert overlay.is_file(), f"config/experiments/{experiment}.yaml has no miniature overlay at {overlay}"
    assert overlay_problems(yaml.safe_load(overlay.read_text()), experiment) == []
    test = ROOT / "tests" / f"test_{experiment}_miniature.py"
    assert test.is_file(), f"config/experiments/{experiment}.yaml has no miniature test {test.name}"
    tests = [n.name for n in ast.parse(test.read_text()).body
             if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    assert len(tests) == 1, f"{test.name}: one miniature test per experiment config, found {tests}"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_leaf_an_overlay_sets_exists_in_the_real_config(experiment):
    """An overlay cannot add a run, a member or a setting the real config does not have: it only resizes."""
    real = resolve_config([ROOT / f"config/experiments/{experiment}.yaml"], root=ROOT, check_paths=False)[0].to_dict()
    overlay = yaml.safe_load((ROOT / OVERLAYS / f"{experiment}.yaml").read_text())
    for key in (k for k in overlay if k != "base"):
        node = real
        for part in str(key).split("."):
            assert isinstance(node, dict) and part in node, f"{experiment}: {key} is not a setting of the real config"
            node = node[part]


def test_overlays_that_change_more_than_sizes_are_refused():
    base = {"base": "config/experiments/coste2023.yaml"}
    assert overlay_problems({**base, "ppo.hparams.total_episodes": 16}, "coste2023") == []
    assert overlay_problems({**base, "sft.model": "results/miniature/coste2023/pythia"}, "coste2023") == []
    bad = {"rm.head": "mean", "ppo.hparams.kl_coef": 0.1, "sft.bf16": False, "hub_offline": True,
           "sft.model": "EleutherAI/pythia-70m", "gold_rm.path": "results/miniature/other/rm",
           "debate.debaters.x.base_url": "https://api.example.com/v1", "ppo.hparams": {"total_episodes": 16}}
    problems = overlay_problems({**base, **bad}, "coste2023")
    assert [p.split(":")[0] for p in problems] == list(bad)
    assert overlay_problems({"base": "config/config.yaml"}, "coste2023") == [
        "base: ['config/config.yaml'] does not name config/experiments/coste2023.yaml"]


def test_an_overlay_may_switch_gpu_only_settings_off_and_nothing_else():
    """vLLM generation and an accelerate config (DeepSpeed, FSDP) need GPUs: a CPU miniature switches them off,
    to exactly their off values; every other vLLM or precision setting stays the real config's."""
    base = {"base": "config/experiments/coste2023_grpo.yaml"}
    off = {"ppo.hparams.vllm.enabled": False, "ppo.hparams.accelerate_config": None,
           "ppo.runs.seed1.hparams.vllm.enabled": False}
    assert overlay_problems({**base, **off}, "coste2023_grpo") == []
    on = {"ppo.hparams.vllm.enabled": True, "ppo.hparams.accelerate_config": "config/accelerate/fsdp.yaml",
          "ppo.hparams.vllm.mode": "server", "ppo.hparams.vllm.gpu_memory_utilization": 0.9,
          "ppo.hparams.bf16": False, "debate.training.ppo.enabled": False}
    assert [p.split(":")[0] for p in overlay_problems({**base, **on}, "coste2023_grpo")] == list(on)


def test_real_configs_with_hub_models_have_assets_and_embedded_ones_need_none():
    for experiment in EXPERIMENTS:
        real = yaml.safe_load((ROOT / f"config/experiments/{experiment}.yaml").read_text())
        assert has_assets(experiment) == (real.get("hub_offline") is False), experiment
