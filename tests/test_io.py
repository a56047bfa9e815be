"""Output files (rlhf_pipeline.io): secret keys recognised and redacted by every writer; JSON writers never
write NaN; appended JSONL lines too."""

import json
import math

import pytest

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import append_jsonl, is_secret_key, read_jsonl, redact, write_json, write_jsonl


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

