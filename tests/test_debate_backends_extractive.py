"""The extractive debater and the quote-similarity judge (rlhf_pipeline.debate.backends.extractive, real
MiniLM): quotes that verify, retrieval strength, misquotes, no repeated quotes; support from verified
quotes only."""

from __future__ import annotations

import math

import pytest
from debate_helpers import PASSAGE, SUPPORT, Q, ctx, jctx, speech

from rlhf_pipeline.debate.backends import build_debater, build_judge
from rlhf_pipeline.debate.backends.extractive import garble, lexical_scores, pick_quotes, support
from rlhf_pipeline.debate.config import ModelConfig
from rlhf_pipeline.debate.quotes import verify_quotes
from rlhf_pipeline.debate.types import QuoteCheck, Speech


def extractive(prompts, **kw):
    return build_debater("ext", ModelConfig(type="extractive", **kw), prompts)


def test_extractive_quotes_verify_and_claim_the_answer(prompts):
    for retrieval in ("embedding", "lexical", "random"):
        for side in (0, 1):
            raw = extractive(prompts, quotes=2, retrieval=retrieval).speak(ctx(side))
            checks = verify_quotes(raw, PASSAGE, 90.0)[1]
            assert [c.status for c in checks] == ["verified", "verified"]
            assert raw.startswith(f"The answer is {Q.answers[side]}, not {Q.answers[1 - side]}.")


def test_extractive_strength_embedding_finds_the_support_random_does_not(prompts):
    def first_quote(d, seed):
        return verify_quotes(d.speak(ctx(0, seed=seed)), PASSAGE, 90.0)[1][0].text

    emb, lex = extractive(prompts, quotes=1), extractive(prompts, quotes=1, retrieval="lexical")
    rnd = extractive(prompts, quotes=1, retrieval="random")
    assert all(first_quote(emb, s) == SUPPORT for s in range(5))
    assert first_quote(lex, 0) == SUPPORT
    hits = [first_quote(rnd, s) == SUPPORT for s in range(10)]
    assert sum(hits) <= 3 and not hits[0]  # seeded: 1 hit in 10 (8 sentences)
    # the dishonest side's best embedding quote is the sentence about Lima
    assert "Lima" in extractive(prompts, quotes=1).speak(ctx(1))
    query = "where did mira sail to buy grain oslo"  # content words shared with SUPPORT: mira buy grain oslo
    assert lexical_scores(query, [SUPPORT, "The mill was blue."]) == [4, 0]


def test_extractive_misquotes_fail_verification_and_speeches_are_deterministic(prompts):
    raw = extractive(prompts, quotes=3, misquote_rate=1.0).speak(ctx(0))
    checks = verify_quotes(raw, PASSAGE, 90.0)[1]
    assert len(checks) == 3 and all(c.status == "unverified" for c in checks)
    import random
    assert verify_quotes(f"<quote>{garble(SUPPORT, random.Random(0))}</quote>", PASSAGE, 90.0)[1][0].status \
        == "unverified"
    half = [extractive(prompts, quotes=2, misquote_rate=0.5, seed=s).speak(ctx(0)) for s in range(6)]
    assert half == [extractive(prompts, quotes=2, misquote_rate=0.5, seed=s).speak(ctx(0)) for s in range(6)]
    statuses = [c.status for h in half for c in verify_quotes(h, PASSAGE, 90.0)[1]]
    assert 0 < statuses.count("unverified") < len(statuses)
    rnd = extractive(prompts, quotes=1, retrieval="random")
    assert rnd.speak(ctx(0, seed=1)) == rnd.speak(ctx(0, seed=1))
    assert len({rnd.speak(ctx(0, seed=s)) for s in range(6)}) > 1


