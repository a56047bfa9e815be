"""The Anthropic HH adapter (rlhf_pipeline.data.anthropic_hh): a pair split at the last assistant turn,
splits carved from train."""

from __future__ import annotations

from data_helpers import HH_CHOSEN, HH_REJECTED, hh_dsd

from rlhf_pipeline.data import anthropic_hh
from rlhf_pipeline.models import join_text


def test_anthropic_hh_split_pair():
    prompt, chosen, rejected = anthropic_hh.split_pair(HH_CHOSEN, HH_REJECTED)
    assert prompt == "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant:"
    assert (chosen, rejected) == ("An apple.", "A car.")
    assert join_text(prompt, chosen) == HH_CHOSEN and join_text(prompt, rejected) == HH_REJECTED
    # responses that start alike still split at the last assistant turn
    p2, c2, r2 = anthropic_hh.split_pair("\n\nHuman: Q\n\nAssistant: A yes", "\n\nHuman: Q\n\nAssistant: A no")
    assert (p2, c2, r2) == ("\n\nHuman: Q\n\nAssistant:", "A yes", "A no")
    assert anthropic_hh.split_pair("no turns here", "none here") is None


def test_anthropic_hh_convert():
    out = anthropic_hh.convert(hh_dsd(), seed=0)
    assert [len(out[s]) for s in ("train", "val", "test")] == [19, 1, 3]
    row = out["test"][0]
    assert set(row) == {"prompt", "response", "chosen", "rejected"}
    assert row["chosen"] == row["response"] == "An apple." and row["rejected"] == "A car."
    assert row["prompt"].endswith("Name a fruit 0.\n\nAssistant:")

    def prompts(s):
        return {r["prompt"] for r in out[s]}

    assert not prompts("train") & prompts("val")
    assert out == anthropic_hh.convert(hh_dsd(), seed=0)
    assert out["val"] != anthropic_hh.convert(hh_dsd(), seed=5)["val"]
