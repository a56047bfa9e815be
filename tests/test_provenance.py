"""Provenance (rlhf_pipeline.provenance): argv redaction hides values, not flags; the manifest records
provenance without secrets. A URL setting (rlhf_pipeline.io.split_url, redact) is written as its public part
(scheme, host, port, path) in every JSON file, a manifest's config and its command line, so a stage run by hand
with the full URL records none of its credentials."""

import json
import sys

import pytest

from rlhf_pipeline.io import is_url_key, redact, split_url, write_json
from rlhf_pipeline.provenance import redact_argv, write_manifest


def test_argv_redaction_hides_values_not_flags():
    argv = ["prog", "sft", "--tokenizer", "minilm", "--api-key", "sk-1", "--hf-token=hf_2",
            '--config', '{"max_new_tokens": 8, "auth_token": "t3"}']
    out = redact_argv(argv)
    assert out[:6] == ["prog", "sft", "--tokenizer", "minilm", "--api-key", "<redacted>"]
    assert out[6] == "--hf-token=<redacted>" and "t3" not in out[8] and '"max_new_tokens": 8' in out[8]


def test_manifest_records_provenance_without_secrets(tmp_path):
    m = write_manifest(tmp_path / "manifest.json", "sft", {"epochs": 1, "hf_token": "hf_abc",
                                                            "nested": {"api_key": "x"}}, seed=3)
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk["config_hash"] == m["config_hash"] and len(m["config_hash"]) == 16
    assert on_disk["seed"] == 3 and "commit" in on_disk["git"] and "torch" in on_disk["packages"]
    text = (tmp_path / "manifest.json").read_text()
    assert "hf_abc" not in text and '"x"' not in text


SECRET_URL = "http://us3r-name:s3cr3t%40pw@127.0.0.1:8000/v1?api-key=s3cr3t-query&x=1#frag"


@pytest.mark.parametrize("url, expected", [
    (SECRET_URL, ("http://127.0.0.1:8000/v1", "us3r-name:s3cr3t%40pw", "api-key=s3cr3t-query&x=1")),
    ("https://Host.example:443/v1/", ("https://Host.example:443/v1/", "", "")),
    ("http://[::1]:8000/v1?k=v", ("http://[::1]:8000/v1", "", "k=v")),
    ("http://h/v1#credentials=RLHF_URL_0A1B", ("http://h/v1", "", "")),
    ("u:p@localhost:8000/v1?k=v", ("localhost:8000/v1", "u:p", "k=v")),
])
def test_split_url_keeps_scheme_host_port_and_path(url, expected):
    assert split_url(url) == expected


def test_url_keys_are_written_as_their_public_part(tmp_path):
    assert [k for k in ("base_url", "url", "endpointUrl", "TARGET_URI", "urls", "curl", "base_url_env")
            if is_url_key(k)] == ["base_url", "url", "endpointUrl", "TARGET_URI"]
    row = {"judges": {"j": {"base_url": SECRET_URL, "api_key_env": "K", "model": "m"}}, "urls": [SECRET_URL],
           "text": "see http://u:p@h?k=v"}  # only URL keys: a text is data, and kept
    assert redact(row) == {**row, "judges": {"j": {**row["judges"]["j"], "base_url": "http://127.0.0.1:8000/v1"}}}
    write_json(tmp_path / "x.json", {"base_url": SECRET_URL, "n": None})
    assert json.loads((tmp_path / "x.json").read_text()) == {"base_url": "http://127.0.0.1:8000/v1", "n": None}


def test_a_manifest_of_a_stage_run_with_the_full_url_holds_none_of_it(tmp_path, monkeypatch):
    config = {"judges": {"j": {"type": "openai_compatible", "base_url": SECRET_URL}}}
    monkeypatch.setattr(sys, "argv", ["rlhf_pipeline", "debate-chunk", "--config", json.dumps(config),
                                      "--base-url", SECRET_URL, f"--proxy-url={SECRET_URL}", "--out", "x"])
    m = write_manifest(tmp_path / "manifest.json", "debate_chunk", config)
    text = (tmp_path / "manifest.json").read_text()
    assert not any(s in text for s in ("us3r-name", "s3cr3t", "frag")), text
    assert m["config"]["judges"]["j"]["base_url"] == "http://127.0.0.1:8000/v1"
    assert m["argv"][4:7] == ["--base-url", "http://127.0.0.1:8000/v1", "--proxy-url=http://127.0.0.1:8000/v1"]
    other = write_manifest(tmp_path / "m2.json", "debate_chunk", {"judges": {"j": {
        "type": "openai_compatible", "base_url": SECRET_URL.replace("s3cr3t-query", "0ther")}}})
    assert other["config_hash"] == m["config_hash"]  # the hash encodes no credential either
    assert redact_argv(["p", "--api-key", "sk-1", "--base-url"]) == ["p", "--api-key", "<redacted>", "--base-url"]
