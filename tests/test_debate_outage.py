"""Integration: a served judge's outage through the real debate rules. Every judgment of a chunk fails
(HTTP 500 from a local OpenAI-compatible server): the chunk job fails, Snakemake's own output shows one line
with the count, the first error and the server, no transcript is written; once the server is back, a plain
rerun judges only the failed rounds again (their speeches are reused) and the tournament completes."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rlhf_pipeline.miniature.serve import start_echo

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
TARGET = "results/debate/outage/judge.csv"


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


@pytest.fixture
def served(tmp_path):
    server, url, chat = start_echo(latency_s=0.01)
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    cfg["debate"]["debaters"]["det"] = {"type": "deterministic"}
    cfg["debate"]["judges"]["served"] = {"type": "openai_compatible", "model": "echo", "base_url": url,
                                         "max_retries": 1, "timeout_s": 5, "concurrency": 2}
    cfg["debate"]["tournaments"] = {"outage": {"debaters": ["det"], "judge": "served", "kind": "self_play",
                                               "formats": ["debate"], "rounds": 1, "questions": 3, "bootstrap": 0}}
    cfg["debate"]["training"]["source"] = None
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    shutil.copytree(ROOT / "config/debate", tmp_path / "config/debate")
    yield tmp_path, chat, url
    server.shutdown()
    server.server_close()


def test_an_outage_fails_the_chunk_and_a_rerun_retries_only_the_failed_judgments(served):
    workdir, chat, url = served
    chat.fail_status = 500
    r = snakemake(workdir, TARGET)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    host = url.removesuffix("/v1")
    line = next(x for x in out.splitlines() if "rounds failed" in x)
    assert "outage chunk 0: 6 of 6 rounds failed (more than max_failed_share=0); first: round " in line
    assert f"openai_compatible judge served (echo at {host}/v1): HTTP 500" in line
    assert "Error in rule debate_chunk" in out and not (workdir / "results/debate/outage/transcripts").exists()
    assert chat.failed == 6 * 2 and chat.requests == 0  # one retry each (max_retries: 1), then given up
    # nothing was recorded as finished: a dry run still plans the chunk
    assert "debate_chunk" in snakemake(workdir, "-n", TARGET).stdout
    chat.fail_status = None
    r = snakemake(workdir, TARGET)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert chat.requests == 6  # the 6 judgments again, no speech (deterministic debaters: no server calls)
    rounds = pd.read_csv(workdir / "results/debate/outage/rounds.csv")
    assert len(rounds) == 6 and (rounds["status"] == "ok").all()
    assert "Nothing to be done" in snakemake(workdir, "-n", TARGET).stdout
