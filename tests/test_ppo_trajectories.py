"""Trajectory logs (rlhf_pipeline.ppo.trajectories): exact round trip from the trainer's rollouts to
Parquet, chunks a killed run keeps, a resumed run logging every step once, and the readers; logs with holes
or damage are refused: a missing chunk, overlapping or wrong steps, non-finite values, truncated or bit-flipped
chunks each end in one PipelineError naming the file, in read_trajectories and in the ad-data and ad-rl stages;
chunks of older logs (no checksums) are read with a warning. Real pyarrow, real files."""

import hashlib
import json
import math
import shutil
import warnings

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
from test_ppo_trainer import EVAL_PROMPTS, PROMPTS, NoveltyReward, policy_dir, small_cfg  # noqa: F401

from rlhf_pipeline.ad.data import load_history
from rlhf_pipeline.cli import main
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.ppo import train_ppo
from rlhf_pipeline.ppo.hooks import Rollout
from rlhf_pipeline.ppo.trajectories import COLUMNS, TrajectoryLog, chunk_files, read_run_info, read_trajectories

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


# ---- holes and damage ----

def rollout(step, batch=2):
    """Step ``step``'s rollouts: ``batch`` episodes of 1-3 response tokens."""
    n = [1 + (step + i) % 3 for i in range(batch)]

    def per_token(shift):
        return [[0.01 * step - 0.1 * j + shift for j in range(k)] for k in n]

    return Rollout(step=step, prompts=[f"p{step}.{i}" for i in range(batch)],
                   prompt_ids=[[1, 2 + i] for i in range(batch)], responses=[f"r{step}.{i}" for i in range(batch)],
                   response_ids=[list(range(k)) for k in n], logprobs=per_token(-1), ref_logprobs=per_token(-1.5),
                   values=per_token(0.5), score=[0.1 * step + i for i in range(batch)],
                   penalized_score=[0.1 * step + i for i in range(batch)], kl=per_token(0.5), rewards=per_token(0))


def write_log(traj_dir, steps=30, chunk=10, poison=None):
    """A trajectory log of ``steps`` steps in chunks of ``chunk`` (batch 2). ``poison``: (step, column, value):
    that step's second episode gets ``value`` as its score (a scalar column) or its first token's value."""
    log = TrajectoryLog(traj_dir, {"run": "r", "hparams": {"batch_size": 2}}, chunk, 2)
    log.on_resume(0)
    for s in range(1, steps + 1):
        r = rollout(s)
        if poison and poison[0] == s:
            col = getattr(r, poison[1])
            if isinstance(col[1], list):
                col[1][0] = poison[2]
            else:
                col[1] = poison[2]
        log.on_rollout(r)
    log.flush()
    return traj_dir


def rewrite(chunk, table):
    """Replace a chunk as a writer with the checksums but a bug would: Parquet with page checksums and a
    matching ``_<name>.sha256`` in sha256sum format (the layout the module docstring states)."""
    pq.write_table(table, chunk, write_page_checksum=True)
    digest = hashlib.sha256(chunk.read_bytes()).hexdigest()
    (chunk.parent / f"_{chunk.name}.sha256").write_text(f"{digest}  {chunk.name}\n")


def refused(traj_dir, path, match):
    """read_trajectories and load_history refuse ``traj_dir`` with one line naming ``path``."""
    for read in (lambda: read_trajectories(traj_dir), lambda: load_history("h", traj_dir)):
        with pytest.raises(PipelineError, match=match) as e:
            read()
        assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)


def test_the_written_layout_round_trips_and_the_sidecars_are_sha256sum_lines(tmp_path):
    d = write_log(tmp_path / "t", steps=25)
    names = sorted(p.name for p in d.iterdir())
    assert names == ["_run.json", "_steps000001-000010.parquet.sha256", "_steps000011-000020.parquet.sha256",
                     "_steps000021-000025.parquet.sha256", "steps000001-000010.parquet", "steps000011-000020.parquet",
                     "steps000021-000025.parquet"]
    for p in chunk_files(d):
        assert (d / f"_{p.name}.sha256").read_text() == f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n"
    df = read_trajectories(d)
    assert list(df["step"]) == [s for s in range(1, 26) for _ in range(2)]
    assert len(pd.read_parquet(d)) == 50  # the .sha256 files are kept out of the standard readers, like _run.json


