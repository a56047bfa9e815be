"""Trajectory logs (rlhf_pipeline.ppo.trajectories): exact round trip from the trainer's rollouts to
Parquet, chunks a killed run keeps, a resumed run logging every step once, and the readers."""

import json
import shutil

import pandas as pd
import pytest
import torch
from test_ppo_trainer import EVAL_PROMPTS, PROMPTS, NoveltyReward, policy_dir, small_cfg  # noqa: F401

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.ppo import train_ppo
from rlhf_pipeline.ppo.trajectories import COLUMNS, chunk_files, read_run_info, read_trajectories

torch.set_num_threads(1)


class Keep:
    """A rollout hook that keeps every Rollout it is handed."""

    def __init__(self):
        self.rollouts = []

    def on_resume(self, step):
        self.rollouts = [r for r in self.rollouts if r.step <= step]

    def on_rollout(self, rollout):
        self.rollouts.append(rollout)

    def on_checkpoint(self, step):
        pass


@pytest.fixture(scope="module")
def straight(policy_dir, tmp_path_factory):  # noqa: F811
    """An uninterrupted 4-step run, a chunk per step, with the rollouts the trainer handed to its hooks."""
    out = tmp_path_factory.mktemp("straight")
    keep = Keep()
    train_ppo(small_cfg(trajectory_chunk_steps=1, missing_eos_penalty=-3.0), policy_dir, NoveltyReward(),
              PROMPTS, EVAL_PROMPTS, out / "out", out / "ckpt", hooks=[keep], run_info={"reward": {"kind": "test"}})
    return out / "out", keep.rollouts


def test_rollouts_round_trip_exactly(straight):
    out, rollouts = straight
    df = read_trajectories(out / "trajectories")
    assert [p.name for p in chunk_files(out / "trajectories")] == [f"steps{s:06d}-{s:06d}.parquet" for s in range(1, 5)]
    assert list(df.columns) == [*COLUMNS, "term_first_half", "term_repeat", "shout"]
    assert len(df) == 4 * 8 and list(df["step"]) == [s for s in range(1, 5) for _ in range(8)]
    assert list(df["episode"]) == list(range(32)) and set(df["run"]) == {"out"}
    for r in rollouts:
        rows = df[df["step"] == r.step]
        assert list(rows["prompt"]) == r.prompts and list(rows["response"]) == r.responses
        for col, ours in [("prompt_ids", r.prompt_ids), ("response_ids", r.response_ids), ("logprobs", r.logprobs),
                          ("ref_logprobs", r.ref_logprobs), ("values", r.values), ("kl", r.kl),
                          ("shaped_rewards", r.rewards)]:
            assert [list(x) for x in rows[col]] == ours, col  # float32 in, float32 out: bit for bit
        assert list(rows["score"]) == r.score and list(rows["penalized_score"]) == r.penalized_score
        assert list(rows["term_repeat"]) == r.terms["repeat"] and list(rows["shout"]) == r.extras["shout"]
    # the shaped rewards are -beta * kl per token plus the penalized score at the last token (beta of that step)
    beta = pd.read_csv(out / "train_log.csv").set_index("step")["kl_coef"]
    for _, row in df.iterrows():
        shaped = [-beta[row["step"]] * k for k in row["kl"]]
        shaped[-1] += row["penalized_score"]
        assert list(row["shaped_rewards"]) == pytest.approx(shaped, abs=1e-5)
    no_eos = df[df["penalized_score"] != df["score"]]
    assert (no_eos["penalized_score"] == -3.0).all()  # missing-EOS penalty kept apart from the raw score


def test_run_file_and_standard_readers(straight):
    import datasets

    out, _ = straight
    info = read_run_info(out / "trajectories")
    assert info["run"] == "out" and info["hparams"]["trajectory_chunk_steps"] == 1
    assert info["reward"] == {"kind": "test"} and set(info["columns"]) == set(COLUMNS)
    assert len(pd.read_parquet(out / "trajectories")) == 32  # _run.json is skipped by the readers
    ds = datasets.load_dataset("parquet", data_files=str(out / "trajectories" / "*.parquet"), split="train")
    assert ds.num_rows == 32 and "shaped_rewards" in ds.column_names


def test_killed_run_keeps_complete_chunks_and_resume_logs_each_step_once(straight, policy_dir, tmp_path):  # noqa: F811
    cfg = small_cfg(trajectory_chunk_steps=1, missing_eos_penalty=-3.0, checkpoint_interval=2)

    class CrashAtStep4(NoveltyReward):
        def score_batch(self, prompts, responses, training):
            if training and self.calls == 5:  # eval 0, steps 1-2, eval 2, step 3, then step 4
                raise RuntimeError("simulated crash")
            return super().score_batch(prompts, responses, training)

    run = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_ppo(cfg, policy_dir, CrashAtStep4(), PROMPTS, EVAL_PROMPTS, run / "out", run / "ckpt",
                  run_info={"reward": {"kind": "test"}})
    killed = read_trajectories(run / "out" / "trajectories")
    assert sorted(set(killed["step"])) == [1, 2, 3]  # step 3 came after the last checkpoint (2); kept on disk
    shutil.rmtree(run / "out")  # what Snakemake does to an interrupted job's outputs before rerunning it
    train_ppo(cfg, policy_dir, NoveltyReward(), PROMPTS, EVAL_PROMPTS, run / "out", run / "ckpt",
              run_info={"reward": {"kind": "test"}})
    resumed = read_trajectories(run / "out" / "trajectories")
    pd.testing.assert_frame_equal(resumed, read_trajectories(straight[0] / "trajectories"))
    assert killed.equals(resumed[resumed["step"] <= 3].reset_index(drop=True))


def test_chunks_close_every_n_steps_and_at_checkpoints(policy_dir, tmp_path):  # noqa: F811
    cfg = small_cfg(total_episodes=5 * 8, trajectory_chunk_steps=2, checkpoint_interval=3, eval_interval=10)
    train_ppo(cfg, policy_dir, NoveltyReward(), PROMPTS, EVAL_PROMPTS, tmp_path / "out", tmp_path / "ckpt")
    names = [p.name for p in chunk_files(tmp_path / "out" / "trajectories")]
    assert names == ["steps000001-000002.parquet", "steps000003-000003.parquet", "steps000004-000005.parquet"]
    assert list(read_trajectories(tmp_path / "out" / "trajectories")["step"].unique()) == [1, 2, 3, 4, 5]


def test_logging_off_and_bad_directories(policy_dir, tmp_path):  # noqa: F811
    cfg = small_cfg(total_episodes=8, trajectories=False)
    train_ppo(cfg, policy_dir, NoveltyReward(), PROMPTS, EVAL_PROMPTS, tmp_path / "out", tmp_path / "ckpt")
    traj = tmp_path / "out" / "trajectories"
    assert json.loads((traj / "_run.json").read_text())["logged"] is False and not chunk_files(traj)
    with pytest.raises(PipelineError, match="no trajectory chunks"):
        read_trajectories(traj)
    with pytest.raises(PipelineError, match=r"not a trajectory directory \(no _run.json\)"):
        read_trajectories(tmp_path)
