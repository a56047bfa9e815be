"""PPO runs (rlhf_pipeline.runs): replicates expand to jobs with distinct seeds, replicate names,
the baseline run."""

import pytest

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.runs import REPLICATE_SEED_STRIDE, PPOSection


def test_replicates_expand_to_jobs_with_distinct_seeds():
    ppo = PPOSection.from_dict({"runs": {"one": {"rm_seeds": [4], "replicates": 3},
                                         "ens": {"rm_seeds": [1, 2], "objective": "WCO", "seed": 7}}})
    assert ppo.run_names() == ["one", "one_r2", "one_r3", "ens"]
    seeds = [ppo.run_config(n).hparams.seed for n in ("one", "one_r2", "one_r3")]
    assert seeds == [4, 4 + REPLICATE_SEED_STRIDE, 4 + 2 * REPLICATE_SEED_STRIDE]  # replicate 1 keeps today's seed
    assert ppo.run_config("ens").hparams.seed == 7
    assert ppo.replicate_of("one_r3") == ("one", 3)
    for bad_name in ("one_r4", "ens_r2", "one_r1", "one_r02"):
        with pytest.raises(KeyError):
            ppo.replicate_of(bad_name)


def test_replicate_names_may_not_name_other_runs():
    with pytest.raises(PipelineError, match=r"ppo.runs.a.replicates: got 2, expected a count whose replicate names"):
        PPOSection.from_dict({"runs": {"a": {"rm_seeds": [1], "replicates": 2}, "a_r2": {"rm_seeds": [1]}}})


def test_baseline_run_defaults_to_the_first_single_rm_run_and_must_be_a_run():
    runs = {"ens": {"rm_seeds": [1, 2]}, "one": {"rm_seeds": [1]}, "two": {"rm_seeds": [2]}}
    assert PPOSection.from_dict({"runs": runs}).baseline() == "one"
    assert PPOSection.from_dict({"runs": runs, "baseline_run": "ens"}).baseline() == "ens"
    assert PPOSection.from_dict({"runs": {"ens": runs["ens"]}}).baseline() == "ens"
    with pytest.raises(PipelineError, match=r"ppo.baseline_run: got 'x', expected one of the configured runs"):
        PPOSection.from_dict({"runs": runs, "baseline_run": "x"})


def test_compare_with_sets_each_runs_baselines_and_links_runs_into_groups():
    runs = {"single": {"rm_seeds": [4]}, "mean": {"rm_seeds": [4, 5]},
            "wco": {"rm_seeds": [4, 5], "objective": "WCO", "compare_with": ["single", "mean"]},
            "single_ind": {"rm_seeds": [7], "compare_with": []},
            "mean_ind": {"rm_seeds": [7, 8], "compare_with": ["single_ind"]},
            "wco_ind": {"rm_seeds": [7, 8], "objective": "WCO", "compare_with": ["mean_ind"]}}
    ppo = PPOSection.from_dict({"runs": runs, "baseline_run": "single"})
    comparisons = ppo.comparisons()
    assert comparisons["mean"] == ["single"] and comparisons["wco"] == ["single", "mean"]
    assert comparisons["mean"] == ["single"]  # no compare_with: the baseline run
    # the baseline itself, and single_ind ([]: a baseline of its own): compared with none
    assert comparisons["single"] == [] and comparisons["single_ind"] == [] and comparisons["wco_ind"] == ["mean_ind"]
    assert ppo.comparison_groups() == [["single", "mean", "wco"], ["single_ind", "mean_ind", "wco_ind"]]
    del runs["single_ind"]["compare_with"]  # now single_ind is compared with single: the groups link
    assert PPOSection.from_dict({"runs": runs, "baseline_run": "single"}).comparison_groups() == [list(runs)]
    for bad_list in (["nope"], ["wco"]):
        with pytest.raises(PipelineError, match=r"ppo.runs.wco.compare_with: got .*expected other configured runs"):
            PPOSection.from_dict({"runs": {**runs, "wco": {**runs["wco"], "compare_with": bad_list}}})