def test_a_missing_chunk_is_refused_naming_the_gap(tmp_path):
    d = write_log(tmp_path / "t")
    (d / "steps000011-000020.parquet").unlink()
    refused(d, d / "steps000011-000020.parquet", r"steps000011-000020.parquet: missing; the chunks before it end at "
            r"step 10 and steps000021-000030.parquet starts at step 21 \(a gap at 11-20\)")
    d = write_log(tmp_path / "first")
    (d / "steps000001-000010.parquet").unlink()
    refused(d, d / "steps000001-000010.parquet", r"missing; the first chunk, steps000011-000020.parquet, starts at "
            r"step 11 \(a gap at 1-10\)")


def test_overlapping_duplicate_and_absent_steps_are_refused(tmp_path):
    d = write_log(tmp_path / "t")
    chunk = d / "steps000011-000020.parquet"
    table = pq.read_table(chunk)
    rewrite(chunk, table.set_column(1, "step", pa.array([5] * 2 + list(table["step"].to_pylist()[2:]), pa.int32())))
    refused(d, chunk, r"rows of step\(s\) 5, outside the steps its name covers \(11-20\)")
    rewrite(chunk, table.filter(pc.not_equal(table["step"], 15)))
    refused(d, chunk, r"no rows of step\(s\) 15, which its name covers \(11-20\)")
    rewrite(chunk, table)
    assert len(read_trajectories(d)) == 60
    rewrite(d / "steps000015-000025.parquet", table)
    refused(d, d / "steps000015-000025.parquet", r"overlaps steps000011-000020.parquet \(steps 15-20 in both\)")


@pytest.mark.parametrize("column, value", [("score", math.nan), ("penalized_score", -math.inf),
                                           ("values", math.nan), ("kl", math.inf), ("logprobs", math.nan),
                                           ("rewards", -math.inf)])
def test_a_non_finite_value_in_any_numeric_column_is_refused(tmp_path, column, value):
    d = write_log(tmp_path / "t", poison=(14, column, value))
    name = "shaped_rewards" if column == "rewards" else column
    refused(d, d / "steps000011-000020.parquet",
            rf"column '{name}' has 1 non-finite value\(s\) \(NaN or inf\), the first at step 14")


@pytest.mark.parametrize("cut", [0, 3, 4, 100, 0.5, -9, -5, -4, -1])
def test_a_truncated_chunk_is_refused(tmp_path, cut):
    d = write_log(tmp_path / "t")
    chunk = d / "steps000011-000020.parquet"
    data = chunk.read_bytes()
    chunk.write_bytes(data[:int(len(data) * cut) if isinstance(cut, float) else cut])
    refused(d, chunk, r"truncated or not Parquet \(\d+ bytes.*\(the file is damaged; rerun the run from scratch")
    (d / f"_{chunk.name}.sha256").unlink()  # without its checksum file too: still refused, never a raw traceback
    refused(d, chunk, "truncated or not Parquet")


def test_a_flipped_data_page_byte_names_the_column(tmp_path):
    d = write_log(tmp_path / "t")
    chunk = d / "steps000011-000020.parquet"
    meta = pq.ParquetFile(chunk).metadata.row_group(0)
    col = next(meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema.startswith("values."))
    start = col.dictionary_page_offset or col.data_page_offset
    data = bytearray(chunk.read_bytes())
    data[start + col.total_compressed_size - 1] ^= 0x10  # the last byte of the column's last page: page data
    chunk.write_bytes(bytes(data))
    refused(d, chunk, r"checksum mismatch in column 'values' \(the file is damaged")
    (d / f"_{chunk.name}.sha256").unlink()  # the page checksum alone catches it too
    refused(d, chunk, r"checksum mismatch in column 'values'")


