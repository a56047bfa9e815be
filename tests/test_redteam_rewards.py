"""Red-team reward terms and the combined reward (rlhf_pipeline.redteam.rewards), with real backends too.

Hand-computed BLEU values (sacrebleu, 13a, exp smoothing, effective order), for the text ``a b x y``
against the one reference ``a b c d``: unigram precision 2/4, bigram 1/3 (``a b``), no trigram match
(1st zero order: exp smoothing 1 / (2 * 2 trigrams) = 1/4), no 4-gram match (2nd zero order: 1 / (4 * 1)
= 1/4), no 5-gram at all (effective order stops at 4), brevity penalty 1::

    BLEU_2 = (1/2 * 1/3) ** (1/2),  BLEU_3 = (1/2 * 1/3 * 1/4) ** (1/3),
    BLEU_4 = BLEU_5 = (1/2 * 1/3 * 1/4 * 1/4) ** (1/4)

``a b`` against ``a b c d``: all its n-gram precisions are 1 up to order 2 (its effective order), the
brevity penalty exp(1 - 4/2) = 1/e, so every order gives 1/e.
"""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import torch
from redteam_helpers import ABXY, LookupEmbed

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import minilm_path
from rlhf_pipeline.redteam.config import RewardTermsConfig
from rlhf_pipeline.redteam.rewards import (
    EmbeddingNovelty,
    HFGibberish,
    HFToxicity,
    ProfanityCheckToxicity,
    RedTeamReward,
    SelfBleu,
    WordfreqGibberish,
    bleu_by_order,
    bleu_scorer,
    gibberish_share,
    minilm_embed,
    reservoir_slot,
)
from rlhf_pipeline.redteam.target import LocalTarget

# ---- fakes of the project's own interfaces (not of libraries) -----------------------------------------


class KeywordToxicity:
    """1.0 for a reply containing "bad", else 0.25."""

    def score(self, texts):
        return np.array([1.0 if "bad" in t else 0.25 for t in texts])


class EchoTarget:
    """Replies "bad <text>" when the text contains "attack", else "fine"; records what it was sent."""

    def __init__(self, include_prompt=False):
        self.include_prompt, self.sent = include_prompt, []

    def respond(self, texts):
        self.sent.append(list(texts))
        return [f"bad {t}" if "attack" in t else "fine" for t in texts]


def onehot(i, d=8):
    v = np.zeros(d)
    v[i] = 1.0
    return v


# ---- self-BLEU ------------------------------------------------------------------------------------------


def test_bleu_by_order_is_sacrebleus_own_per_order_value():
    from sacrebleu.metrics import BLEU

    refs = ["the cat sat on the mat", "a dog sat on a log today", "cats and dogs", ""]
    hyps = ["the cat sat on a log", "dogs", "on the mat the cat sat down", "", "completely unrelated words here"]
    scorer = bleu_scorer(refs, 5)
    for h in hyps:
        got = bleu_by_order(scorer.corpus_score([h], None), [1, 2, 3, 4, 5])
        want = [BLEU(max_ngram_order=n, effective_order=True).sentence_score(h, refs).score / 100 for n in range(1, 6)]
        assert got == want  # bit-identical


def test_selfbleu_hand_values_empty_and_one_item():
    sb = SelfBleu([2, 3, 4, 5], history_cap=8, seed=0)
    assert sb.score(["a b x y", "anything"]).tolist() == [0.0, 0.0]  # empty history
    sb.add(["a b c d"])
    got = sb.score(["a b x y", "a b", "a b c d", "q r s t"])
    assert got == pytest.approx([ABXY, math.exp(-1), 1.0, 0.0], abs=1e-12)
    assert got.dtype == np.float64
    assert SelfBleu([2], history_cap=8, seed=0).score([]).shape == (0,)


def test_selfbleu_batch_is_scored_before_it_joins_the_history():
    sb = SelfBleu([2, 3, 4, 5], history_cap=8, seed=0)
    first = sb.score(["a b c d", "a b c d"])
    assert first.tolist() == [0.0, 0.0]  # a batch is never compared with itself
    sb.add(["a b c d", "a b c d"])
    assert sb.score(["a b c d"]).tolist() == [1.0]  # the duplicate in the next batch
    assert sb.n_seen == 2 and sb.references == ["a b c d", "a b c d"]


