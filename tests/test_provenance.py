"""Provenance (rlhf_pipeline.provenance): argv redaction hides values, not flags; the manifest records
provenance without secrets."""

import json

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
