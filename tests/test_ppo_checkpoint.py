"""PPO checkpoints (rlhf_pipeline.ppo.checkpoint) on a full disk and after a killed save: one line naming the
checkpoint, the last complete one kept (in process, and through `python -m rlhf_pipeline ppo`); a killed run's
staging directory is removed by the next save, whichever step it was saving."""

import contextlib
import resource
import signal
import subprocess
import sys

import pytest
import torch
from io_helpers import CHECKPOINT_HINT, can_mount, full, one_line, small_tmpfs, staging  # noqa: F401 (full: a fixture)
from test_preemption import ENV, inputs, ppo_args  # noqa: F401 (inputs: the fixture)

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.ppo.checkpoint import list_checkpoints, load_latest_checkpoint, save_checkpoint


def test_full_disk_keeps_the_last_complete_checkpoint(full):  # noqa: F811
    ckpt = full.dir / "ckpt"
    save_checkpoint(ckpt, 2, {"policy": {"w": torch.zeros(10)}})
    with full.writing(), pytest.raises(PipelineError) as e:  # torch.save's own RuntimeError has no errno
        save_checkpoint(ckpt, 4, {"policy": {"w": torch.randn(250_000)}})
    assert one_line(e.value, ckpt / "step000004", full.cause).endswith(f"and rerun {CHECKPOINT_HINT}")
    assert [p.name for p in list_checkpoints(ckpt)] == ["step000002"] and not staging(ckpt)
    assert load_latest_checkpoint(ckpt)["step"] == 2


def test_full_disk_through_the_cli(inputs, tmp_path):  # noqa: F811
    """A PPO run whose checkpoint directory fills up at its first checkpoint: exit 2, one line, no traceback
    (a 1 MiB tmpfs as root, else a 1 MiB file size limit; the checkpoint's policy weights are ~4 MB)."""
    run = tmp_path / "run"
    if can_mount():
        ctx, preexec, cause = small_tmpfs(run / "ckpt", "1m"), None, "no space left on device"
    else:
        def preexec():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        ctx, cause = contextlib.nullcontext(), "file too large"
    with ctx:
        r = subprocess.run([sys.executable, "-m", "rlhf_pipeline", *map(str, ppo_args(inputs, run))], env=ENV,
                           capture_output=True, text=True, timeout=300, preexec_fn=preexec)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
        last = r.stderr.strip().splitlines()[-1]
        assert last.startswith(f"error: {run / 'ckpt' / 'step000002'}: {cause} while writing ("), last
        assert last.endswith(CHECKPOINT_HINT), last
        assert not list((run / "ckpt").iterdir())
        assert not (run / "out" / "model").exists() and not (run / "out" / "manifest.json").exists()


def test_a_killed_saves_staging_is_removed_by_the_next_save(tmp_path):
    ckpt = tmp_path / "ckpt"
    stale = ckpt / ".step000004.abc123.tmp"  # killed while saving step 4; the rerun's next save is step 6
    stale.mkdir(parents=True)
    (stale / "policy.pt").write_bytes(b"\0" * 1000)
    save_checkpoint(ckpt, 6, {"policy": {"w": torch.ones(3)}})
    assert sorted(p.name for p in ckpt.iterdir()) == ["step000006"]
    assert torch.equal(load_latest_checkpoint(ckpt)["policy"]["w"], torch.ones(3))
