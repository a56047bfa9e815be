"""Gold eval (rlhf_pipeline.evaluation.gold_eval) of (partial) PPO eval directories: per-step means
and their counts, a truncated newest file, and refusal of non-finite inputs and gold scores."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from evaluation_helpers import word_count, write_eval_dir

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.evaluation import GOLD_EVAL_COLUMNS, summarize_steps
from rlhf_pipeline.evaluation.gold_eval import gold_eval


def test_gold_eval_partial_dir(tmp_path):
    eval_dir = write_eval_dir(tmp_path / "eval")
    before = {p.name: p.read_bytes() for p in eval_dir.iterdir()}
    calls = []

    def scorer(prompts, responses):
        calls.append(len(responses))
        return word_count(prompts, responses)

    out, scored = tmp_path / "gold_eval.csv", tmp_path / "scored"
    with pytest.warns(UserWarning, match=r"step000020.jsonl:3: skipping truncated last line"):
        df = gold_eval(eval_dir, scorer, out_csv=out, scored_dir=scored)
    assert calls == [7]  # one batched pass over all complete rows
    back = pd.read_csv(out)
    assert list(back.columns) == GOLD_EVAL_COLUMNS
    assert back["step"].tolist() == [0, 10, 20]
    assert back["n"].tolist() == [2, 3, 2]
    np.testing.assert_allclose(back["gold_reward"], [3.0, 3.0, 4.0])
    np.testing.assert_allclose(back["gold_reward_se"], [1.0, 2 / math.sqrt(3), 2.0])
    np.testing.assert_allclose(back["kl"], [0.0, 2.0, 4.0])
    np.testing.assert_allclose(back["kl_se"], [0.0, 1 / math.sqrt(3), 0.0])
    np.testing.assert_allclose(back["sqrt_kl"], [0.0, math.sqrt(2), 2.0])
    np.testing.assert_allclose(back["proxy_reward"], [2.0, 2.0, 5.0])
    np.testing.assert_allclose(back["ensemble_variance"], [0.0, 0.5, 0.5])
    np.testing.assert_allclose(back["response_length"], [3.0, 3.0, 4.0])
    pd.testing.assert_frame_equal(df, back, check_dtype=False)
    # inputs untouched; per-sample gold scores in copies
    assert {p.name: p.read_bytes() for p in eval_dir.iterdir()} == before
    scored_rows = [json.loads(x) for x in (scored / "step000010.jsonl").read_text().splitlines()]
    assert [r["gold_reward"] for r in scored_rows] == [3.0, 5.0, 1.0]
    assert scored_rows[0]["proxy_scores"] == [2.0, 2.0]
    assert sorted(p.name for p in scored.iterdir()) == sorted(before)


def test_gold_eval_bad_inputs(tmp_path):
    with pytest.raises(PipelineError, match="nowhere.*not found"):
        gold_eval(tmp_path / "nowhere", word_count)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PipelineError, match="empty.*no step"):
        gold_eval(tmp_path / "empty", word_count)
    # a truncated line in an older file is corruption, not a stopped run
    eval_dir = write_eval_dir(tmp_path / "eval", truncate_last=False)
    older = eval_dir / "step000010.jsonl"
    older.write_text(older.read_text()[:-10])
    with pytest.raises(PipelineError, match=r"step000010.jsonl:3: not valid JSON"):
        gold_eval(eval_dir, word_count, out_csv=tmp_path / "g.csv")
    assert not (tmp_path / "g.csv").exists()


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [("kl", float("nan"), "NaN"), ("proxy_reward", None, "null"), ("ensemble_variance", float("-inf"), "-Infinity"),
     ("response_length", "3", '"3"'), ("proxy_scores", [2.0, float("inf")], "Infinity")],
)
def test_gold_eval_refuses_non_finite_inputs(tmp_path, field, value, shown):
    eval_dir = write_eval_dir(tmp_path / "eval", truncate_last=False)
    older = eval_dir / "step000010.jsonl"
    rows = [json.loads(x) for x in older.read_text().splitlines()]
    rows[1][field] = value
    rows[2][field] = value
    # json.dumps writes NaN / Infinity (not JSON) by default: what the old PPO eval writer produced.
    older.write_text(json.dumps(rows[0]) + "\n\n" + "".join(json.dumps(r) + "\n" for r in rows[1:]))
    calls = []
    with pytest.raises(PipelineError) as exc:
        gold_eval(eval_dir, lambda p, r: calls.append(1) or word_count(p, r),
                  out_csv=tmp_path / "g.csv", scored_dir=tmp_path / "scored")
    # the blank line 2 is not a row: the first bad row is line 3
    assert str(exc.value) == (f"{older}:3: {field} is {shown}, not a finite number (2 such value(s) in this file); "
                              "gold-eval does not average over non-finite values")
    assert calls == []  # refused before the gold RM runs
    assert not (tmp_path / "g.csv").exists() and not (tmp_path / "scored").exists()


def test_gold_eval_refuses_non_finite_values_in_the_newest_file_too(tmp_path):
    eval_dir = write_eval_dir(tmp_path / "eval")  # step 20's last line is truncated (skipped with a warning)
    newest = eval_dir / "step000020.jsonl"
    newest.write_text(newest.read_text().replace('"kl": 4.0', '"kl": NaN', 1))
    with pytest.warns(UserWarning, match="truncated"), \
            pytest.raises(PipelineError, match=r"step000020.jsonl:1: kl is NaN, not a finite number \(1 such"):
        gold_eval(eval_dir, word_count)


def test_gold_eval_refuses_non_finite_gold_scores(tmp_path):
    eval_dir = write_eval_dir(tmp_path / "eval", truncate_last=False)

    def broken_gold(prompts, responses):  # 8 samples: steps 0 (2), 10 (3), 20 (3)
        scores = word_count(prompts, responses)
        scores[3], scores[7] = np.nan, -np.inf  # step 10 line 2, step 20 line 3
        return scores

    out, scored = tmp_path / "g.csv", tmp_path / "scored"
    with pytest.raises(PipelineError) as exc:
        gold_eval(eval_dir, broken_gold, out_csv=out, scored_dir=scored)
    assert str(exc.value) == (f"{eval_dir / 'step000010.jsonl'}:2: the gold scorer returned gold_reward NaN for this "
                              "sample, not a finite number (2 of 8 gold scores are non-finite); gold-eval does not "
                              "average over non-finite values")
    assert not out.exists() and not scored.exists()


def test_summarize_steps_n_is_the_count_behind_every_mean():
    samples = pd.DataFrame({"step": [0, 0, 0, 5], "kl": [0.0, 1.0, 2.0, 4.0], "proxy_reward": [1.0, 2.0, 6.0, -1.0],
                            "gold_reward": [3.0, 0.0, 0.0, 2.0], "response_length": [1, 2, 3, 4],
                            "ensemble_variance": [0.0, 0.0, 0.3, 0.1]})
    df = summarize_steps(samples)
    assert df["n"].tolist() == [3, 1]
    np.testing.assert_allclose(df["kl"], [1.0, 4.0])
    np.testing.assert_allclose(df["proxy_reward"], [3.0, -1.0])
    np.testing.assert_allclose(df["gold_reward"], [1.0, 2.0])
    assert df["gold_reward_se"].iloc[0] == pytest.approx(1.0)  # sample sd sqrt(3) over sqrt(3)
    np.testing.assert_allclose(df["sqrt_kl"], [1.0, 2.0])
    np.testing.assert_allclose(df["response_length"], [2.0, 4.0])
    np.testing.assert_allclose(df["ensemble_variance"], [0.1, 0.1])
    # a NaN would be skipped by pandas' mean while n still counted its row: refused instead
    samples.loc[1, "gold_reward"] = np.nan
    samples.loc[3, "kl"] = np.inf
    with pytest.raises(PipelineError,
                       match=r"2 non-finite value\(s\) in \['kl', 'gold_reward'\] at step\(s\) \[0, 5\]"):
        summarize_steps(samples)
