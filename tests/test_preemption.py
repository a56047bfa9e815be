"""Preemption through the real CLI: SIGTERM at a random step, exit 143, resume, identical results.

Each stage runs as ``python -m rlhf_pipeline <stage>`` in a subprocess (tiny models, one thread).
A run is interrupted once its progress (PPO: rows of train_log.csv; SFT/RM: the Trainer's progress
bar on stderr) reaches a step drawn with a seeded RNG; the rerun of the same command must finish
with exactly the uninterrupted run's results.
"""

import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlhf_pipeline.io import write_jsonl
from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.reward import RewardModel, RMConfig
from rlhf_pipeline.reward.train import train_reward_model
from rlhf_pipeline.sft import SFTConfig, train_sft
from rlhf_pipeline.trainer_checkpoints import check_checkpoint, latest_valid_checkpoint

torch.set_num_threads(1)
RNG = random.Random(20240604)  # the interruption steps; printed in failure messages
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "kilo", "lima", "mike",
         "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "yankee",
         "zulu"]
TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
       "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "default"}


# ---- running and interrupting the CLI ------------------------------------------------------------

def cli(*args) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "rlhf_pipeline", *map(str, args)], env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def interrupted(args, progress, at_step: int, sig=signal.SIGTERM) -> tuple[int, str]:
    """Run the CLI; once ``progress(stderr_so_far)`` reaches ``at_step``, send ``sig``.

    Returns (exit code, stderr). Fails if the run ends before it could be interrupted.
    """
    proc = subprocess.Popen([sys.executable, "-m", "rlhf_pipeline", *map(str, args)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, bufsize=1)
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.time() + 240
    while proc.poll() is None and progress("".join(chunks)) < at_step:
        assert time.time() < deadline, "".join(chunks)[-3000:]
        time.sleep(0.02)
    assert proc.poll() is None, f"finished before step {at_step}:\n" + "".join(chunks)[-3000:]
    proc.send_signal(sig)
    rc = proc.wait(timeout=120)
    reader.join(timeout=10)
    return rc, "".join(chunks)


def bar_progress(total: int):
    """Progress of a Hugging Face Trainer run of ``total`` steps, read from its tqdm bar."""
    pattern = re.compile(rf"(\d+)/{total} \[")

    def progress(stderr: str) -> int:
        found = pattern.findall(stderr)
        return int(found[-1]) if found else 0
    return progress


def log_rows(path: Path):
    """Progress of a PPO run: rows in its train_log.csv (written after every step)."""
    def progress(_stderr: str) -> int:
        try:
            return max(0, len(path.read_text().splitlines()) - 1)
        except FileNotFoundError:
            return 0
    return progress


def same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a), load_file(b)
    assert wa.keys() == wb.keys()
    diff = {k: (wa[k] - wb[k]).abs().max().item() for k in wa if not torch.equal(wa[k], wb[k])}
    assert not diff, f"weights differ (max abs diff per tensor): {diff}"


# ---- inputs --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny policy, a tiny proxy RM over it, prompts, SFT demonstrations and preference pairs."""
    d = tmp_path_factory.mktemp("inputs")
    tok = load_tokenizer("minilm")
    torch.manual_seed(0)
    lm = load_causal_lm(None, tok, tiny=TINY, seed=0)
    lm.save_pretrained(d / "policy")
    tok.save_pretrained(d / "policy")
    rm = RewardModel.from_backbone(lm, head="last_token")
    rm.config.reward_max_length = 16
    rm.save_pretrained(d / "rm")
    tok.save_pretrained(d / "rm")

    rng = random.Random(0)
    words = lambda n: " ".join(rng.choice(WORDS) for _ in range(n))  # noqa: E731
    write_jsonl(d / "prompts.jsonl", [{"prompt": w} for w in WORDS * 2])
    write_jsonl(d / "eval_prompts.jsonl", [{"prompt": w} for w in WORDS[:6]])
    demos = [{"prompt": words(3), "response": words(5)} for _ in range(64)]
    write_jsonl(d / "sft_train.jsonl", demos[:48])
    write_jsonl(d / "sft_val.jsonl", demos[48:])
    pairs = []
    for i in range(80):
        base, flipped = words(4), i % 4 == 0
        good, bad = base + " excellent", base + " terrible"
        pairs.append({"prompt": "Say:", "chosen": bad if flipped else good, "rejected": good if flipped else bad,
                      "gold_chosen": 0.0, "gold_rejected": 0.0, "label_flipped": flipped})
    write_jsonl(d / "prefs_train.jsonl", pairs[:48])
    write_jsonl(d / "prefs_val.jsonl", pairs[48:])
    return d


