"""Algorithm distillation's in-context evaluation (rlhf_pipeline.ad.evaluate): the template helpers,
the in-context loop's bookkeeping, slopes."""

import pytest

from rlhf_pipeline.ad.config import ContextFormat
from rlhf_pipeline.ad.evaluate import cut_completion, parse_reward, play, render_until, slope_se, stop_word


def test_template_helpers():
    t = ContextFormat().template
    assert render_until(t, {"prompt": "hi", "step": 1}, "response") == "Prompt: hi\nCompletion: "
    assert render_until(t, {"prompt": "hi", "response": "yo", "step": 1}, "reward") == \
        "Prompt: hi\nCompletion: yo\nReward: "
    assert stop_word(t) == "Reward"
    assert cut_completion("cats are nice reward : 0. 9", "Reward") == "cats are nice"
    assert cut_completion("rewarding words", "Reward") == "rewarding words"
    assert parse_reward(" 0. 87 prompt") == pytest.approx(0.87) and parse_reward("- 1. 5") == pytest.approx(-1.5)
    assert parse_reward("none") != parse_reward("none")  # NaN


def test_in_context_loop_bookkeeping_with_a_deterministic_stand_in():
    fmt = ContextFormat()
    seen = []

    def complete(history, prompt, seed):  # the completion says how many episodes it was shown
        seen.append(list(history))
        return f"saw {len(history)}"

    def score(prompts, completions):
        return [float(c.split()[1]) for c in completions]

    rows = play(complete, score, ["a", "b", "c"], fmt, "history", seed=0)
    assert [r["proxy"] for r in rows] == [0.0, 1.0, 2.0] and [r["history_episodes"] for r in rows] == [0, 1, 2]
    assert seen[2] == ["Prompt: a\nCompletion: saw 0\nReward: 0.00\n\n",
                       "Prompt: b\nCompletion: saw 1\nReward: 1.00\n\n"]
    seen.clear()
    assert [r["proxy"] for r in play(complete, score, ["a", "b", "c"], fmt, "no_history", seed=0)] == [0, 0, 0]
    seen.clear()
    play(complete, score, ["a", "b", "c", "d", "e"], fmt, "shuffled", seed=3)
    assert sorted(seen[4]) == sorted(f"Prompt: {p}\nCompletion: saw {i}\nReward: {i:.2f}\n\n"
                                     for i, p in enumerate("abcd"))  # the same episodes, shuffled


def test_slope_against_hand_values():
    slope, se, n = slope_se([1, 2, 3, 1, 2, 3], [1.0, 2.0, 3.0, 2.0, 2.0, 2.0])
    # x-bar 2, Sxx 4, Sxy = -1 + 3 - 2 + 2 = 2 -> slope 0.5; fitted 1.5, 2, 2.5 twice, residuals -.5, 0, .5, .5, 0,
    # -.5 -> SS 1 -> se = sqrt(SS / (n - 2) / Sxx) = sqrt(1 / 4 / 4) = 0.25
    assert slope == pytest.approx(0.5) and se == pytest.approx(0.25) and n == 6
