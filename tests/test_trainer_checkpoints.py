"""Trainer checkpoints (rlhf_pipeline.trainer_checkpoints): a half-written checkpoint is never resumed (no
marker, a size mismatch, a file that does not load)."""

import json
from pathlib import Path

import pytest
import torch

from rlhf_pipeline.trainer_checkpoints import MARKER, check_checkpoint, latest_valid_checkpoint


def _fake_checkpoint(ck: Path, step: int) -> None:
    """The files of a Trainer checkpoint (tiny stand-ins), without a completion marker."""
    from safetensors.torch import save_file

    ck.mkdir()
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth"):
        torch.save({"x": torch.arange(4)}, ck / name)
    save_file({"w": torch.ones(2)}, ck / "model.safetensors")
    (ck / "trainer_state.json").write_text(json.dumps({"global_step": step}))


def test_half_written_checkpoint_is_never_resumed(tmp_path):
    """The validity rules without a Trainer: no marker, a complete one, a size mismatch."""
    from rlhf_pipeline.trainer_checkpoints import write_marker

    _fake_checkpoint(tmp_path / "checkpoint-2", 2)
    write_marker(tmp_path / "checkpoint-2", 2)
    ck = tmp_path / "checkpoint-3"
    _fake_checkpoint(ck, 3)
    with pytest.warns(UserWarning, match="checkpoint-3: no checkpoint_complete.json"):
        assert latest_valid_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    assert not ck.exists()  # removed, so the Trainer's rotation never keeps it in place of a valid one

    _fake_checkpoint(ck, 3)
    write_marker(ck, 3)
    assert latest_valid_checkpoint(tmp_path) == ck
    assert json.loads((ck / MARKER).read_text())["sizes"]["optimizer.pt"] == (ck / "optimizer.pt").stat().st_size
    (ck / "scheduler.pt").write_bytes(b"PK")
    with pytest.raises(ValueError, match="scheduler.pt has 2 bytes"):
        check_checkpoint(ck)
    write_marker(ck, 3)  # sizes now agree, but the file does not load
    with pytest.raises(RuntimeError):
        check_checkpoint(ck)