# ---- PPO -----------------------------------------------------------------------------------------

PPO_STEPS = 8
PPO_CFG = json.dumps(dict(rm_seeds=[1], reward_batch_size=16, hparams=dict(
    total_episodes=PPO_STEPS * 8, batch_size=8, mini_batch_size=4, ppo_epochs=1, max_new_tokens=6, learning_rate=3e-3,
    eval_interval=3, eval_batch_size=8, checkpoint_interval=2, log_with="none", seed=3)))


def ppo_args(inputs, run: Path):
    return ["ppo", "--config", PPO_CFG, "--policy", inputs / "policy", "--rm-dirs", inputs / "rm",
            "--train-prompts", inputs / "prompts.jsonl", "--eval-prompts", inputs / "eval_prompts.jsonl",
            "--out-dir", run / "out", "--ckpt-dir", run / "ckpt",
            "--manifest", run / "out" / "manifest.json"]


@pytest.fixture(scope="module")
def ppo_straight(inputs, tmp_path_factory):
    run = tmp_path_factory.mktemp("ppo_straight")
    cli(*ppo_args(inputs, run))
    return run / "out"


def assert_same_ppo_outputs(a: Path, b: Path) -> None:
    """train_log.csv (without its wall-clock ``time`` column), every eval file, the final weights."""
    def rows(p):
        with open(p / "train_log.csv") as f:
            return [{k: v for k, v in r.items() if k != "time"} for r in csv.DictReader(f)]
    assert len(rows(a)) == PPO_STEPS and rows(b) == rows(a)
    evals = sorted(p.name for p in (a / "eval").iterdir())
    assert evals == ["step000000.jsonl", "step000003.jsonl", "step000006.jsonl", "step000008.jsonl"]
    assert sorted(p.name for p in (b / "eval").iterdir()) == evals
    for name in evals:
        assert (b / "eval" / name).read_text() == (a / "eval" / name).read_text(), name
    same_weights(a / "model" / "model.safetensors", b / "model" / "model.safetensors")


def interrupt_ppo(inputs, run: Path, at_step: int) -> int:
    """Interrupt a PPO run at ``at_step`` or later; check what it leaves; return the stopped step."""
    rc, err = interrupted(ppo_args(inputs, run), log_rows(run / "out" / "train_log.csv"), at_step)
    assert rc == 128 + signal.SIGTERM == 143, err[-3000:]
    stopped = int(re.search(r"checkpointed step (\d+)", err).group(1))
    assert at_step <= stopped < PPO_STEPS, (at_step, stopped)
    assert (run / "ckpt" / f"step{stopped:06d}" / "manifest.json").is_file()
    assert not (run / "out" / "model").exists() and not (run / "out" / "manifest.json").exists()
    shutil.rmtree(run / "out")  # Snakemake removes a failed job's outputs before the retry
    return stopped


def test_ppo_sigterm_at_a_random_step_then_rerun_equals_uninterrupted(inputs, ppo_straight, tmp_path):
    at_step = RNG.randint(1, PPO_STEPS - 3)
    interrupt_ppo(inputs, tmp_path, at_step)  # asserts it stopped with a checkpoint
    cli(*ppo_args(inputs, tmp_path))
    assert (tmp_path / "out" / "manifest.json").is_file()
    assert (tmp_path / "ckpt" / f"step{PPO_STEPS:06d}").is_dir()  # PPO keeps its last checkpoints
    assert_same_ppo_outputs(ppo_straight, tmp_path / "out")


def test_ppo_truncated_checkpoint_is_skipped_with_a_warning(inputs, ppo_straight, tmp_path):
    at_step = RNG.randint(3, PPO_STEPS - 2)  # >= 3: an older checkpoint (step 2, 4, ...) exists
    stopped = interrupt_ppo(inputs, tmp_path, at_step)
    kept = sorted(p.name for p in (tmp_path / "ckpt").glob("step*"))
    assert len(kept) == 2 and kept[-1] == f"step{stopped:06d}", kept
    policy_pt = tmp_path / "ckpt" / kept[-1] / "policy.pt"
    policy_pt.write_bytes(policy_pt.read_bytes()[:200])  # a save cut short
    r = cli(*ppo_args(inputs, tmp_path))
    assert re.search(rf"skipping invalid checkpoint \S*{kept[-1]}", r.stderr), r.stderr[-3000:]
    assert_same_ppo_outputs(ppo_straight, tmp_path / "out")


