"""Output files (rlhf_pipeline.io): secret keys recognised and redacted by every writer; JSON writers never
write NaN; appended JSONL lines too. Outputs appear whole or not at all: a full disk fails in one line with nothing
at the target (io_helpers: a real small tmpfs, or a real file size limit), and a killed writer's staging is removed
by the next writer of the same target, a live writer's is not."""

import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from io_helpers import full, one_line, staging  # noqa: F401 (full: the fixture)

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import (
    append_jsonl,
    atomic_dir,
    atomic_file,
    is_secret_key,
    read_jsonl,
    redact,
    write_json,
    write_jsonl,
)


@pytest.mark.parametrize("key", ["hf_token", "HF_TOKEN", "api_key", "openaiApiKey", "OPENAI_API_KEY", "password",
                                 "client_secret", "credentials", "apikey", "access-token"])
def test_secret_keys(key):
    assert is_secret_key(key)


@pytest.mark.parametrize("key", ["tokenizer", "max_new_tokens", "tokens", "key", "api_key_env", "secretary",
                                 "n_tokens", "monkey", "keyword"])
def test_not_secret_keys(key):
    assert not is_secret_key(key)  # api_key_env: the name of the variable that holds the key


def test_every_writer_redacts(tmp_path):
    write_json(tmp_path / "m.json", {"epochs": 1, "tokenizer": "minilm", "nested": {"hf_token": "hf_PLANTED"}})
    write_jsonl(tmp_path / "r.jsonl", [{"prompt": "p", "api_key": "sk-PLANTED"}])
    for f in tmp_path.iterdir():
        assert "PLANTED" not in f.read_text() and "<redacted>" in f.read_text()
    assert json.loads((tmp_path / "m.json").read_text())["tokenizer"] == "minilm"
    assert redact({"a": [{"password": 1}], "max_new_tokens": 8}) == {"a": [{"password": "<redacted>"}],
                                                                     "max_new_tokens": 8}


def test_json_writers_never_write_nan(tmp_path):
    with pytest.raises(PipelineError, match=r"r.jsonl: row 2: scores\[1\] is nan; refusing to write invalid JSON"):
        write_jsonl(tmp_path / "r.jsonl", [{"scores": [1.0]}, {"scores": [1.0, math.nan]}])
    assert not (tmp_path / "r.jsonl").exists()
    write_json(tmp_path / "m.json", {"accuracy": math.nan, "loss": math.inf, "n": 3})
    assert json.loads((tmp_path / "m.json").read_text()) == {"accuracy": None, "loss": None, "n": 3}


def test_append_jsonl_redacts_and_refuses_nan(tmp_path):
    path = tmp_path / "log.jsonl"
    append_jsonl(path, {"round_id": "r1", "provenance": {"api_key": "sk-123", "model": "m"}})
    append_jsonl(path, {"round_id": "r2"})
    assert read_jsonl(path) == [{"round_id": "r1", "provenance": {"api_key": "<redacted>", "model": "m"}},
                                {"round_id": "r2"}]
    with pytest.raises(PipelineError, match=r"log.jsonl: probs\[0\] is nan; refusing to write invalid JSON"):
        append_jsonl(path, {"probs": [float("nan"), 1.0]})
    assert len(read_jsonl(path)) == 2


# ---- outputs whole or not at all -------------------------------------------------------------------

def test_full_disk_fails_in_one_line_with_nothing_at_the_target(full):  # noqa: F811
    target = full.dir / "rows.jsonl"
    with full.writing(), pytest.raises(PipelineError) as e:
        write_jsonl(target, [{"text": "x" * 1000}] * 1000)
    assert one_line(e.value, target, full.cause).endswith("and rerun")
    assert not target.exists() and not staging(full.dir)


def test_unrelated_errors_pass_unchanged(tmp_path):
    # torch's words for a failed write, but the disk has room
    with pytest.raises(RuntimeError, match="unexpected pos 1 vs 2"), atomic_dir(tmp_path / "d"):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1 vs 2")
    with pytest.raises(ValueError, match="no"), atomic_file(tmp_path / "f"):
        raise ValueError("no")
    assert not list(tmp_path.iterdir())


WRITER = """
import os, sys
from rlhf_pipeline.io import atomic_dir
with atomic_dir(sys.argv[1]) as tmp:
    (tmp / "data").write_text("theirs")
    print(tmp.name, flush=True)
    if sys.argv[2] == "kill":
        os.kill(os.getpid(), 9)
    sys.stdin.readline()
"""


def writer(target: Path, then: str) -> tuple[subprocess.Popen, Path]:
    """Another process inside ``atomic_dir(target)``: SIGKILLed there (``then="kill"``) or waiting for a line."""
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target), then], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    return proc, target.parent / proc.stdout.readline().strip()


def test_a_killed_writers_staging_is_removed_by_the_next_writer(tmp_path):
    target = tmp_path / "seed1"
    proc, theirs = writer(target, "kill")
    assert proc.wait(timeout=60) == -signal.SIGKILL and (theirs / "data").is_file()
    older = tmp_path / ".seed1.abc123.tmp"  # a staging directory named before they said whose they are
    (older / "model").mkdir(parents=True)
    (older / "model" / "model.safetensors").write_bytes(b"\0" * 100)
    others = [tmp_path / ".seed10.abc123.tmp", tmp_path / ".seed1.json.abc123.tmp"]  # of other targets
    for p in others:
        p.mkdir()
    with atomic_dir(target) as tmp:
        (tmp / "data").write_text("ours")
    assert (target / "data").read_text() == "ours"
    assert staging(tmp_path) == sorted(p.name for p in others)

    (tmp_path / ".metrics.json.abc123.tmp").write_text("partial")
    with atomic_file(tmp_path / "metrics.json") as tmp:
        Path(tmp).write_text("{}")
    assert staging(tmp_path) == sorted(p.name for p in others)


def test_a_live_writers_staging_is_left_alone(tmp_path):
    target = tmp_path / "seed1"
    proc, theirs = writer(target, "wait")
    with atomic_dir(target) as tmp:
        (tmp / "data").write_text("ours")
    assert (theirs / "data").read_text() == "theirs"
    proc.communicate("\n", timeout=60)
    assert proc.returncode == 0 and (target / "data").read_text() == "theirs" and not staging(tmp_path)