def test_reservoir_rule_is_seeded_uniform_and_batch_independent():
    assert [reservoir_slot(7, t, 3) for t in range(3)] == [0, 1, 2]
    for t in (3, 10, 100):
        j = int(np.random.default_rng([7, t]).integers(0, t + 1))
        assert reservoir_slot(7, t, 3) == (j if j < 3 else None)
    # inclusion probability of each of 12 items in a reservoir of 3 is 3/12 (over 2000 seeds)
    counts = np.zeros(12)
    for seed in range(2000):
        sb = SelfBleu([1], history_cap=3, seed=seed)
        sb.add([str(i) for i in range(12)])
        counts[[int(r) for r in sb.references]] += 1
    assert np.abs(counts / 2000 - 0.25).max() < 0.04
    one, two = SelfBleu([1], history_cap=3, seed=5), SelfBleu([1], history_cap=3, seed=5)
    one.add([f"w{i}" for i in range(20)])
    for i in range(0, 20, 6):
        two.add([f"w{i}" for i in range(i, min(i + 6, 20))])
    assert one.references == two.references


def test_selfbleu_capped_history_uses_cap_references_chosen_by_the_seed():
    texts = [f"w{i}a w{i}b w{i}c" for i in range(6)]
    chosen = set()
    for seed in range(6):
        sb = SelfBleu([2, 3, 4, 5], history_cap=2, seed=seed)
        sb.add(texts)
        kept = list(texts[:2])  # algorithm R by hand
        for t in range(2, 6):
            j = int(np.random.default_rng([seed, t]).integers(0, t + 1))
            if j < 2:
                kept[j] = texts[t]
        assert sb.references == kept and sb.n_seen == 6
        assert sb.score(texts).tolist() == [1.0 if x in kept else 0.0 for x in texts]
        chosen.add(tuple(kept))
    assert len(chosen) > 1  # the seed decides


# ---- embedding novelty ----------------------------------------------------------------------------------


def test_embedding_novelty_hand_values_and_no_recomputation():
    embed = LookupEmbed({"x": [1, 0], "y": [0, 1], "z": [0.6, 0.8], "w": [3, 4]})
    nov = EmbeddingNovelty(embed, history_cap=8, seed=0)
    assert nov.score(["x", "z"]).tolist() == [0.0, 0.0]  # empty history
    nov.add(["x"])
    assert nov.score(["z", "y"]) == pytest.approx([0.6, 0.0])  # one item
    nov.add(["y"])
    assert nov.score(["z", "x", "w"]) == pytest.approx([0.7, 0.5, 0.7])  # w is normalised to z
    n_calls = len(embed.calls)
    emb = nov.embed(["z"])
    nov.score(["z"], embeddings=emb)
    nov.add(["z"], embeddings=emb)
    assert len(embed.calls) == n_calls + 1  # the history is never re-embedded
    assert nov.history.shape == (3, 2) and nov.n_seen == 3
    with pytest.raises(PipelineError, match=r"zero vector for item 0"):
        EmbeddingNovelty(LookupEmbed({"o": [0, 0]}), history_cap=8, seed=0).score(["o"])


def test_embedding_novelty_capped_history_matches_selfbleus_slots():
    embed = LookupEmbed({f"t{i}": onehot(i) for i in range(8)})
    nov, sb = EmbeddingNovelty(embed, history_cap=3, seed=4), SelfBleu([1], history_cap=3, seed=4)
    texts = [f"t{i}" for i in range(8)]
    nov.add(texts)
    sb.add(texts)
    assert nov.history.shape == (3, 8)
    kept = set(sb.references)
    assert nov.score(texts) == pytest.approx([1 / 3 if t in kept else 0.0 for t in texts])


def test_minilm_embed_is_unit_norm_deterministic_and_ranks_similarity():
    e = minilm_embed(["name some fruits", "list a few fruits", "the engine roared on the highway"])
    assert e.shape == (3, 384) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    nov = EmbeddingNovelty(history_cap=4, seed=0)
    nov.add(["name some fruits"])
    close, far = nov.score(["list a few fruits", "the engine roared on the highway"])
    assert close > far + 0.2
    assert np.array_equal(minilm_embed(["list a few fruits"])[0], e[1])


# ---- gibberish and toxicity backends ------------------------------------------------------------------


def test_wordfreq_gibberish_share_of_uncommon_words():
    g = WordfreqGibberish(min_zipf=2.5)
    got = g.score(["The apple is RED.", "xqzt blorf the", "", "123 !!", "qwrtz"])
    assert got.tolist() == [0.0, pytest.approx(2 / 3), 1.0, 1.0, 1.0]
    assert gibberish_share("apple zzz", 2.0) == 0.0 and gibberish_share("apple zzz", 2.5) == 0.5  # zipf(zzz)=2.21


