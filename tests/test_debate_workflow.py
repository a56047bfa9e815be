"""Integration: the real debate rules on tiny settings (tests/configs/tiny.yaml): data, a chunked
and an unchunked round robin of extractive debaters with the MiniLM quote judge, the summaries, and
re-judging the saved transcripts."""

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
    # 3 pairings x 3 questions x 2 sides of debate; 2 debaters x 3 x 2 of each consultancy; 3 x 2 empty rounds
    assert rounds["format"].value_counts().to_dict() == {"debate": 18, "consultancy": 12,
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
