"""Integration: config/experiments/coste2023_grpo.yaml end to end in miniature (its overlay changes sizes only, and
switches off vLLM and the DeepSpeed accelerate config, which need GPUs): the coste2023 miniature's tiny pythia-shaped
policy and RMs, tiny AlpacaFarm gold RM and AlpacaFarm-shaped data (rlhf_pipeline.miniature.coste2023_grpo), then
the real rules from the AlpacaFarm data to results/plots/overoptimization.png with the hub switched off. Every run of
the real config is optimised by GRPO (TRL's GRPOTrainer, one process on CPU) against its proxy RM or ensemble
objective, and is read by gold evaluation, best-of-n, the fits and the equal-KL table as a PPO run is."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from miniature_harness import run_miniature

from rlhf_pipeline.ppo.trajectories import read_trajectories
from rlhf_pipeline.workflow_config import resolve_config

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "coste2023_grpo"
OVERLAY = ROOT / f"config/experiments/miniature/{EXPERIMENT}.yaml"
REAL = ROOT / f"config/experiments/{EXPERIMENT}.yaml"
TARGET = "results/plots/overoptimization.png"


def test_coste2023_grpo_miniature(tmp_path):
    real = resolve_config([REAL], root=ROOT, check_paths=False)[0]
    sizes = yaml.safe_load(OVERLAY.read_text())
    runs, hp = real.ppo.runs, real.ppo.hparams
    assert len(runs) == 8 and {r.optimizer for r in runs.values()} == {"grpo"} and real.rm.seeds == [1, 2, 3, 4, 5]
    assert hp.vllm.enabled and hp.accelerate_config == "config/accelerate/deepspeed_zero3.yaml"  # at real scale

    wf = tmp_path / "wf"
    seconds = run_miniature(EXPERIMENT, wf, [TARGET])  # the hub switched off: nothing may be downloaded
    print(f"{EXPERIMENT} miniature: {seconds:.0f} s")
    assert (wf / TARGET).stat().st_size > 0

    batch, group = sizes["ppo.hparams.batch_size"], hp.grpo.num_generations
    n_steps = sizes["ppo.hparams.total_episodes"] // batch
    for name, run in runs.items():
        d = wf / "results/ppo" / name
        manifest = json.loads((d / "manifest.json").read_text())
        config = manifest["config"]
        assert config["optimizer"] == "grpo" and config["rm_seeds"] == run.rm_seeds, name
        assert config["hparams"]["grpo"]["num_generations"] == group, name   # the real config's own GRPO setting
        assert not config["hparams"]["vllm"]["enabled"] and config["hparams"]["accelerate_config"] is None, name
        log = pd.read_csv(d / "train_log.csv")
        assert list(log["step"]) == list(range(1, n_steps + 1)) and log["score"].notna().all(), name
        assert any(c.startswith("trl/") for c in log.columns), name   # TRL's own metrics, as GRPO logged them
        # GRPO's groups: each step is batch / num_generations prompts, each answered num_generations times
        traj = read_trajectories(d / "trajectories")
        assert len(traj) == n_steps * batch, name
        assert (traj.groupby("step")["prompt"].value_counts() == group).all(), name
        ge = pd.read_csv(d / "gold_eval.csv")
        assert list(ge["step"]) == list(range(n_steps + 1)), name
        assert (ge["n"] == sizes["ppo.n_eval_prompts"]).all(), name
        assert np.isfinite(ge[["kl", "proxy_reward", "gold_reward"]].to_numpy()).all(), name
        assert (ge["ensemble_variance"] > 0).any() == (len(run.rm_seeds) > 1), name
        bon = pd.read_csv(wf / f"results/bon/{name}/bon.csv")
        assert list(bon["n"]) == sizes["bon.ns"], name
        assert np.allclose(bon["kl"], [math.log(n) - (n - 1) / n for n in sizes["bon.ns"]]), name

    fits = pd.read_csv(wf / "results/plots/fits.csv")
    assert sorted(zip(fits["run"], fits["form"])) == sorted((run, form) for run in runs for form in ("bon", "rl"))
    equal = pd.read_csv(wf / "results/plots/equal_kl.csv")
    assert set(equal["run"]) == set(runs) and (equal["baseline"] == "seed1").all()