def test_profanity_check_toxicity_on_clear_examples():
    p = ProfanityCheckToxicity().score(["you are a fucking idiot", "have a nice day, thank you"])
    assert p[0] > 0.9 and p[1] < 0.3 and p.dtype == np.float64
    assert ProfanityCheckToxicity().score([]).shape == (0,)


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    d = tmp_path_factory.mktemp("tox")
    tok = AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, id2label={0: "safe", 1: "toxic"}, label2id={"safe": 0, "toxic": 1})
    model = BertForSequenceClassification(cfg).eval()
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return str(d), model, tok


def test_hf_toxicity_reads_the_softmax_of_the_configured_label(tiny_classifier):
    path, model, tok = tiny_classifier
    texts = ["you are awful", "a short one", "the weather is lovely and the sun is shining today"]
    got = HFToxicity(path, "toxic", batch_size=2).score(texts)
    with torch.no_grad():
        logits = [model(**tok(t, return_tensors="pt")).logits[0].double() for t in texts]
    want = [float(torch.softmax(lg, -1)[1]) for lg in logits]
    assert got == pytest.approx(want, abs=1e-6)
    assert got.dtype == np.float64
    safe = HFToxicity(path, "safe").score(texts)
    assert safe + got == pytest.approx([1, 1, 1])
    assert HFGibberish(path, ["safe", "toxic"]).score(texts) == pytest.approx([1, 1, 1])
    assert HFGibberish(path, ["toxic"]).score(texts) == pytest.approx(got)


def test_hf_classifier_bad_label_or_path_fails_with_one_line(tiny_classifier, tmp_path):
    path = tiny_classifier[0]
    with pytest.raises(PipelineError) as e:
        HFToxicity(path, "hate")
    assert str(e.value) == f"toxicity model {path} has no label 'hate'; its labels: ['safe', 'toxic']"
    with pytest.raises(PipelineError) as e:
        HFGibberish(path, ["noise", "toxic", "word salad"])
    assert str(e.value) == (f"gibberish model {path} has no label(s) ['noise', 'word salad']; "
                            f"its labels: ['safe', 'toxic']")
    with pytest.raises(PipelineError) as e:
        HFToxicity(str(tmp_path / "missing"), "toxic", where="redteam.toxicity.model")
    assert str(e.value).startswith("redteam.toxicity.model: ") and "does not exist" in str(e.value)
    assert "\n" not in str(e.value)


# ---- the combined reward --------------------------------------------------------------------------------


def reward(include_prompt=False, **terms):
    embed = LookupEmbed({"attack": onehot(0), "other": onehot(1), "hello": onehot(2), "mix": [0.6, 0.8, 0, 0, 0, 0,
                                                                                              0, 0]})
    cfg = RewardTermsConfig(**{"history_cap": 16, **terms})
    return RedTeamReward(cfg, KeywordToxicity(), WordfreqGibberish(2.5), EchoTarget(include_prompt), embed)


def test_total_is_the_signed_weighted_sum_of_the_terms_and_clipped():
    r = reward(w_tox=2.0, w_bleu=0.5, w_cos=0.25, w_gib=3.0, bleu_orders=[1, 2])
    r(["p"], ["attack now please"])
    out = r.score_batch(["p", "p", "p"], ["attack now please", "hello qzxv", "other thing"], training=False)
    t = out.terms
    assert set(t) == {"toxicity", "selfbleu", "cos_sim", "gibberish", "total"}
    assert t["toxicity"].tolist() == [1.0, 0.25, 0.25]
    assert t["selfbleu"] == pytest.approx([1.0, 0.0, 0.0])
    assert t["cos_sim"].tolist() == [1.0, 0.0, 0.0]
    assert t["gibberish"].tolist() == [0.0, 0.5, 0.0]
    want = 2.0 * t["toxicity"] - 0.5 * t["selfbleu"] - 0.25 * t["cos_sim"] - 3.0 * t["gibberish"]
    assert t["total"] == pytest.approx(want) and np.array_equal(out.score, t["total"])
    assert out.score == pytest.approx([2 - 0.5 - 0.25, 0.5 - 1.5, 0.5])
    assert out.extras["target_response"] == ["bad attack now please", "fine", "fine"]
    for name, w in (("w_tox", +1), ("w_bleu", -1), ("w_cos", -1), ("w_gib", -1)):  # each weight alone
        r = reward(**{"w_tox": 0.0, name: 1.0, "bleu_orders": [1]})
        r(["p"], ["attack"])
        s = r.score_batch(["p"], ["attack qzxv"], training=False)
        term = {"w_tox": "toxicity", "w_bleu": "selfbleu", "w_cos": "cos_sim", "w_gib": "gibberish"}[name]
        assert s.score[0] == pytest.approx(w * s.terms[term][0]) and s.terms[term][0] > 0
    clipped = reward(w_tox=10.0, w_gib=40.0, clip=3.0).score_batch(["p", "p"], ["attack", "hello zzqx qqxz"],
                                                                   training=False)
    assert clipped.score.tolist() == [3.0, -3.0]


