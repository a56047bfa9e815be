"""rlhf_pipeline.planning: what Snakemake reads of a presigned function is what inspect.signature gives, and
Snakemake reads it without computing the signature again."""

import inspect

import pytest
import snakemake.common
from snakemake.common import FUNC_OVERWRITE_PARAMS_ATTR, get_function_params, get_input_function_aux_params

from rlhf_pipeline.planning import parameters, presign, presign_rules


def test_presign_records_the_signature_snakemake_reads():
    def getter(wildcards, output):
        return output

    grow = presign(lambda wildcards, attempt: 2 * attempt)
    assert presign(getter) is getter
    expected = {f: list(inspect.signature(f).parameters) for f in (getter, grow)}
    kinds = {f: [p.kind for p in inspect.signature(f).parameters.values()] for f in (getter, grow)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(snakemake.common.inspect, "signature", lambda f: pytest.fail(f"signature of {f} computed"))
        for func in (getter, grow):
            assert list(get_function_params(func)) == expected[func]
            assert [p.kind for p in get_function_params(func).values()] == kinds[func]
        candidates = {"input": 1, "output": 2, "attempt": 3, "threads": 4}
        assert get_input_function_aux_params(getter, candidates) == {"output": 2}
        assert get_input_function_aux_params(grow, candidates) == {"attempt": 3}


def test_presign_leaves_what_it_cannot_mark():
    def never(wildcards):
        return wildcards

    bound = "text".startswith  # a builtin: no attributes to set
    assert presign(bound) is bound and not hasattr(bound, FUNC_OVERWRITE_PARAMS_ATTR)
    assert not hasattr(never, FUNC_OVERWRITE_PARAMS_ATTR)
    assert parameters(never) == inspect.signature(never).parameters  # never presigned: computed


def test_presign_rules_marks_input_and_params_functions():
    class Rule:  # what presign_rules reads of Snakemake's rules
        def __init__(self, input, params):
            self.input, self.params = input, params

    def policy(wildcards):
        return "results/sft/model"

    def cfg(wildcards):
        return "{}"

    rules = [Rule(["results/data/train.jsonl", policy], ["literal", cfg]), Rule([policy], [])]
    assert presign_rules(rules) == 2
    for func in (policy, cfg):
        assert getattr(func, FUNC_OVERWRITE_PARAMS_ATTR) == inspect.signature(func).parameters