def test_every_bit_flip_is_refused_or_reads_back_unchanged(tmp_path):
    d = write_log(tmp_path / "t", steps=4, chunk=2)
    chunk = d / "steps000003-000004.parquet"
    original = read_trajectories(d)
    for target in (chunk, d / f"_{chunk.name}.sha256"):  # ~400 probes over the whole chunk, every byte of its digest
        data = target.read_bytes()
        same = []
        for pos in range(0, len(data), 1 if target != chunk else max(1, len(data) // 400)):
            flipped = bytearray(data)
            flipped[pos] ^= 1 << (pos % 8)
            target.write_bytes(bytes(flipped))
            try:
                got = read_trajectories(d)
            except PipelineError as e:
                assert str(e).startswith((f"{chunk}: ", f"{target}: ")) and "\n" not in str(e), (pos, str(e))
            else:
                pd.testing.assert_frame_equal(got, original, obj=f"{target.name} with byte {pos} flipped")
                same.append(pos)
        target.write_bytes(data)
        assert target != chunk or not same, same  # the SHA-256 covers every byte of the chunk: no flip goes unseen
    pd.testing.assert_frame_equal(read_trajectories(d), original)


def test_older_chunks_without_checksums_are_read_with_a_warning_and_still_checked(tmp_path):
    d = write_log(tmp_path / "t")
    for p in chunk_files(d)[:2]:  # as the code before checksums wrote them: format 1, no page checksums, no .sha256
        table = pq.read_table(p)
        table = table.replace_schema_metadata({b"rlhf_pipeline.run": json.dumps(
            {"run": "r", "format_version": 1}).encode()})
        pq.write_table(table, p, compression="zstd")
        (d / f"_{p.name}.sha256").unlink()
    with pytest.warns(UserWarning, match=r"2 of 3 chunks \(from steps000001-000010.parquet\) were written before "
                      r"chunks carried checksums"):
        df = read_trajectories(d)
    assert len(df) == 60
    old = d / "steps000011-000020.parquet"
    table = pq.read_table(old)
    pq.write_table(table.filter(pc.not_equal(table["step"], 12)), old)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refused(d, old, r"no rows of step\(s\) 12")
    d = write_log(tmp_path / "t2")
    (d / "_steps000021-000030.parquet.sha256").unlink()  # a chunk of today's format without its checksum file
    refused(d, d / "steps000021-000030.parquet", r"its checksum file _steps000021-000030.parquet.sha256 is missing")


def test_on_resume_drops_later_chunks_with_their_checksums_and_orphaned_checksums(tmp_path):
    d = write_log(tmp_path / "t", steps=6, chunk=2)
    (d / "_steps000007-000008.parquet.sha256").write_text("0" * 64 + "  steps000007-000008.parquet\n")
    (d / "_steps000003-000004.parquet.sha256").rename(d / "kept")
    (d / "steps000003-000004.parquet").unlink()  # as if killed between the checksum and the chunk's rename
    (d / "kept").rename(d / "_steps000003-000004.parquet.sha256")
    TrajectoryLog(d, {"run": "r", "hparams": {"batch_size": 2}}, 2, 2).on_resume(4)
    assert sorted(p.name for p in d.iterdir()) == ["_run.json", "_steps000001-000002.parquet.sha256",
                                                    "steps000001-000002.parquet"]


def test_ad_data_and_ad_rl_refuse_a_damaged_history_in_one_line(tmp_path, capsys):
    good = write_log(tmp_path / "good" / "trajectories")
    gap = write_log(tmp_path / "gap" / "trajectories")
    (gap / "steps000011-000020.parquet").unlink()
    nan = write_log(tmp_path / "nan" / "trajectories", poison=(3, "score", math.nan))
    for history, what in ((gap, f"{gap / 'steps000011-000020.parquet'}: missing;"),
                          (nan, f"{nan / 'steps000001-000010.parquet'}: column 'score' has 1 non-finite")):
        rc = main(["ad-data", "--histories", f"a={good}", f"b={history}", "--tokenizer", "minilm",
                   "--out-dir", str(tmp_path / "out")])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and "\n" not in err and err.startswith(f"error: {what}"), err
        rc = main(["ad-rl", "--histories", f"a={good}", "--heldout", f"b={history}", "--tokenizer", "minilm",
                   "--out-dir", str(tmp_path / "rl")])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and "\n" not in err and err.startswith(f"error: {what}"), err
    assert not (tmp_path / "out").exists() and not (tmp_path / "rl").exists()
    rc = main(["ad-data", "--histories", f"a={good}", "--tokenizer", "minilm", "--out-dir", str(tmp_path / "ok"),
               "--config", json.dumps({"format": {"context_length": 64}})])  # the same log intact, no held-out one
    assert rc == 0 and (tmp_path / "ok" / "train.jsonl").read_text().count("Reward: ") == 60, capsys.readouterr().err