def test_extractive_does_not_repeat_its_own_quotes_within_a_round(prompts):
    d = extractive(prompts, quotes=2)
    turns: list[Speech] = []
    for t in range(3):
        other = speech("x <quote>The mill was painted blue every summer.</quote>", 1, "debater_b", t)
        raw = d.speak(ctx(0, turn=t, visible=turns))
        turns += [speech(raw, 0, "debater_a", t), other]
    quoted = [c.text for s in turns if s.role == "debater_a" for c in s.quotes]
    assert len(quoted) == 6 and len(set(quoted)) == 6 and quoted[0] == SUPPORT
    # without its earlier speeches visible, the turn number skips the ranks already used
    assert d.speak(ctx(0, turn=1)) == d.speak(ctx(0, turn=1, visible=turns[:2]))
    assert pick_quotes([3, 1, 2, 0], {3, 1, 2}, 2) == [0, 3]  # too few fresh: topped up with the best used


def test_support_aggregation_hand_values():
    assert support([]) == 0.0
    assert support([0.2, 0.5, 0.1]) == 0.5
    assert support([-0.3]) == 0.0


def test_quote_similarity_judge_favours_supported_answer_and_follows_answer_order(prompts):
    judge = build_judge("qs", ModelConfig(type="quote_similarity"), prompts)
    sp = [speech(f"Oslo. <quote>{SUPPORT}</quote>", 0),
          speech("Lima. <quote>The mill was painted blue every summer.</quote>", 1, "debater_b")]
    v = judge.judge(jctx(sp, (0, 1)))
    assert v.probs[0] > 0.8 and math.isclose(sum(v.probs), 1.0) and v.has_probabilities
    swapped = judge.judge(jctx(sp, (1, 0)))
    assert swapped.probs == pytest.approx(v.probs[::-1], abs=1e-12)
    # consultancy: only one side quoted; the judge leans to the consultant's answer
    cons = judge.judge(jctx([Speech("consultant", "x", 1, 0, "r", "s", sp[1].quotes)], (0, 1), "consultancy"))
    assert cons.probs[1] > 0.5
    empty = judge.judge(jctx([], (0, 1), "empty"))
    assert "question-only prior" in empty.raw and 0.2 < empty.probs[0] < 0.8
    prov = judge.provenance()
    assert prov["backend"] == "quote_similarity" and len(prov["embedder_sha256"]) == 64


def test_quote_similarity_judge_ignores_unverified_quotes(prompts):
    judge = build_judge("qs", ModelConfig(type="quote_similarity"), prompts)
    honest = speech(f"Oslo. <quote>{SUPPORT}</quote>", 0)
    liar = speech("Lima. <quote>The mill was painted blue every summer.</quote>", 1, "debater_b")
    fake = Speech("debater_b", "x", 1, 1, "r", "s",
                  [QuoteCheck("Mira Tosk sailed to Lima in 1802 to buy grain.", "unverified", None, 80.0, None)])
    assert judge.judge(jctx([honest, liar, fake])).probs == judge.judge(jctx([honest, liar])).probs
    only_fake = judge.judge(jctx([fake]))
    assert only_fake.probs == [0.5, 0.5] and "unverified ignored: 1" in only_fake.raw


def test_quote_similarity_judge_reads_a_fuzzy_quote_as_the_passage_text_it_was_shown(prompts):
    judge = build_judge("qs", ModelConfig(type="quote_similarity"), prompts)
    liar = speech("Lima. <quote>Mira Tosk sailed to Lima in 1802 to buy grain.</quote>", 1, "debater_b")
    assert liar.quotes[0].status == "verified" and liar.quotes[0].method == "fuzzy"  # one word changed
    assert "<v_quote>Mira Tosk sailed to Oslo in 1802 to buy grain" in liar.shown  # the passage's own words ...
    # ... and scores them, not the speaker's altered words
    match, text = liar.quotes[0].match, liar.quotes[0].text

    def quoting(words: str) -> Speech:
        return Speech("debater_b", "x", 1, 0, "r", "s", [QuoteCheck(words, "verified", "exact", 100.0, words)])

    assert judge.judge(jctx([liar])).probs == judge.judge(jctx([quoting(match)])).probs
    assert judge.judge(jctx([liar])).probs != judge.judge(jctx([quoting(text)])).probs
