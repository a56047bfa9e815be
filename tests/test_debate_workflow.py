"""Integration: the real debate rules on tiny settings (tests/configs/tiny.yaml): data, a chunked
and an unchunked round robin of extractive debaters with the MiniLM quote judge, the summaries, and
re-judging the saved transcripts; and debaters trained on their own tournaments (SFT, two DPO
iterations, the strength table) with the iteration DAG."""

import json
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
TARGETS = ["results/debate/tiny/judge.csv", "results/debate/tiny_one/rounds.csv",
           "results/debate/tiny/rejudge/minilm/rounds.csv", "results/debate/tiny/rejudge/coin/judge.csv"]


def snakemake(workdir: Path, config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(config), "--cores", "2", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if check and r.returncode != 0:
        raise AssertionError(f"snakemake failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("debate")
    config = workdir / "tiny.yaml"
    shutil.copy(TINY, config)
    snakemake(workdir, config, *TARGETS)
    return workdir, config


def test_tournament_files_and_columns(run):
    workdir, _ = run
    res = workdir / "results/debate/tiny"
    assert sorted(p.name for p in (res / "transcripts").glob("chunk*.jsonl")) == ["chunk0.jsonl", "chunk1.jsonl"]
    rounds = pd.read_csv(res / "rounds.csv")
    assert {"round_id", "format", "debater_a", "debater_b", "side_a", "side_b", "correct_index", "p_a", "p_b",
            "winner", "correct_won", "first_position", "verified_a", "unverified_a", "status"} <= set(rounds.columns)
    assert (rounds["status"] == "ok").all()
    # debate: 3 questions x (2 self-play pairs x 2 sides + weak and strong in both slot orders x 2 sides);
    # 2 debaters x 3 x 2 of each consultancy; 3 x 2 empty rounds
    assert rounds["format"].value_counts().to_dict() == {"debate": 24, "consultancy": 12,
                                                         "double_consultancy": 12, "empty": 6}
    ratings = pd.read_csv(res / "ratings.csv")
    assert set(ratings["debater"]) == {"weak", "strong"} and {"bt_strength", "bt_lo", "bt_hi"} <= set(ratings)
    judge = pd.read_csv(res / "judge.csv")
    assert set(judge["format"]) == {"debate", "consultancy", "double_consultancy", "empty"}
    assert (res / "win_matrix.png").stat().st_size > 5000 and (res / "calibration.png").stat().st_size > 5000


def test_chunked_and_unchunked_tournaments_play_the_same_rounds(run):
    workdir, _ = run
    cols = lambda df: df.drop(columns=["tournament", "chunk"]).sort_values("round_id").reset_index(drop=True)  # noqa: E731
    two = pd.read_csv(workdir / "results/debate/tiny/rounds.csv")
    one = pd.read_csv(workdir / "results/debate/tiny_one/rounds.csv")
    pd.testing.assert_frame_equal(cols(two), cols(one))


def test_rejudging_with_the_same_judge_reproduces_rounds_csv(run):
    workdir, _ = run
    res = workdir / "results/debate/tiny"
    assert (res / "rejudge/minilm/rounds.csv").read_bytes() == (res / "rounds.csv").read_bytes()
    coin = pd.read_csv(res / "rejudge/coin/rounds.csv")
    assert not coin["p_a"].equals(pd.read_csv(res / "rounds.csv")["p_a"])


def test_nothing_to_do_after_a_complete_run(run):
    workdir, config = run
    r = snakemake(workdir, config, "-n", *TARGETS)
    assert "Nothing to be done" in r.stdout + r.stderr


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["debaters"].update(gpt={"type": "gpt4"}), "config debate.debaters.gpt.type: got 'gpt4'"),
    (lambda d: d["debaters"].update(llm={"type": "hf"}), "config debate.debaters.llm.model: got None"),
    (lambda d: d["tournaments"]["tiny"].update(judge="nobody"), "config debate.tournaments.tiny.judge: got 'nobody'"),
    (lambda d: (d["judges"].update(claude={"type": "anthropic", "model": "claude", "api_key_env": "NO_SUCH_KEY_VAR"}),
                d["tournaments"]["tiny"].update(judge="claude")),
     "config debate.judges.claude.api_key_env: got 'NO_SUCH_KEY_VAR', expected the name of a set environment variable"),
])
def test_bad_debate_config_fails_before_any_job(run, edit, expected):
    workdir, config = run
    cfg = yaml.safe_load(config.read_text())
    edit(cfg["debate"])
    edited = config.with_name("edited.yaml")
    edited.write_text(yaml.safe_dump(cfg))
    r = snakemake(workdir, edited, "-n", *TARGETS, check=False)
    assert r.returncode != 0 and expected in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]


# --- training debaters on their own tournaments (debate.training in tiny.yaml) ----------------------

STRENGTH = "results/debate/strength/judge_accuracy.csv"


@pytest.fixture(scope="module")
def trained(run):
    """SFT on tiny_one's speeches, two DPO iterations (self-play with best-of-2, coin judge), the
    strength tournament and its table, in the same working directory."""
    workdir, config = run
    snakemake(workdir, config, STRENGTH)
    return workdir, config


