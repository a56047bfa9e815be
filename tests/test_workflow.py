"""Integration: the real Snakemake rules on tiny settings, end to end, and what reruns after a change.

One module-scoped run of the whole chain (data -> SFT -> gold RM -> preferences -> proxy RMs -> PPO
-> gold eval, best-of-n, overoptimization plot) in a temporary working directory; the other tests
read its files or ask Snakemake for a dry-run plan after editing the config.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests/configs/tiny.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
TARGETS = ["results/plots/overoptimization.png", "results/rm/summary.csv"]
AD_TARGETS = ["results/ad/lm/metrics.csv", "results/ad/rl/metrics.csv"]


# Planted in the environment of every run (where hub and API clients look for keys); it must appear in
# no file a run writes.
SECRET = "hf_PLANTEDsecret0123456789"
ENV = {**os.environ, "HF_TOKEN": SECRET, "OPENAI_API_KEY": SECRET, "WANDB_API_KEY": SECRET}


def snakemake(workdir: Path, config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--directory", str(workdir), "--configfile", str(config), "--cores", "2", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=ENV)
    if check and r.returncode != 0:
        raise AssertionError(f"snakemake failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def planned_jobs(workdir: Path, config: Path, *targets: str) -> dict[str, int]:
    """Rule -> job count of a dry-run plan (empty when nothing is to be done)."""
    r = snakemake(workdir, config, "-n", *targets)
    out = r.stdout + r.stderr
    if "Nothing to be done" in out:
        return {}
    table = out.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.M)}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("workflow")
    config = workdir / "tiny.yaml"
    shutil.copy(TINY, config)
    snakemake(workdir, config, *TARGETS)
    return workdir, config


def test_chain_outputs(run):
    workdir, _ = run
    res = workdir / "results"
    for split in ("train", "val", "test"):
        assert pd.read_json(res / f"data/synthetic/{split}.jsonl", lines=True)["prompt"].str.len().min() > 0
    assert (res / "sft/model/config.json").is_file() and (res / "gold_rm/model/config.json").is_file()

    prefs = pd.read_json(res / "preferences/train.jsonl", lines=True)
    assert len(prefs) == 32 and prefs["label_flipped"].sum() == 8  # exactly 25% flipped
    assert (prefs["gold_chosen"] > prefs["gold_rejected"]).sum() == 24

    summary = pd.read_csv(res / "rm/summary.csv")
    assert list(summary["seed"]) == [1, 2] and summary["accuracy_gold"].between(0, 1).all()
    assert (res / "rm/summary.png").stat().st_size > 5000

    for run_name in ("seed1", "ensemble_wco"):
        gold = pd.read_csv(res / f"ppo/{run_name}/gold_eval.csv")
        assert {"step", "kl", "proxy_reward", "gold_reward"} <= set(gold.columns)
        assert list(gold["step"]) == [0, 1, 2]
        assert gold.loc[0, "kl"] == pytest.approx(0.0, abs=1e-6)  # step 0 is the SFT policy itself
        bon = pd.read_csv(res / f"bon/{run_name}/bon.csv")
        assert list(bon["n"]) == [1, 2, 4] and bon.loc[0, "kl"] == 0
        assert (res / f"ppo/{run_name}/gold_vs_kl.png").stat().st_size > 5000
        manifest = json.loads((res / f"ppo/{run_name}/manifest.json").read_text())
        assert manifest["stage"] == "ppo" and manifest["git"]["commit"]
    rows = [json.loads(line) for line in (res / "ppo/ensemble_wco/eval/step000001.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(len(r["proxy_scores"]) == 2 for r in rows)
    assert all(r["proxy_reward"] == pytest.approx(min(r["proxy_scores"]), abs=1e-5) for r in rows)  # WCO
    assert (res / "plots/overoptimization.png").stat().st_size > 10000

    # replicates: seed1 has two (seed1, seed1_r2), differing only in the PPO seed; the aggregate is their mean
    seeds = [json.loads((res / f"ppo/{r}/manifest.json").read_text())["config"]["hparams"]["seed"]
             for r in ("seed1", "seed1_r2")]
    assert seeds == [1, 1001]
    reps = [pd.read_csv(res / f"ppo/{r}/gold_eval.csv") for r in ("seed1", "seed1_r2")]
    agg = pd.read_csv(res / "ppo/seed1/aggregate.csv")
    for col in ("gold_reward", "proxy_reward", "kl"):
        assert agg[col].to_numpy() == pytest.approx((reps[0][col] + reps[1][col]).to_numpy() / 2)
    assert set(agg["interval"]) == {"replicates_t95"}
    assert set(pd.read_csv(res / "ppo/ensemble_wco/aggregate.csv")["interval"]) == {"prompts_normal95"}
    fits = pd.read_csv(res / "plots/fits.csv")
    assert sorted(zip(fits["run"], fits["form"])) == [("ensemble_wco", "bon"), ("ensemble_wco", "rl"),
                                                       ("seed1", "bon"), ("seed1", "rl")]
    equal = pd.read_csv(res / "plots/equal_kl.csv")  # the baseline: seed1, the first single-RM run
    assert set(equal["baseline"]) == {"seed1"} and set(equal["run"]) == {"seed1", "ensemble_wco"}
    wco = equal[equal["run"] == "ensemble_wco"]
    assert len(wco) == 4 and set(wco["interval"]) == {"prompts_normal95"}
    both = wco.dropna(subset=["diff"])  # the grid points inside both runs' KL ranges (2 tiny steps move KL little)
    assert len(both) >= 1 and (both["diff_lo"] < both["diff"]).all() and (both["diff"] < both["diff_hi"]).all()
    div = pd.read_csv(res / "rm/diversity.csv")
    assert {"accuracy_gold", "error_corr", "mean_error_corr", "disagreement_error_pearson"} <= set(div["measure"])
    assert set(div.loc[div["scope"] == "ppo_eval", "subject"]) == {"ensemble_wco"}


def vocab(model_dir: Path) -> dict[str, int]:
    return json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]


def test_from_scratch_models_train_on_a_world_tokenizer(run):
    """tokenizer: world (the default): the SFT policy's vocabulary is the train split's words and printable ASCII
    pieces, saved with the model; what starts from the policy (the proxy RMs here, rm.init: sft) reads it; the
    gold RM keeps reading text through MiniLM."""
    workdir, _ = run
    res = workdir / "results"
    world = vocab(res / "sft/model")
    assert 193 < len(world) < 1000  # the tiny world's words, not MiniLM's 30,522
    words = {w for r in pd.read_json(res / "data/synthetic/train.jsonl", lines=True).itertuples()
             for w in re.findall(r"[a-z]+", f"{r.prompt} {r.response}".lower())}
    assert words <= world.keys()
    assert json.loads((res / "sft/model/config.json").read_text())["vocab_size"] == len(world)
    assert json.loads((res / "sft/manifest.json").read_text())["config"]["tokenizer"] == "world"
    assert vocab(res / "rm/seed1/model") == world
    assert json.loads((res / "rm/seed1/model/config.json").read_text())["backbone_config"]["vocab_size"] == len(world)
    assert json.loads((res / "gold_rm/model/config.json").read_text())["backbone_config"]["vocab_size"] == 30522


def test_nothing_to_do_after_a_complete_run(run):
    workdir, config = run
    assert planned_jobs(workdir, config, *TARGETS) == {}


def test_trajectories_and_algorithm_distillation(run):
    """Every PPO run logs its rollouts; the AD target adds only the sweep, the data, the two models and the eval."""
    from rlhf_pipeline.ppo.trajectories import read_trajectories

    workdir, config = run
    res = workdir / "results"
    for run_name in ("seed1", "ensemble_wco"):
        traj = read_trajectories(res / f"ppo/{run_name}/trajectories")
        assert list(traj["step"]) == [1] * 8 + [2] * 8 and traj["score"].notna().all()
    assert planned_jobs(workdir, config, *AD_TARGETS) == {"ad_history": 1, "ad_data": 1, "ad_lm": 2, "ad_eval": 1,
                                                       "ad_rl": 1}
    snakemake(workdir, config, *AD_TARGETS)
    report = pd.read_csv(res / "ad/data/report.csv")
    assert list(zip(report["split"], report["history"])) == [("train", "seed1"), ("heldout", "h0"), ("expert", "seed1")]
    assert (report["dropped_too_long"] == 0).all() and report.loc[0, "steps_spanned_max"] == 2  # contexts span steps
    contexts = pd.read_json(res / "ad/data/train.jsonl", lines=True)
    assert contexts["text"].str.contains("Reward: ").all() and (contexts["last_step"] > contexts["first_step"]).all()
    ad_vocab = vocab(res / "ad/data/tokenizer")  # a world tokenizer of the training episodes: format words, rewards
    assert {"prompt", "completion", "reward"} <= ad_vocab.keys() and len(ad_vocab) < 1000
    assert vocab(res / "ad/lm/model") == vocab(res / "ad/ed/model") == ad_vocab
    assert json.loads((res / "ad/histories/0/trajectories/_run.json").read_text())["reward"]["rm_seeds"] == [1]
    metrics = pd.read_csv(res / "ad/lm/metrics.csv")
    assert {"reward_mae", "action_loglik", "incontext_slope_proxy", "incontext_slope_gold"} <= set(metrics["metric"])
    assert set(metrics["condition"]) == {"history", "no_history", "shuffled", "expert"}
    incontext = pd.read_csv(res / "ad/lm/incontext.csv")
    assert len(incontext) == 4 * 3 and list(incontext["history_episodes"][:3]) == [0, 1, 2]
    assert (res / "ad/lm/incontext.png").stat().st_size > 5000
    rl = pd.read_csv(res / "ad/rl/metrics.csv")
    assert {"history", "no_history"} <= set(rl["condition"]) and (res / "ad/rl/model").is_dir()


def _edited(config: Path, edit) -> Path:
    cfg = yaml.safe_load(config.read_text())
    edit(cfg)
    out = config.with_name("edited.yaml")
    out.write_text(yaml.safe_dump(cfg))
    return out


def test_rm_change_reruns_only_rms_and_dependents(run):
    workdir, config = run
    edited = _edited(config, lambda c: c["rm"].update(learning_rate=1e-3))
    jobs = planned_jobs(workdir, edited, *TARGETS)
    assert jobs.get("rm_train") == 2
    assert not {"sft", "prepare_data", "gold_rm_train", "label_preferences"} & set(jobs)
    assert {"ppo", "gold_eval", "bon_sample", "bon", "rm_summary"} <= set(jobs)


def test_ppo_change_of_one_run_reruns_only_that_run(run):
    workdir, config = run
    edited = _edited(config, lambda c: c["ppo"]["runs"]["seed1"].update(hparams={"kl_coef": 0.1}))
    jobs = planned_jobs(workdir, edited, *TARGETS)
    # seed1 has two replicates: both rerun, and what aggregates them
    assert jobs == {"ppo": 2, "gold_eval": 2, "aggregate_replicates": 1, "fit_curves": 1, "plot_overoptimization": 1}


def test_gold_eval_cli_on_a_partial_eval_dir(run, tmp_path):
    workdir, _ = run
    partial = tmp_path / "stopped_run" / "eval"
    partial.mkdir(parents=True)
    shutil.copy(workdir / "results/ppo/seed1/eval/step000000.jsonl", partial)
    shutil.copy(workdir / "results/ppo/seed1/eval/step000001.jsonl", partial)
    with open(partial / "step000001.jsonl", "a") as f:
        f.write('{"step": 1, "prompt": "trunc')  # a run killed mid-write
    r = subprocess.run([sys.executable, "-m", "rlhf_pipeline", "gold-eval", str(partial),
                        str(workdir / "results/gold_rm/model"), "--batch-size", "4"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(tmp_path / "stopped_run" / "gold_eval.csv")
    assert list(df["step"]) == [0, 1] and df["n"].tolist() == [8, 8]


@pytest.mark.parametrize("edit, expected", [
    (lambda c: c["ppo"]["runs"].update(bad={"rm_seeds": [7]}),
     "config ppo.runs.bad.rm_seeds: got [7], expected seeds from rm.seeds [1, 2] (RM seed(s) [7] are not trained)"),
    (lambda c: c["ppo"]["runs"]["seed1"].update(hparams={"kl_coeff": 0.1}),
     "config ppo.runs.seed1.hparams: unknown key(s) ['kl_coeff']"),
    (lambda c: c["ppo"]["hparams"].update(mini_batch_size=3),
     "config ppo.hparams.mini_batch_size: got 3, expected a divisor of batch_size=8"),
    (lambda c: c["rm"].update(head="cls"), "config rm.head: got 'cls', expected one of"),
    (lambda c: c["rm"].update(init="not-a-model"), "config rm.init: 'not-a-model' is not a local directory"),
    (lambda c: c["gold_rm"].update(path="/nonexistent/gold"), "config gold_rm.path: /nonexistent/gold does not exist"),
    (lambda c: c["sft"]["tiny"].update(hf_api_token=SECRET), "config sft.tiny: unknown key(s) ['hf_api_token']"),
])
def test_bad_config_fails_before_any_job(run, edit, expected):
    """Each fails in seconds with one line, before any job, and without echoing a planted secret."""
    workdir, config = run
    r = snakemake(workdir, _edited(config, edit), "-n", *TARGETS, check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and expected in out, out[-2000:]
    assert "Job stats" not in out and SECRET not in out


def test_planted_secret_is_in_no_file_the_run_wrote(run):
    workdir, _ = run
    written = [p for d in ("results", ".snakemake") for p in (workdir / d).rglob("*") if p.is_file()]
    assert len(written) > 50  # models, manifests, metrics, eval files, logs, Snakemake's metadata
    assert not [str(p.relative_to(workdir)) for p in written if SECRET.encode() in p.read_bytes()]


def test_report_holds_every_reported_output_with_its_caption(run):
    """`snakemake --report` on the finished chain and AD: one HTML page, the front page and each output's caption."""
    workdir, config = run
    targets = [*TARGETS, *AD_TARGETS]
    snakemake(workdir, config, *targets)  # nothing left to do after test_trajectories_and_algorithm_distillation
    r = snakemake(workdir, config, "--report", "report.html", *targets)
    added = re.findall(r"^Adding (\S+) \(", r.stdout + r.stderr, re.M)
    # gold eval (csv + png) of 3 PPO jobs, bon and aggregate of 2 runs, fits, equal-KL, diversity, the figure,
    # the RM summary (csv + png), and AD's contexts report, LM metrics + figure, RL metrics + figure
    assert len(added) == 6 + 2 + 2 + 4 + 2 + 5, added
    html = (workdir / "report.html").read_text()
    for text in ("Settings of this run", "Gold-RM evaluation of a PPO run", "Gold reward (left)",
                 "Algorithm-distillation contexts", "The language-format algorithm-distillation model",
                 "The RL-format algorithm-distillation model", "Algorithm distillation", "Overoptimization"):
        assert text in html, text
    assert "snakemake.config" not in html and "snakemake.wildcards" not in html  # the captions' Jinja is rendered