# ---- SFT and reward models (Hugging Face Trainer) ------------------------------------------------

SFT_CFG = json.dumps(dict(tiny=TINY, epochs=2, batch_size=4, max_length=24, learning_rate=3e-3, seed=1))
SFT_STEPS = 2 * 48 // 4  # 24; distinct from every dataset size, so the regex sees only the train bar
RM_CFG = json.dumps(dict(epochs=2, batch_size=4, max_length=24, learning_rate=3e-3))
RM_STEPS = 2 * 48 // 4


def sft_args(inputs, run: Path):
    # MiniLM's tokenizer, as the in-process reference: its larger model keeps steps long enough to interrupt
    return ["sft", "--config", SFT_CFG, "--tokenizer", "minilm", "--train", inputs / "sft_train.jsonl",
            "--val", inputs / "sft_val.jsonl",
            "--out", run / "model", "--ckpt-dir", run / "ckpt", "--manifest", run / "manifest.json"]


def rm_args(inputs, run: Path):
    return ["rm-train", "--config", RM_CFG, "--seed", 2, "--prefs-train", inputs / "prefs_train.jsonl",
            "--prefs-val", inputs / "prefs_val.jsonl", "--sft-model", inputs / "policy",
            "--out-dir", run / "out", "--ckpt-dir", run / "ckpt", "--manifest", run / "manifest.json"]


def interrupt_trainer_stage(args, run: Path, outputs, total: int, at_step: int, sig=signal.SIGTERM) -> Path:
    """Interrupt an HF-Trainer stage; check exit code, checkpoint and absent outputs; return the checkpoint."""
    rc, err = interrupted(args, bar_progress(total), at_step, sig)
    assert rc == 128 + sig, err[-3000:]
    stopped = int(re.search(rf"checkpointed step (\d+)/{total}", err).group(1))
    assert at_step <= stopped < total, (at_step, stopped)
    newest = latest_valid_checkpoint(run / "ckpt")
    assert newest is not None and newest.name == f"checkpoint-{stopped}"
    assert not any(p.exists() for p in outputs), [p for p in outputs if p.exists()]
    return newest


def test_sft_sigterm_at_a_random_step_then_rerun_equals_uninterrupted(inputs, tmp_path):
    # The uninterrupted reference runs in this process (same code, one thread; saves an import of TRL).
    straight, run = tmp_path / "straight", tmp_path / "run"
    train_sft(SFTConfig.from_dict(json.loads(SFT_CFG)), "minilm", inputs / "sft_train.jsonl",
              inputs / "sft_val.jsonl", straight / "model")
    at_step = RNG.randint(2, SFT_STEPS - 5)
    ckpt = interrupt_trainer_stage(sft_args(inputs, run), run, [run / "model", run / "manifest.json"],
                                   SFT_STEPS, at_step)
    r = cli(*sft_args(inputs, run))
    assert f"resuming from {ckpt}" in r.stderr
    same_weights(straight / "model" / "model.safetensors", run / "model" / "model.safetensors")
    metrics = json.loads((run / "model" / "sft_metrics.json").read_text())
    assert metrics["resumed_from"] == ckpt.name
    assert not list((run / "ckpt").glob("checkpoint-*"))  # removed once the outputs exist


