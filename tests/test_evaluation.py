"""Offline evaluation: best-of-n estimator and KL, gold eval of (partial) PPO eval dirs, plots."""

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.evaluation import (
    BON_COLUMNS,
    GOLD_EVAL_COLUMNS,
    BestOfNConfig,
    best_of_n,
    bon_expected,
    bon_weights,
    kl_bon,
    plot_gold_vs_kl,
    plot_overoptimization,
    summarize_steps,
)
from rlhf_pipeline.evaluation.gold_eval import gold_eval


def word_count(prompts, responses):
    """A small deterministic gold scorer: number of words in the response."""
    return np.array([len(r.split()) for r in responses], dtype=float)


# ---------------------------------------------------------------- best-of-n estimator


PROXY = np.array([0.1, 0.4, 0.2, 0.3])
GOLD = np.array([1.0, 2.0, 3.0, 4.0])


def test_bon_expected_hand_values():
    # n=1: plain mean of the targets.
    assert bon_expected(PROXY, GOLD, 1) == pytest.approx(2.5)
    # n=N: the target of the proxy argmax (0.4 -> 2).
    assert bon_expected(PROXY, GOLD, 4) == pytest.approx(2.0)
    # n=2: the 6 pairs' proxy-argmax golds: {.1,.4}->2 {.1,.2}->3 {.1,.3}->4 {.4,.2}->2 {.4,.3}->2
    # {.2,.3}->4: 17/6.  Weights C(i-1,1)/C(4,2) = [0,1,2,3]/6 over ascending proxy give the same.
    assert bon_expected(PROXY, GOLD, 2) == pytest.approx(17 / 6)
    # n=3: weights [0,0,1,3]/4 over golds sorted by proxy [1,3,4,2]: (4 + 6)/4.
    assert bon_expected(PROXY, GOLD, 3) == pytest.approx(2.5)
    # proxy as its own target: the expected best-of-2 proxy (0.2 + 2*0.3 + 3*0.4)/6.
    assert bon_expected(PROXY, PROXY, 2) == pytest.approx(2.0 / 6)


def test_bon_weights():
    np.testing.assert_allclose(bon_weights(4, 2), [0, 1 / 6, 2 / 6, 3 / 6])
    np.testing.assert_allclose(bon_weights(5, 1), [0.2] * 5)
    for N, n in [(1, 1), (7, 3), (200, 50)]:
        assert bon_weights(N, n).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n=5, N=4"):
        bon_weights(4, 5)


def test_bon_ties_share_weight_and_ignore_order():
    # proxy ties at the top: pairs {a,b} tie -> (3+5)/2, {a,c} -> 3, {b,c} -> 5; mean 4.
    proxy, gold = np.array([1.0, 1.0, 0.0]), np.array([3.0, 5.0, 0.0])
    assert bon_expected(proxy, gold, 2) == pytest.approx(4.0)
    assert bon_expected(proxy[::-1], gold[::-1], 2) == pytest.approx(4.0)
    # n=N with a tied maximum: the mean of the tied targets, not whichever came first.
    assert bon_expected(proxy, gold, 3) == pytest.approx(4.0)


def _brute_force(proxy, target, n):
    """Average over all n-subsets of the target at the proxy argmax (ties: mean of the tied)."""
    vals = []
    for subset in itertools.combinations(range(len(proxy)), n):
        top = max(proxy[i] for i in subset)
        vals.append(np.mean([target[i] for i in subset if proxy[i] == top]))
    return float(np.mean(vals))


@pytest.mark.parametrize("ties", [False, True])
def test_bon_matches_brute_force_over_subsets(ties):
    rng = np.random.default_rng(0)
    for _ in range(5):
        N = 8
        proxy = rng.integers(0, 4, N).astype(float) if ties else rng.normal(size=N)
        gold = rng.normal(size=N)
        for n in range(1, N + 1):
            assert bon_expected(proxy, gold, n) == pytest.approx(_brute_force(proxy, gold, n))


def test_kl_bon():
    assert kl_bon(1) == 0.0
    assert kl_bon(4) == pytest.approx(math.log(4) - 0.75)
    assert kl_bon(2) == pytest.approx(0.19314718)
    with pytest.raises(ValueError):
        kl_bon(0)


# ---------------------------------------------------------------- best-of-n stage


