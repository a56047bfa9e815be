"""rlhf_pipeline.planning: what Snakemake reads of a presigned function is what inspect.signature gives."""

import inspect

import pytest
from snakemake.common import get_function_params, get_input_function_aux_params

from rlhf_pipeline.planning import parameters, presign, presign_rules


def _getter(wildcards, input, output):
    return wildcards


def test_presign_records_the_signature_snakemake_reads():
    def getter(wildcards, output):
        return output

    grow = presign(lambda wildcards, attempt: 2 * attempt)
    assert presign(getter) is getter
    for func in (getter, grow):
        assert list(get_function_params(func)) == list(inspect.signature(func).parameters)
        assert parameters(func) == inspect.signature(func).parameters
    candidates = {"input": 1, "output": 2, "attempt": 3, "threads": 4}
    assert get_input_function_aux_params(getter, candidates) == {"output": 2}
    assert get_input_function_aux_params(grow, candidates) == {"attempt": 3}


def test_presign_leaves_what_it_cannot_mark():
    bound = "text".startswith  # a builtin: no attributes to set
    assert presign(bound) is bound
    assert parameters(_getter) == inspect.signature(_getter).parameters  # never presigned: computed


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
        assert get_function_params(func) == inspect.signature(func).parameters


@pytest.mark.parametrize("func", [_getter])
def test_presigned_parameters_keep_their_kinds(func):
    presign(func)
    assert [p.kind for p in get_function_params(func).values()] == [
        p.kind for p in inspect.signature(func).parameters.values()]
