"""The synthetic world (rlhf_pipeline.data.synthetic): its gold quality by hand, topics and words, seeded
splits that share no prompts, demonstrations and scored responses across the quality range."""

from __future__ import annotations

import statistics

import pytest

from rlhf_pipeline.data import synthetic
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import join_text, load_tokenizer

FRUITS = "name some fruits. answer:"


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("minilm")


def test_quality_hand_computed_values():
    # d=4 distinct fruits, no repeats, no off-topic, n=5 words -> min(4,5) = 4
    assert synthetic.quality(FRUITS, "apple, banana, cherry and grape") == 4.0
    # d=1, r=3 repeats -> 1 - 3 = -2
    assert synthetic.quality(FRUITS, "apple apple apple apple") == -2.0
    # d=0, o=3 off-topic, n=4 -> 0 - 1.5 - 1 (no answer) = -2.5
    assert synthetic.quality(FRUITS, "dog, cat and horse") == -2.5
    # "i like" + 12 fruits: d=12 capped at 5, n=14 -> 5 - 0.25*(14-12) = 4.5
    assert synthetic.quality(FRUITS, "i like " + " ".join(synthetic.TOPICS["fruits"])) == 4.5
    # d=2, r=1 (second apple), o=1 (dog), n=5 ("and" is filler) -> 2 - 1 - 0.5 = 0.5
    assert synthetic.quality(FRUITS, "apple and pear apple dog") == 0.5
    assert synthetic.quality_terms(FRUITS, "apple and pear apple dog") == {"d": 2, "r": 1, "o": 1, "n": 5}
    # clipping at both ends; empty answer costs the no-answer point
    assert synthetic.quality(FRUITS, " ".join(["apple"] * 20)) == -3.0
    assert synthetic.quality(FRUITS, "") == -1.0


def test_quality_ordering():
    def q(r):
        return synthetic.quality(FRUITS, r)

    assert q("apple banana cherry grape") > q("apple")
    assert q("apple apple apple apple") < q("apple banana cherry grape")
    assert q("dog cat") < q("apple") < q("apple pear")
    assert q("apple pear plum") > q("apple pear plum lion")  # an off-topic word costs
    # quality reads the topic from the prompt: fruit words are off-topic for animals
    assert synthetic.quality("list a few animals. answer:", "apple pear") < 0 < q("apple pear")
    # punctuation and spacing of decoded text do not matter
    assert q("apple , banana and cherry") == q("apple, banana and cherry") == 3.0


def test_quality_needs_a_topic():
    with pytest.raises(PipelineError, match="names no topic"):
        synthetic.quality("tell me a joke. answer:", "apple")


def test_topics_are_disjoint():
    seen = [w for ws in synthetic.TOPICS.values() for w in ws]
    assert len(seen) == len(set(seen))
    assert not set(seen) & synthetic.FILLER


def test_every_word_is_one_minilm_token(tok):
    vocab = set(synthetic.TOPICS) | set(synthetic.FILLER)
    vocab |= {w for ws in synthetic.TOPICS.values() for w in ws}
    for text in (*synthetic.TEMPLATES, *synthetic.OPENERS, *synthetic.LEADS, synthetic.ANSWER_CUE):
        vocab |= set(text.replace("{topic}", "").replace(",", " ").replace(".", " ")
                     .replace("?", " ").replace(":", " ").split())
    multi = [w for w in sorted(vocab) if len(tok.tokenize(w)) != 1]
    assert multi == []


def test_prompts_and_responses_are_short_and_end_on_token_boundary(tok):
    assert max(len(tok(p)["input_ids"]) for p in synthetic.all_prompts()) <= 13  # incl. [CLS]
    rows = synthetic.make_split("train", 300, seed=0)
    for r in rows:
        assert r["prompt"].endswith("answer:") and r["prompt"] == r["prompt"].lower()
        p = tok(r["prompt"])["input_ids"]
        full = tok(join_text(r["prompt"], r["response"]))["input_ids"]
        assert full[:len(p)] == p
        assert len(full) - len(p) <= 24


def test_synthetic_is_deterministic_and_seeded():
    a = synthetic.make_split("train", 50, seed=3)
    assert a == synthetic.make_split("train", 50, seed=3)
    assert a != synthetic.make_split("train", 50, seed=4)
    assert synthetic.sample_scored_responses(40, 1) == synthetic.sample_scored_responses(40, 1)
    assert synthetic.sample_scored_responses(40, 1) != synthetic.sample_scored_responses(40, 2)


def test_synthetic_splits_do_not_share_prompts():
    pool = synthetic.prompt_pool(0)
    train, val, test = (set(pool[s]) for s in ("train", "val", "test"))
    assert not (train & val) and not (train & test) and not (val & test)
    assert train | val | test == set(synthetic.all_prompts())
    for s, prompts in pool.items():  # every topic in every split
        assert {synthetic.topic_of(p) for p in prompts} == set(synthetic.TOPICS), s
    rows = synthetic.make_split("test", 30, seed=0)
    assert {r["prompt"] for r in rows} <= test


def test_demonstrations_are_diverse_in_quality():
    rows = synthetic.make_split("train", 1000, seed=0)
    assert all(set(r) == {"prompt", "response"} for r in rows)  # no chosen/rejected
    qs = [synthetic.quality(r["prompt"], r["response"]) for r in rows]
    assert statistics.pstdev(qs) > 1.5
    assert sum(q >= 3 for q in qs) > 300          # good answers
    assert sum(q <= 0 for q in qs) > 150          # repetitive / off-topic / rambling
    assert sum(0 < q < 3 for q in qs) > 150       # mediocre
    assert len({r["response"] for r in rows}) > 800


def test_scored_responses_cover_the_range_including_degenerate():
    rows = synthetic.sample_scored_responses(1500, seed=0)
    assert all(set(r) == {"prompt", "response", "quality"} for r in rows)
    assert all(r["quality"] == synthetic.quality(r["prompt"], r["response"]) for r in rows)
    qs = [r["quality"] for r in rows]
    assert min(qs) == -3.0 and max(qs) == 5.0
    assert len(set(qs)) > 20
    terms = [synthetic.quality_terms(r["prompt"], r["response"]) for r in rows]
    assert any(t["d"] == 1 and t["r"] >= 8 for t in terms)       # one on-topic word repeated
    assert any(t["n"] >= 16 for t in terms)                      # very long
    assert any(t["n"] <= 1 for t in terms)                       # empty-ish
    assert any(t["d"] == 0 and t["o"] >= 3 for t in terms)       # off-topic
