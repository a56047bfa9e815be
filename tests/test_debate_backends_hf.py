"""The hf debater and judge (rlhf_pipeline.debate.backends.hf) on a tiny random Llama with the MiniLM
tokenizer: the judge's teacher-forced softmax over the letter logits, reproducible sampled speeches."""

from __future__ import annotations

import math

import pytest
import torch
from debate_helpers import SUPPORT, ctx, jctx, speech

from rlhf_pipeline.debate.backends import build_debater, build_judge
from rlhf_pipeline.debate.backends.hf import letter_positions, two_way_probs
from rlhf_pipeline.debate.config import ModelConfig
from rlhf_pipeline.debate.prompts import judge_prompt
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import load_causal_lm, load_tokenizer

TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def test_two_way_probs_hand_values():
    assert two_way_probs(0.0, 0.0) == (0.5, 0.5)
    assert two_way_probs(1.0, 0.0)[0] == pytest.approx(math.e / (math.e + 1), abs=1e-15)  # 0.7310585786
    p_a, p_b = two_way_probs(2.0, -1.0)
    assert p_a == pytest.approx(0.9525741268224334, abs=1e-15) and p_a + p_b == 1.0  # 1 / (1 + e^-3)
    assert two_way_probs(-0.5, 1.5)[1] == pytest.approx(0.8807970779778823, abs=1e-15)  # 1 / (1 + e^-2)
    assert two_way_probs(1000.0, 0.0) == (1.0, 0.0) and two_way_probs(0.0, 1000.0)[1] == 1.0  # no overflow
    with pytest.raises(PipelineError, match="finite"):
        two_way_probs(float("nan"), 0.0)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    tok = load_tokenizer("minilm")
    path = tmp_path_factory.mktemp("tiny_llama")
    load_causal_lm(None, tok, tiny=TINY, seed=0).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def test_hf_judge_is_teacher_forced_softmax_of_letter_logits(tiny_dir, prompts):
    judge = build_judge("hfj", ModelConfig(type="hf", model=tiny_dir), prompts)
    sp = [speech(f"Oslo. <quote>{SUPPORT}</quote>", 0)]
    v = judge.judge(jctx(sp, (1, 0)))
    assert v.has_probabilities and math.isclose(sum(v.probs), 1.0) and 0 < v.probs[0] < 1
    # by hand: the prompt + prefix, one forward pass, softmax over the logits of the letter tokens
    tok = load_tokenizer(tiny_dir)
    system, user = judge_prompt(prompts, "default", jctx(sp, (1, 0)))
    text = f"{system}\n\n{user}The correct answer is ("
    ids = tok(text)["input_ids"]
    id_a, id_b = tok.convert_tokens_to_ids(["a", "b"])  # MiniLM's WordPiece lower-cases
    with torch.no_grad():
        logits = judge.lm(input_ids=torch.tensor([ids])).logits[0, -1]
    la, lb = float(logits[id_a]), float(logits[id_b])
    assert v.probs[0] == pytest.approx(math.exp(la) / (math.exp(la) + math.exp(lb)), abs=1e-6)
    assert letter_positions(tok, text, True, "w") == (ids, id_a, id_b)
    prov = judge.provenance()
    assert prov["backend"] == "hf" and prov["path"] == tiny_dir and len(prov["sha256"]) == 64
    with pytest.raises(PipelineError, match=r"answer letters are not single tokens after the answer prefix"):
        build_judge("hfj", ModelConfig(type="hf", model=tiny_dir, answer_prefix="The answer is (Bo"), prompts)


def test_hf_debater_samples_reproducible_text(tiny_dir, prompts):
    d = build_debater("hfd", ModelConfig(type="hf", model=tiny_dir, max_new_tokens=6, temperature=1.0), prompts)
    a, b = d.speak(ctx(0, seed=1)), d.speak(ctx(0, seed=1))
    assert isinstance(a, str) and a and a == b
    assert len({d.speak(ctx(0, seed=s)) for s in range(4)}) > 1
    greedy = build_debater("hfd", ModelConfig(type="hf", model=tiny_dir, max_new_tokens=6, temperature=0), prompts)
    assert greedy.speak(ctx(0, seed=1)) == greedy.speak(ctx(0, seed=2))
