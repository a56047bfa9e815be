"""Integration: credentials in a server URL (base_url: user-info, query) through the real debate rules on tiny
settings. A tournament whose API debater's URL carries a query key and whose API judge's URL carries user-info
runs against a local server, and is re-judged by that judge; no file of the run (the working directory:
results/, logs, .snakemake/), nor the printed shell commands, holds a credential; the server got the query
parameter as a query parameter and the user-info as basic auth. A changed credential reruns nothing, a changed
server does; the red-team target's URL is detached alike; a chunk run by hand takes the full URL (manifest
clean) and names the missing variable."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from rlhf_pipeline.clients import detach_credentials
from rlhf_pipeline.workflow_config import resolve_config

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests/configs/tiny.yaml"
USER, PASSWORD, QUERY_KEY = "us3r-name", "s3cr3t-userinfo", "s3cr3t-query"
SECRETS = [USER, PASSWORD, QUERY_KEY, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()]
CHUNK = "results/debate/api/transcripts/chunk0.jsonl"
TARGETS = [CHUNK, "results/debate/api/rounds.csv", "results/debate/api/rejudge/served/rounds.csv"]


def completion(content: str, logprobs=None) -> dict:
    return {"id": "c1", "object": "chat.completion", "created": 0, "model": "served",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": logprobs,
                         "finish_reason": "stop"}]}


def answer(request: Request) -> Response:
    """The judge (/judge/v1) says A with top logprobs; the debater (/debater/v1) gives a speech."""
    if request.path.startswith("/judge/"):
        entries = [{"token": "A", "logprob": -0.2, "bytes": None}, {"token": "B", "logprob": -1.7, "bytes": None}]
        body = completion("A", {"content": [{**entries[0], "top_logprobs": entries}]})
    else:
        body = completion("My answer is right.")
    return Response(json.dumps(body), content_type="application/json")


@pytest.fixture(scope="module")
def server():
    srv = HTTPServer()
    srv.expect_request("/judge/v1/chat/completions", method="POST").respond_with_handler(answer)
    srv.expect_request("/debater/v1/chat/completions", method="POST").respond_with_handler(answer)
    srv.start()
    yield srv
    srv.clear()
    srv.stop()


def urls(server: HTTPServer, password: str = PASSWORD, judge_path: str = "/judge/v1") -> tuple[str, str]:
    """(the judge's URL with user-info, the debater's with a query key)."""
    host = f"127.0.0.1:{server.port}"
    return f"http://{USER}:{password}@{host}{judge_path}", f"http://{host}/debater/v1?api-key={QUERY_KEY}"


def write_config(path: Path, server: HTTPServer, **kw) -> Path:
    """tiny.yaml plus the served debater and judge and the tournament ``api`` they play (outside the workdir:
    the config file holds the credentials; it is the one file that may)."""
    cfg = yaml.safe_load(TINY.read_text())
    judge_url, debater_url = urls(server, **kw)
    cfg["debate"]["debaters"]["served"] = {"type": "openai_compatible", "model": "served", "base_url": debater_url,
                                           "max_new_tokens": 8, "max_retries": 0}
    cfg["debate"]["judges"]["served"] = {"type": "openai_compatible", "model": "served", "base_url": judge_url,
                                         "max_retries": 0}
    cfg["debate"]["tournaments"]["api"] = {"kind": "round_robin", "debaters": ["weak", "served"], "judge": "served",
                                           "rounds": 1, "questions": 1, "formats": ["debate", "consultancy"],
                                           "n_chunks": 1, "bootstrap": 2}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def snakemake(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(config), "--cores", "2", "-p", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    if r.returncode != 0:
        raise AssertionError(f"snakemake failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def leaks(root: Path, texts: tuple[str, ...] = ()) -> list[str]:
    """Every file under ``root`` (and each of ``texts``) that holds a credential, as 'path: secret'."""
    found = [f"{p.relative_to(root)}: {s}" for p in sorted(root.rglob("*")) if p.is_file()
             for s in SECRETS if s.encode() in p.read_bytes()]
    return found + [f"output {i}: {s}" for i, t in enumerate(texts) for s in SECRETS if s in t]


@pytest.fixture(scope="module")
def run(tmp_path_factory, server):
    workdir, conf = tmp_path_factory.mktemp("wf"), tmp_path_factory.mktemp("conf")
    config = write_config(conf / "api.yaml", server)
    r = snakemake(workdir, config, *TARGETS)
    return workdir, conf, config, r


def test_no_credential_in_any_file_of_the_run_and_the_server_got_them(run, server):
    workdir, _, _, r = run
    assert (workdir / ".snakemake/metadata").is_dir() and list((workdir / ".snakemake/log").glob("*.log"))
    assert leaks(workdir, (r.stdout, r.stderr)) == []
    manifest = json.loads((workdir / "results/debate/api/transcripts/chunk0.manifest.json").read_text())
    host = f"http://127.0.0.1:{server.port}"
    assert manifest["config"]["judges"]["served"]["base_url"] == f"{host}/judge/v1"
    assert f"{host}/debater/v1#credentials=RLHF_URL_" in r.stdout + r.stderr  # the printed shell command
    judged = [req for req, _ in server.log if req.path == "/judge/v1/chat/completions"]
    spoken = [req for req, _ in server.log if req.path == "/debater/v1/chat/completions"]
    assert judged and spoken and len(judged) + len(spoken) == len(server.log)
    assert all(req.authorization.type == "basic" and (req.authorization.username, req.authorization.password)
               == (USER, PASSWORD) and not req.args for req in judged)
    assert all(req.args.to_dict(flat=False) == {"api-key": [QUERY_KEY]} for req in spoken)
    assert all(req.headers["Authorization"] == "Bearer EMPTY" for req in spoken)


def test_a_changed_credential_reruns_nothing_a_changed_server_does(run, server):
    workdir, conf, _, _ = run
    same = snakemake(workdir, write_config(conf / "new_password.yaml", server, password="an0ther-pw"), "-n", CHUNK)
    assert "Nothing to be done" in same.stdout + same.stderr
    moved = snakemake(workdir, write_config(conf / "new_path.yaml", server, judge_path="/judge2/v1"), "-n", CHUNK)
    assert "debate_chunk" in moved.stdout and "/judge2/v1#credentials=RLHF_URL_" in moved.stdout
    assert leaks(workdir, (same.stdout, same.stderr, moved.stdout, moved.stderr)) == []


def test_the_redteam_target_url_is_detached_too(run, server):
    workdir, conf, _, _ = run
    config = write_config(conf / "redteam.yaml", server)
    cfg = yaml.safe_load(config.read_text())
    cfg["redteam"]["target"] = {"backend": "openai_compatible", "model": "served", "base_url": urls(server)[1]}
    config.write_text(yaml.safe_dump(cfg))
    plan = snakemake(workdir, config, "-n", "results/redteam/plain_s1/metrics.csv")
    assert f"127.0.0.1:{server.port}/debater/v1#credentials=RLHF_URL_" in plan.stdout
    assert leaks(workdir, (plan.stdout, plan.stderr)) == []


def chunk_by_hand(workdir: Path, out: Path, run_config: dict, env: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "rlhf_pipeline", "debate-chunk", "--config", json.dumps(run_config), "--chunk", "0",
           "--questions", str(workdir / "results/data/debate/synthetic/test.jsonl"), "--out", str(out / "chunk.jsonl"),
           "--state-dir", str(out / "state"), "--manifest", str(out / "manifest.json")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)


def test_a_chunk_run_by_hand_takes_the_full_url_or_names_the_missing_variable(run, tmp_path):
    workdir, _, config, _ = run
    tournament = resolve_config([config], root=ROOT)[0].debate.with_training().tournament_run("api")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLHF_URL_")}
    r = chunk_by_hand(workdir, tmp_path / "full", tournament.to_dict(), env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "full/chunk.jsonl").stat().st_size > 0 and leaks(tmp_path / "full") == []
    detach_credentials(tournament)  # the reference the workflow gives, without its variable
    r = chunk_by_hand(workdir, tmp_path / "ref", tournament.to_dict(), env)
    refs = [m.base_url.split("#credentials=") for m in (tournament.judges["served"], tournament.debaters["served"])]
    assert r.returncode == 2 and not (tmp_path / "ref/chunk.jsonl").exists()
    line = r.stderr.strip().splitlines()[-1]
    assert any(f"base_url {public} takes its credentials from ${var}, which is not set" in line
               for public, var in refs), r.stderr[-2000:]
