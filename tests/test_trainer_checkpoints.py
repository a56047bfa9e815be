"""Trainer checkpoints (rlhf_pipeline.trainer_checkpoints): a half-written checkpoint is never resumed (no
marker, a size mismatch, a file that does not load). A full disk while the Trainer checkpoints, or while a stage
writes its model, fails in one line with nothing left at that path (io_helpers: a real small tmpfs, or a real file
size limit); rm-train removes the model copy a killed attempt left."""

import json
import re
from pathlib import Path

import pytest
import torch
from io_helpers import CHECKPOINT_HINT, full, one_line, staging  # noqa: F401 (full: the fixture)
from test_preemption import RM_CFG, TINY, inputs  # noqa: F401 (inputs: the fixture)

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.reward import RMConfig
from rlhf_pipeline.reward.train import train_reward_model
from rlhf_pipeline.trainer_checkpoints import MARKER, check_checkpoint, latest_valid_checkpoint, save_trained


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


# ---- a full disk, a killed attempt ----------------------------------------------------------------

def train_rm(inputs, out_dir: Path, ckpt_dir: Path | None = None):  # noqa: F811
    return train_reward_model(RMConfig.from_dict(json.loads(RM_CFG)), 2, inputs / "prefs_train.jsonl",
                              inputs / "prefs_val.jsonl", inputs / "policy", out_dir, ckpt_dir=ckpt_dir)


def test_full_disk_while_the_trainer_checkpoints(full, inputs, tmp_path):  # noqa: F811
    """rm-train's Trainer saves its first checkpoint (safetensors, torch.save) onto a full disk; that partial
    checkpoint-N goes, so the rerun resumes from the last complete one (here: none)."""
    ckpt = full.dir / "ckpt"
    with full.writing(), pytest.raises(PipelineError) as e:
        train_rm(inputs, tmp_path / "out", ckpt)
    step = re.search(r"checkpoint-(\d+):", str(e.value))[1]
    assert one_line(e.value, ckpt / f"checkpoint-{step}", full.cause).endswith(CHECKPOINT_HINT)
    assert not list(ckpt.glob("checkpoint-*")) and not staging(ckpt) and not (tmp_path / "out").exists()


def test_full_disk_while_a_stage_writes_its_model(full):  # noqa: F811
    """The end of every Trainer stage (SFT, RM, DPO): save_pretrained, whose safetensors error says "(os error 28)"."""
    tok = load_tokenizer("minilm")
    model = load_causal_lm(None, tok, tiny=TINY, seed=0)
    out = full.dir / "rm" / "seed1"
    with full.writing(), pytest.raises(PipelineError) as e:
        save_trained(None, model, tok, out, {"accuracy": 1.0}, "metrics.json", None, model_subdir="model")
    one_line(e.value, out, full.cause)
    assert not out.exists() and not staging(out.parent)


def test_rm_train_removes_a_killed_attempts_model_copy(inputs, tmp_path):  # noqa: F811
    rm = tmp_path / "results" / "rm"
    stale = rm / ".seed1.abc123.tmp" / "model"  # what a job killed while writing results/rm/seed1 leaves
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"\0" * 1000)
    metrics = train_rm(inputs, rm / "seed1")
    assert json.loads((rm / "seed1" / "metrics.json").read_text())["accuracy_gold"] == metrics["accuracy_gold"]
    assert (rm / "seed1" / "model" / "model.safetensors").is_file()
    assert sorted(p.name for p in rm.iterdir()) == ["seed1"]
