"""rlhf_pipeline.models.fingerprint.model_dir_hash: content, not location, of a model directory."""

import shutil

from rlhf_pipeline.models import fingerprint
from rlhf_pipeline.models.fingerprint import model_dir_hash


def test_model_dir_hash_follows_config_and_weights_not_location(tmp_path, monkeypatch):
    a = tmp_path / "a"
    a.mkdir()
    (a / "config.json").write_text('{"x": 1}')
    (a / "model.safetensors").write_bytes(b"\x00" * 64)
    (a / "README.md").write_text("not hashed")
    first = model_dir_hash(str(a))
    assert first["hash_of"] == "config+weights" and len(first["sha256"]) == 64
    b = tmp_path / "b"
    shutil.copytree(a, b)
    (b / "README.md").write_text("other text")
    assert model_dir_hash(str(b)) == first
    (b / "model.safetensors").write_bytes(b"\x01" + b"\x00" * 63)
    model_dir_hash.cache_clear()
    assert model_dir_hash(str(b))["sha256"] != first["sha256"]
    assert model_dir_hash(str(tmp_path / "missing")) == {}
    # over the size limit: names and sizes only, so a changed byte no longer shows
    monkeypatch.setattr(fingerprint, "FULL_HASH_BYTES", 10)
    model_dir_hash.cache_clear()
    big_a, big_b = model_dir_hash(str(a)), model_dir_hash(str(b))
    assert big_a["hash_of"] == "config+index+sizes" and big_a == big_b
    model_dir_hash.cache_clear()
