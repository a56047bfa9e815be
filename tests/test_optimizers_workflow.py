"""Integration: every optimiser (PPO, GRPO, RLOO, online DPO) through the real rules on tiny settings, each run
against the same proxy RMs from the same SFT policy, read by gold eval, the equal-KL table and the figure alike."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rlhf_pipeline.ppo.trajectories import read_trajectories

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests/configs/tiny.yaml"
RUNS = {"ppo": "ppo", "grpo": "grpo", "rloo": "rloo", "odpo": "online_dpo"}
TARGETS = ["results/plots/overoptimization.png", *[f"results/ppo/{r}/gold_eval.csv" for r in RUNS]]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("optimizers")
    config = yaml.safe_load(TINY.read_text())
    config["ppo"]["hparams"].update(total_episodes=24, eval_interval=2)   # 3 steps of 8: evals at 0, 2, 3
    config["ppo"]["hparams"]["grpo"] = {"num_generations": 4}
    config["ppo"]["runs"] = {name: {"rm_seeds": [1, 2], "objective": "mean", "optimizer": opt, "seed": 7}
                             for name, opt in RUNS.items()}
    config["ppo"]["runs"]["odpo"]["compare_with"] = ["ppo"]
    config["ad"]["runs"] = ["ppo"]  # the learning histories AD reads (tiny.yaml names its own seed1)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
                        "--configfile", str(workdir / "config.yaml"), "--cores", "2", *TARGETS],
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return workdir


def test_every_optimiser_writes_what_a_ppo_run_writes(run):
    for name, optimizer in RUNS.items():
        d = run / "results/ppo" / name
        assert sorted(p.name for p in (d / "eval").glob("step*")) == ["step000000.jsonl", "step000002.jsonl",
                                                                 "step000003.jsonl"], name
        log = pd.read_csv(d / "train_log.csv")
        assert list(log["step"]) == [1, 2, 3] and list(log["episodes"]) == [8, 16, 24], name
        assert log["score"].notna().all(), name
        traj = read_trajectories(d / "trajectories")
        assert sorted(traj["step"].unique()) == [1, 2, 3] and len(traj) == 24, name
        assert (traj["response_ids"].map(len) > 0).all(), name
        gold = pd.read_csv(d / "gold_eval.csv")
        assert list(gold["step"]) == [0, 2, 3] and gold["gold_reward"].notna().all(), name
        manifest = json.loads((d / "manifest.json").read_text())
        assert manifest["config"]["optimizer"] == optimizer, name
        assert (d / "model" / "model.safetensors").is_file(), name
    assert (run / "results/plots/overoptimization.png").stat().st_size > 10_000
    equal_kl = pd.read_csv(run / "results/plots/equal_kl.csv")
    assert ("odpo", "ppo") in set(zip(equal_kl["run"], equal_kl["baseline"]))


def test_step0_evals_are_identical_across_optimisers(run):
    """Same seed, same SFT policy: the step-0 eval samples, their proxy scores and their KL are the same files,
    whichever optimiser then trains (one sampling and KL code for all: rlhf_pipeline.ppo.sampling)."""
    texts = {name: (run / "results/ppo" / name / "eval/step000000.jsonl").read_text() for name in RUNS}
    assert len(set(texts.values())) == 1, {k: v[:200] for k, v in texts.items()}
    later = {name: (run / "results/ppo" / name / "eval/step000003.jsonl").read_text() for name in RUNS}
    assert len(set(later.values())) == len(RUNS)  # and then each optimiser moved the policy its own way


def test_nothing_to_do_after_a_complete_run(run):
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(run),
                        "--configfile", str(run / "config.yaml"), "--cores", "2", "-n", *TARGETS],
                       capture_output=True, text=True, timeout=300)
    assert "Nothing to be done" in r.stdout + r.stderr, r.stdout[-3000:]


def test_changing_one_optimisers_setting_reruns_only_its_runs(run, tmp_path):
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["ppo"]["hparams"]["rloo"] = {"normalize_advantages": True}
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(config))
    shutil.copy(edited, run / "edited.yaml")
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(run),
                        "--configfile", str(run / "edited.yaml"), "--cores", "2", "-n", *TARGETS],
                       capture_output=True, text=True, timeout=300)
    out = r.stdout + r.stderr
    assert "results/ppo/rloo/" in out
    assert not any(f"results/ppo/{name}/manifest.json" in out for name in ("ppo", "grpo", "odpo")), out[-3000:]
