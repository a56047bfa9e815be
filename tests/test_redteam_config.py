"""The redteam section's replicates (job names, seeds, groups), eval repeats and baseline group."""

import pytest

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.redteam.config import RedTeamSection


def _section(**over):
    runs = {"plain": {"seed": 1, "replicates": 3},
            "curious": {"seed": 1, "group": "curiosity", "replicates": 2, "terms": {"w_bleu": 1.0}}}
    return RedTeamSection.from_dict({"runs": runs, "hparams": {"total_episodes": 32}, **over}, "redteam")


def test_replicates_are_jobs_with_their_own_seed_in_the_runs_group():
    sec = _section(eval_repeats=3, diversity_sample=50)
    assert sec.run_names() == ["plain", "plain_r2", "plain_r3", "curious", "curious_r2"]
    cfgs = {name: sec.run_config(name) for name in sec.run_names()}
    assert [c.hparams.seed for c in cfgs.values()] == [1, 1001, 2001, 1, 1001]
    assert [c.group for c in cfgs.values()] == ["plain"] * 3 + ["curiosity"] * 2
    assert cfgs["plain_r3"].name == "plain_r3" and cfgs["curious_r2"].terms.w_bleu == 1.0
    assert all(c.eval_repeats == 3 and c.diversity_sample == 50 for c in cfgs.values())


def test_a_replicate_name_that_is_a_run_and_an_unknown_baseline_group_fail_naming_the_key():
    with pytest.raises(PipelineError, match=r"redteam.runs.plain.replicates"):
        RedTeamSection.from_dict({"runs": {"plain": {"seed": 1, "replicates": 2}, "plain_r2": {"seed": 5}}},
                                 "redteam")
    with pytest.raises(PipelineError, match=r"redteam.baseline_group.*'curiosity', 'plain'"):
        _section(baseline_group="nope")
    assert _section(baseline_group="curiosity").baseline_group == "curiosity"