def test_novelty_terms_are_logged_at_weight_zero_and_only_training_batches_join():
    r = reward(w_tox=1.0)  # plain run: novelty weights 0
    assert r(["p"], ["attack"]).tolist() == [1.0]
    ev = r.score_batch(["p"], ["attack"], training=False)
    assert ev.terms["selfbleu"][0] == 1.0  # "attack" against the history ["attack"]
    assert ev.terms["cos_sim"][0] == 1.0 and ev.score[0] == 1.0
    assert r.selfbleu.n_seen == 1 and r.novelty.n_seen == 1  # evaluation added nothing
    assert r.score_batch(["p"], ["other"], training=False).score.tolist() == [0.25]
    assert r.selfbleu.n_seen == 1 and r.last.extras["target_response"] == ["bad attack"]


def test_include_prompt_comes_from_the_target_and_bleu_with_prompt_from_the_terms():
    r = reward(include_prompt=True, bleu_with_prompt=True)
    r(["say:", "ask "], ["attack", "hello"])
    assert r.target.sent == [["say: attack", "ask hello"]]
    assert r.selfbleu.references == ["say: attack", "ask hello"]
    r2 = reward()
    r2(["say:"], ["attack"])
    assert r2.target.sent == [["attack"]] and r2.selfbleu.references == ["attack"]


def test_state_dict_round_trip_continues_identically(tmp_path):
    batches = [[f"attack {i} now", f"hello {i % 3}", f"other {i}"] for i in range(6)]
    full = reward(w_bleu=1.0, w_cos=1.0, history_cap=4, seed=3)
    half = reward(w_bleu=1.0, w_cos=1.0, history_cap=4, seed=3)
    want = [full(["p"] * 3, b) for b in batches]
    for b in batches[:3]:
        half(["p"] * 3, b)
    torch.save(half.state_dict(), tmp_path / "reward.pt")
    resumed = reward(w_bleu=1.0, w_cos=1.0, history_cap=4, seed=3)
    resumed.load_state_dict(torch.load(tmp_path / "reward.pt", weights_only=False))
    got = [resumed(["p"] * 3, b) for b in batches[3:]]
    assert all(np.array_equal(a, b) for a, b in zip(got, want[3:]))
    assert pickle.loads(pickle.dumps(resumed.state_dict()))["selfbleu"] == full.state_dict()["selfbleu"]
    with pytest.raises(PipelineError, match=r"selfbleu state: saved with seed=3, this run has 4"):
        reward(history_cap=4, seed=4).load_state_dict(full.state_dict())


def test_bad_batches_fail_with_one_line():
    r = reward()
    with pytest.raises(PipelineError, match=r"2 prompts but 1 outputs"):
        r(["a", "b"], ["c"])
    with pytest.raises(PipelineError, match=r"red-team reward outputs: item 1 is int, expected a string"):
        r(["a", "b"], ["c", 3])


def test_real_backends_together(tiny_lm, tiny_classifier, tmp_path):
    from rlhf_pipeline.io import read_jsonl, write_json, write_jsonl

    target = LocalTarget(tiny_lm, max_new_tokens=4, batch_size=2)
    r = RedTeamReward(RewardTermsConfig(w_bleu=1.0, w_cos=1.0, w_gib=1.0, history_cap=4),
                      HFToxicity(tiny_classifier[0], "toxic"), WordfreqGibberish(2.5), target)
    prompts = ["name some fruits. answer:"] * 3
    r(prompts, ["apple banana", "you are bad", "qzx"])
    out = r.score_batch(prompts, ["apple banana", "dog cat", "qzx"], training=False)
    assert out.terms["selfbleu"][0] == 1.0 and out.terms["cos_sim"][0] > out.terms["cos_sim"][1] > 0
    tox = out.terms["toxicity"]
    assert out.terms["gibberish"].tolist() == [0.0, 0.0, 1.0] and ((tox > 0) & (tox < 1)).all()
    write_jsonl(tmp_path / "samples.jsonl", out.rows())
    assert set(read_jsonl(tmp_path / "samples.jsonl")[0]) == {"toxicity", "selfbleu", "cos_sim", "gibberish", "total",
                                                             "target_input", "target_response"}
    write_json(tmp_path / "provenance.json", r.provenance())
    assert json.loads((tmp_path / "provenance.json").read_text())["target"]["backend"] == "hf"
    assert set(r.last.means()) == {"toxicity", "selfbleu", "cos_sim", "gibberish", "total"}
