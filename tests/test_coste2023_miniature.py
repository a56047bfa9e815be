"""Integration: config/experiments/coste2023.yaml end to end in miniature (its overlay changes sizes only): tiny
pythia-shaped GPT-NeoX policy and RM backbone, a tiny Llama gold RM in AlpacaFarm's own layout and AlpacaFarm-shaped
instruction files, made by rlhf_pipeline.miniature.coste2023; then the real rules from the AlpacaFarm data to
results/plots/overoptimization.png with the hub switched off. Every PPO run and RM seed of the real config must
appear: each run's gold evaluation and best-of-n curve, each member in the diversity table, each run in the fits."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from miniature_harness import run_miniature

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "coste2023"
OVERLAY = ROOT / f"config/experiments/miniature/{EXPERIMENT}.yaml"
REAL = ROOT / f"config/experiments/{EXPERIMENT}.yaml"
TARGET = "results/plots/overoptimization.png"


def test_coste2023_miniature(tmp_path):
    from rlhf_pipeline.data.alpaca_farm import is_alpaca_prompt
    from rlhf_pipeline.io import read_jsonl

    wf = tmp_path / "wf"
    run_miniature(EXPERIMENT, wf, [TARGET])  # the hub switched off: nothing may be downloaded
    assert (wf / TARGET).stat().st_size > 0

    real = yaml.safe_load(REAL.read_text())
    sizes = yaml.safe_load(OVERLAY.read_text())
    runs, seeds = real["ppo"]["runs"], real["rm"]["seeds"]
    assert len(runs) == 8 and seeds == [1, 2, 3, 4, 5]

    # AlpacaFarm prompts, labelled by the AlpacaFarm-shaped gold RM; policy and proxy RMs are GPT-NeoX, gold Llama
    prefs = read_jsonl(wf / "results/preferences/train.jsonl")
    assert len(prefs) == sizes["preferences.n_train"] and all(is_alpaca_prompt(p["prompt"]) for p in prefs)
    assert all(math.isfinite(p["gold_chosen"]) and math.isfinite(p["gold_rejected"]) for p in prefs)
    assert json.loads((wf / "results/sft/model/config.json").read_text())["model_type"] == "gpt_neox"
    gold = json.loads((wf / sizes["gold_rm.path"] / "config.json").read_text())
    assert gold["model_type"] == "reward_model" and gold["architectures"] == ["RewardModel"]  # AlpacaFarm's layout
    assert (wf / sizes["gold_rm.path"] / "pytorch_model.bin.index.json").is_file()
    for seed in seeds:
        member = json.loads((wf / f"results/rm/seed{seed}/model/config.json").read_text())
        assert member["head"] == real["rm"]["head"] and member["backbone_config"]["model_type"] == "gpt_neox"

    # every run: a gold evaluation at every eval step, and a best-of-n curve over the miniature's ns
    n_steps = sizes["ppo.hparams.total_episodes"] // sizes["ppo.hparams.batch_size"]
    ns = sizes["bon.ns"]
    for run in runs:
        ge = pd.read_csv(wf / f"results/ppo/{run}/gold_eval.csv")
        assert list(ge["step"]) == list(range(n_steps + 1)), run
        assert (ge["n"] == sizes["ppo.n_eval_prompts"]).all(), run
        assert np.isfinite(ge[["kl", "proxy_reward", "gold_reward"]].to_numpy()).all(), run
        assert ((ge["response_length"] >= 0) & (ge["response_length"] <= sizes["ppo.hparams.max_new_tokens"])).all()
        ensemble = len(runs[run]["rm_seeds"]) > 1
        assert (ge["ensemble_variance"] > 0).any() == ensemble, run
        bon = pd.read_csv(wf / f"results/bon/{run}/bon.csv")
        assert list(bon["n"]) == ns, run
        assert np.allclose(bon["kl"], [math.log(n) - (n - 1) / n for n in ns]), run  # the analytic best-of-n KL
        assert np.isfinite(bon["gold_reward"]).all(), run

    # every member's held-out accuracy and pairwise error correlations; every ensemble run's disagreement
    div = pd.read_csv(wf / "results/rm/diversity.csv")
    acc = div[div["measure"] == "accuracy_gold"]
    assert sorted(acc["member_a"].astype(int)) == seeds and acc["value"].between(0, 1).all()
    assert (div["measure"] == "error_corr").sum() == len(seeds) * (len(seeds) - 1) // 2
    ensembles = {run for run, spec in runs.items() if len(spec["rm_seeds"]) > 1}
    assert set(div.loc[div["scope"] == "ppo_eval", "subject"]) == ensembles

    # the fits: one PPO (rl) and one best-of-n row per run; equal KL: every run against the baseline
    fits = pd.read_csv(wf / "results/plots/fits.csv")
    assert sorted(zip(fits["run"], fits["form"])) == sorted((run, form) for run in runs for form in ("bon", "rl"))
    assert (fits.loc[fits["form"] == "bon", "n_points"] == len([n for n in ns if n > 1])).all()
    equal = pd.read_csv(wf / "results/plots/equal_kl.csv")
    assert set(equal["run"]) == set(runs) and (equal["baseline"] == "seed1").all()