def test_rm_sigusr1_at_a_random_step_and_a_truncated_checkpoint(inputs, tmp_path):
    """SIGUSR1 (SLURM's early warning) stops rm-train too; then the newest checkpoint is cut short:
    the rerun skips it with a warning, resumes from the older one, and still ends identical."""
    straight, run = tmp_path / "straight", tmp_path / "run"
    train_reward_model(RMConfig.from_dict(json.loads(RM_CFG)), 2, inputs / "prefs_train.jsonl",
                       inputs / "prefs_val.jsonl", inputs / "policy", straight / "out")
    at_step = RNG.randint(4, RM_STEPS - 5)  # late enough for an older periodic checkpoint to exist
    outputs = [run / "out", run / "manifest.json"]
    newest = interrupt_trainer_stage(rm_args(inputs, run), run, outputs, RM_STEPS, at_step, signal.SIGUSR1)
    older = sorted((run / "ckpt").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[0]
    assert older != newest
    check_checkpoint(older)
    optimizer = newest / "optimizer.pt"
    optimizer.write_bytes(optimizer.read_bytes()[: optimizer.stat().st_size // 2])
    r = cli(*rm_args(inputs, run))
    assert re.search(rf"skipping invalid checkpoint \S*{newest.name}: optimizer.pt has", r.stderr), r.stderr[-3000:]
    assert f"resuming from {older}" in r.stderr
    same_weights(straight / "out" / "model" / "model.safetensors", run / "out" / "model" / "model.safetensors")
    a, b = (json.loads((d / "out" / "metrics.json").read_text()) for d in (straight, run))
    assert b["resumed_from"] == older.name
    for key in ("accuracy_gold", "accuracy_noisy", "reward_mean", "reward_std"):
        assert a[key] == b[key], key


# ---- TRL's optimisers (GRPO, RLOO, online DPO: rlhf_pipeline.ppo.trl_optim) ----------------------

def trl_args(inputs, run: Path, optimizer: str):
    cfg = json.loads(PPO_CFG)
    cfg["optimizer"] = optimizer
    cfg["hparams"].update(grpo={"num_generations": 4}, rloo={"num_generations": 4})
    args = ppo_args(inputs, run)
    args[args.index("--config") + 1] = json.dumps(cfg)
    return args


def rows_without_times(path: Path) -> list[dict[str, str]]:
    with open(path) as f:
        return [{k: v for k, v in r.items() if k not in ("time", "trl/step_time")} for r in csv.DictReader(f)]


@pytest.mark.parametrize("optimizer", ["grpo", "online_dpo"])
def test_trl_optimiser_sigterm_at_a_random_step_then_rerun_equals_uninterrupted(inputs, tmp_path, optimizer):
    """A TRL optimiser's run stops at the end of a step (never inside one) with TRL's checkpoint and the project's
    files in it; the rerun resumes there and ends with the uninterrupted run's train log, eval files, trajectories
    and weights."""
    straight, run = tmp_path / "straight", tmp_path / "run"
    cli(*trl_args(inputs, straight, optimizer))
    at_step = RNG.randint(1, PPO_STEPS - 3)
    rc, err = interrupted(trl_args(inputs, run, optimizer), log_rows(run / "out" / "train_log.csv"), at_step)
    assert rc == 143, err[-3000:]
    stopped_global = int(re.search(rf"{optimizer}: got signal 15; checkpointed step (\d+)/", err).group(1))
    updates = 2  # optimizer steps per step: batch 8 in mini-batches of 4, one pass
    assert stopped_global % updates == 0 and at_step <= stopped_global // updates < PPO_STEPS, (at_step, err[-500:])
    ckpt = latest_valid_checkpoint(run / "ckpt")
    assert ckpt.name == f"checkpoint-{stopped_global}"
    saved = json.loads((ckpt / "files" / "run_state.json").read_text())
    assert saved["step"] == stopped_global // updates and len(saved["rows"]) == saved["step"]
    assert not (run / "out" / "model").exists() and not (run / "out" / "manifest.json").exists()
    shutil.rmtree(run / "out")  # Snakemake removes a failed job's outputs before the retry
    r = cli(*trl_args(inputs, run, optimizer))
    assert f"resuming from {ckpt}" in r.stderr
    a, b = straight / "out", run / "out"
    assert len(rows_without_times(a / "train_log.csv")) == PPO_STEPS
    assert rows_without_times(b / "train_log.csv") == rows_without_times(a / "train_log.csv")
    evals = sorted(p.name for p in (a / "eval").iterdir())
    assert evals == ["step000000.jsonl", "step000003.jsonl", "step000006.jsonl", "step000008.jsonl"]
    for name in evals:
        assert (b / "eval" / name).read_text() == (a / "eval" / name).read_text(), name
    from rlhf_pipeline.ppo.trajectories import read_trajectories
    ta, tb = (read_trajectories(d / "trajectories").drop(columns=["run"]) for d in (a, b))
    assert len(ta) == PPO_STEPS * 8 and ta.equals(tb)
    same_weights(a / "model" / "model.safetensors", b / "model" / "model.safetensors")
    assert not list((run / "ckpt").glob("checkpoint-*"))  # removed once the outputs exist
