"""ppo.run: the run's set-up and end under several processes (the multi-GPU path, here 2 CPU processes)."""

import csv
import os
import subprocess
import sys
import textwrap

import pytest

# Two processes (torchrun, gloo on CPU), each with half of every batch: the cross-process gathers, the
# statistics reduce and the end of the run (the final model saved once, then every process leaves together).
SCRIPT = textwrap.dedent("""
    import sys
    import torch
    from rlhf_pipeline.ppo import PPOConfig, train_ppo

    torch.set_num_threads(1)
    out, policy = sys.argv[1], sys.argv[2]

    def reward(prompts, responses):  # longer responses score higher
        return torch.tensor([len(r.split()) / 6.0 for r in responses])

    cfg = PPOConfig.from_dict(dict(total_episodes=2 * 8, batch_size=8, mini_batch_size=4, grad_accum=1,
                                   ppo_epochs=1, max_new_tokens=6, eval_interval=1, eval_batch_size=4,
                                   checkpoint_interval=1, log_with="none", seed=3))
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    train_ppo(cfg, policy, reward, words * 2, words[:4], out + "/run", out + "/ckpt")
""")


@pytest.mark.integration
def test_two_processes_train_save_and_leave_together(tiny_lm, tmp_path):
    (tmp_path / "run_ppo.py").write_text(SCRIPT)
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(tmp_path / "run_ppo.py"), str(tmp_path), tiny_lm],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "model" / "model.safetensors").is_file()
    with open(run / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert sorted(p.name for p in (run / "eval").glob("step*.jsonl")) == [f"step{s:06d}.jsonl" for s in range(3)]