def _write_samples(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _bon_rows():
    # Two prompts, N=4 each, K=2 members. Member means: p1 [0.1, 0.4, 0.2, 0.3], p2 [1, 2, 3, 4].
    rows = []
    for p, g in zip(PROXY, GOLD):
        scores = [p - 0.05, p + 0.05]
        rows.append({"prompt": "p1", "response": "r", "proxy_scores": scores, "gold_reward": g})
    for p, g in zip([1.0, 2.0, 3.0, 4.0], [0.0, 10.0, 20.0, -30.0]):
        rows.append({"prompt": "p2", "response": "r", "proxy_scores": [p, p], "gold_reward": g})
    return rows


def test_best_of_n_stage_mean_objective(tmp_path):
    samples = tmp_path / "samples.jsonl"
    _write_samples(samples, _bon_rows())
    out = tmp_path / "bon" / "bon.csv"
    df = best_of_n(samples, "mean", 0.0, [4, 1, 2], out, standardize=False)
    back = pd.read_csv(out)
    assert list(back.columns) == BON_COLUMNS
    assert back["n"].tolist() == [1, 2, 4]
    assert back["n_prompts"].tolist() == [2, 2, 2]
    np.testing.assert_allclose(back["kl"], [0.0, math.log(2) - 0.5, math.log(4) - 0.75])
    # gold per prompt: n=1 -> 2.5 and 0; n=2 -> 17/6 and (10 + 2*20 - 3*30)/6 = -40/6; n=4 -> 2, -30
    np.testing.assert_allclose(back["gold_reward"], [1.25, (17 / 6 - 40 / 6) / 2, -14.0])
    # proxy per prompt: n=1 -> 0.25, 2.5; n=4 -> 0.4, 4
    np.testing.assert_allclose(back["proxy_reward"].iloc[[0, 2]], [1.375, 2.2])
    # SE over 2 prompts = |a - b| / 2
    assert back["gold_reward_se"].iloc[2] == pytest.approx(16.0)
    pd.testing.assert_frame_equal(df, back, check_dtype=False)


def test_best_of_n_stage_uwo_standardized(tmp_path):
    # One prompt; member 2 = 10 * member 1 + 100, so after standardising both are the same z-score
    # and the variance across members is 0: UWO = mean = z. Without standardising, member 2 wins.
    raw = [1.0, 2.0, 3.0, 4.0]
    rows = [
        {"prompt": "p", "response": "r", "proxy_scores": [x, 10 * x + 100], "gold_reward": g}
        for x, g in zip(raw, [4.0, 3.0, 2.0, 1.0])
    ]
    samples = tmp_path / "s.jsonl"
    _write_samples(samples, rows)
    df = best_of_n(samples, "uwo", 0.5, [1, 4], None, standardize=True)
    z_max = (4.0 - 2.5) / np.std(raw)
    np.testing.assert_allclose(df["proxy_reward"], [0.0, z_max], atol=1e-12)
    np.testing.assert_allclose(df["gold_reward"], [2.5, 1.0])
    assert df["gold_reward_se"].isna().all()  # one prompt: no standard error
    # Unstandardised UWO: members (x, 10x+100) differ by 9x+100, population var = ((9x+100)/2)^2;
    # for x=4: mean 72 - 0.5 * 68^2 = -2240, and x=1 has the highest UWO (55.5 - 0.5*54.5^2).
    df = best_of_n(samples, "uwo", 0.5, [4], None, standardize=False)
    assert df["gold_reward"].iloc[0] == pytest.approx(4.0)
    assert df["proxy_reward"].iloc[0] == pytest.approx(55.5 - 0.5 * 54.5**2)


def test_best_of_n_rejects_n_above_N(tmp_path):
    samples = tmp_path / "samples.jsonl"
    _write_samples(samples, _bon_rows())
    with pytest.raises(PipelineError, match=r"n=8 exceeds N=4"):
        best_of_n(samples, "mean", 0.0, [1, 8], tmp_path / "bon.csv")
    assert not (tmp_path / "bon.csv").exists()
    rows = _bon_rows()
    rows[3]["proxy_scores"] = [1.0]
    _write_samples(samples, rows)
    with pytest.raises(PipelineError, match="row 4: proxy_scores"):
        best_of_n(samples, "mean", 0.0, [1], None)


def test_bon_config_from_dict():
    assert BestOfNConfig.from_dict({"ns": [1, 2]}).ns == [1, 2]
    assert BestOfNConfig.from_dict(None).standardize is True
    with pytest.raises(PipelineError, match=r"unknown key\(s\) \['n'\].*'ns'"):
        BestOfNConfig.from_dict({"n": [1]})
    with pytest.raises(PipelineError, match="bon.ns"):
        BestOfNConfig.from_dict({"ns": [0, 2]})


# ---------------------------------------------------------------- gold eval


def _eval_row(step, response, kl, proxy):
    return {
        "step": step,
        "prompt": "Tell me",
        "response": response,
        "proxy_scores": [proxy, proxy],
        "proxy_reward": proxy,
        "ensemble_variance": 0.0 if step == 0 else 0.5,
        "kl": kl,
        "response_length": len(response.split()),
    }


def _write_eval_dir(d, truncate_last=True):
    d.mkdir(parents=True)
    steps = {
        0: [("a b", 0.0, 1.0), ("a b c d", 0.0, 3.0)],
        10: [("a b c", 1.0, 2.0), ("a b c d e", 3.0, 4.0), ("a", 2.0, 0.0)],
        20: [("a b c d e f", 4.0, 5.0), ("a b", 4.0, 5.0), ("x y z", 9.0, 9.0)],
    }
    for step, rows in steps.items():
        text = "".join(json.dumps(_eval_row(step, *r)) + "\n" for r in rows)
        if step == 20 and truncate_last:
            text = text[: text.rindex("{") + 25]  # the run stopped mid-write of the last row
        (d / f"step{step:06d}.jsonl").write_text(text)
    return d


def test_gold_eval_partial_dir(tmp_path):
    eval_dir = _write_eval_dir(tmp_path / "eval")
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
    eval_dir = _write_eval_dir(tmp_path / "eval", truncate_last=False)
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
    eval_dir = _write_eval_dir(tmp_path / "eval", truncate_last=False)
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
    eval_dir = _write_eval_dir(tmp_path / "eval")  # step 20's last line is truncated (skipped with a warning)
    newest = eval_dir / "step000020.jsonl"
    newest.write_text(newest.read_text().replace('"kl": 4.0', '"kl": NaN', 1))
    with pytest.warns(UserWarning, match="truncated"), \
            pytest.raises(PipelineError, match=r"step000020.jsonl:1: kl is NaN, not a finite number \(1 such"):
        gold_eval(eval_dir, word_count)


def test_gold_eval_refuses_non_finite_gold_scores(tmp_path):
    eval_dir = _write_eval_dir(tmp_path / "eval", truncate_last=False)

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


# ---------------------------------------------------------------- plots


def _run_table(alpha, beta, steps=8):
    d = np.linspace(0, 3, steps)
    return pd.DataFrame(
        {
            "step": np.arange(steps) * 100,
            "sqrt_kl": d,
            "kl": d**2,
            "gold_reward": d * (alpha - beta * np.log(np.maximum(d, 1e-9))),
            "gold_reward_se": 0.1,
            "proxy_reward": alpha * d,
            "proxy_reward_se": 0.1,
        }
    )


def test_plots(tmp_path):
    eval_dir = _write_eval_dir(tmp_path / "eval", truncate_last=False)
    run = gold_eval(eval_dir, word_count)
    out = tmp_path / "plots" / "gold_vs_kl.png"
    plot_gold_vs_kl(run, out, "run mean")
    assert out.stat().st_size > 10_000

    samples = tmp_path / "samples.jsonl"
    _write_samples(samples, _bon_rows())
    bon = best_of_n(samples, "mean", 0.0, [1, 2, 3, 4], None, standardize=False)
    runs = {"mean": _run_table(1.0, 0.8), "uwo": _run_table(0.8, 0.2), "wco": run}
    over = tmp_path / "plots" / "overoptimization.png"
    plot_overoptimization(runs, {"mean": bon}, over)
    assert over.stat().st_size > 30_000
    assert not list((tmp_path / "plots").glob(".*tmp"))
    with pytest.raises(PipelineError, match="nothing|no PPO runs"):
        plot_overoptimization({}, {}, tmp_path / "x.png")