def _planned_outputs(stdout: str) -> set[str]:
    return {p.strip() for line in stdout.splitlines() if line.startswith("    output: ")
            for p in line[len("    output: "):].split(",")}


def test_training_writes_checkpoints_pairs_and_the_strength_table(trained):
    workdir, _ = trained
    res = workdir / "results/debate"
    for model in ("sft/model", "dpo/iter1/model", "dpo/iter2/model"):
        assert (res / model / "model.safetensors").is_file() and (res / model / "tokenizer.json").is_file()
    tokenizer = json.loads((res / "sft/model/tokenizer.json").read_text())
    assert {"<quote>", "</quote>"} <= {t["content"] for t in tokenizer["added_tokens"]}
    # a world tokenizer made from the speeches and prompts it trains on (debate.training.tokenizer: world)
    assert {"quote", "answer"} <= tokenizer["model"]["vocab"].keys() and len(tokenizer["model"]["vocab"]) < 2000
    for model in ("dpo/iter1/model", "dpo/iter2/model"):  # DPO continues on the SFT debater's tokenizer
        assert json.loads((res / model / "tokenizer.json").read_text())["model"] == tokenizer["model"]
    table = pd.read_csv(res / "strength/judge_accuracy.csv")
    # the demo's anchors (debate.training.strength.anchors: the three extractive debaters) last, no checkpoint
    assert list(table["debater"]) == ["sft", "sft_bo2", "dpo1", "dpo1_bo2", "dpo2", "dpo2_bo2",
                                      "weak", "medium", "strong"]
    assert list(table["best_of_n"]) == [1, 2] * 3 + [1, 1, 1]
    assert list(table["checkpoint"][:6]) == ["sft"] * 2 + ["dpo1"] * 2 + ["dpo2"] * 2
    assert table["checkpoint"][6:].isna().all()
    assert table["debate_questions"].eq(2).all() and table["consultancy_questions"].eq(2).all()
    assert table[["bt_strength", "debate_accuracy", "debate_accuracy_se", "consultancy_accuracy"]].notna().all().all()
    assert (res / "strength/judge_accuracy.png").stat().st_size > 5000
    # the pairs' texts are exactly the candidates the debater generated in that iteration's self-play
    for i in (1, 2):
        pairs = [json.loads(line) for line in (res / f"dpo/iter{i}/pairs.jsonl").read_text().splitlines()]
        summary = json.loads((res / f"dpo/iter{i}/pairs_summary.json").read_text())
        assert summary["kept"] == len(pairs) > 0 and summary["best_of_n"] == 8  # 2 questions x 2 sides x 2 speakers
        generated = {" " + a["raw"] for f in (res / f"dpo/iter{i}/transcripts").glob("chunk*.jsonl")  # the demo's 2
                     for line in f.read_text().splitlines() for s in json.loads(line)["speeches"]
                     for a in s["alternatives"]}
        assert all(p["chosen"] in generated and p["rejected"] in generated for p in pairs)
        assert all(0 <= p["soft_label"] <= 1 and p["gap"] > 0 for p in pairs)
    speakers = {s["speaker"] for line in (res / "dpo/iter2/transcripts/chunk0.jsonl").read_text().splitlines()
                for s in json.loads(line)["speeches"]}
    assert speakers == {"dpo1"}  # iteration 2 self-plays iteration 1's checkpoint


def test_changing_iteration_2_reruns_iteration_2_and_later_not_sft(trained):
    workdir, config = trained
    cfg = yaml.safe_load(config.read_text())
    cfg["debate"]["training"]["dpo_per_iteration"] = {2: {"beta": 0.3}}
    edited = config.with_name("iter2.yaml")
    edited.write_text(yaml.safe_dump(cfg))
    planned = _planned_outputs(snakemake(workdir, edited, "-n", STRENGTH).stdout)
    assert {"results/debate/dpo/iter2/model", STRENGTH, "results/debate/strength/transcripts/chunk0.jsonl"} <= planned
    assert not planned & {"results/debate/sft/model", "results/debate/dpo/iter1/model",
                          "results/debate/dpo/iter1/pairs.jsonl", "results/debate/dpo/iter2/pairs.jsonl",
                          "results/debate/dpo/iter2/transcripts/chunk0.jsonl"}, planned


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.update(iterations=0), "config debate.training.iterations: got 0, expected >= 1"),
    (lambda t: t.update(selfplay={"best_of_n": {"n": 1}}), "config debate.training.selfplay.best_of_n.n: got 1"),
])
def test_bad_training_config_fails_before_any_job(run, edit, expected):
    workdir, config = run
    cfg = yaml.safe_load(config.read_text())
    edit(cfg["debate"]["training"])
    edited = config.with_name("bad_training.yaml")
    edited.write_text(yaml.safe_dump(cfg))
    r = snakemake(workdir, edited, "-n", STRENGTH, check=False)
    assert r.returncode != 0 and expected in r.stdout + r.stderr, (r.stdout + r.stderr)[-2000:]
