"""Debate backends and prompts: the prompts file, the extractive debater and quote-similarity judge
(real MiniLM), the hf backends (a tiny random Llama on the MiniLM tokenizer), and the API backends
against a real local HTTP server (pytest-httpserver) speaking the OpenAI / Anthropic wire format."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import torch
import yaml
from werkzeug import Response

from rlhf_pipeline.clients import public_url
from rlhf_pipeline.debate.backends import build_debater, build_judge
from rlhf_pipeline.debate.backends.api import letter_probs, parse_letter
from rlhf_pipeline.debate.backends.extractive import garble, lexical_scores, pick_quotes, support
from rlhf_pipeline.debate.backends.hf import letter_positions, two_way_probs
from rlhf_pipeline.debate.config import ModelConfig
from rlhf_pipeline.debate.prompts import (
    FIELDS,
    OPTIONAL,
    format_transcript,
    judge_prompt,
    load_prompts,
    prompt_set,
)
from rlhf_pipeline.debate.quotes import verify_quotes
from rlhf_pipeline.debate.types import JudgeContext, Question, QuoteCheck, Speech, SpeechContext, render
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import load_causal_lm, load_tokenizer

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
PROMPTS = ROOT / "config/debate/prompts.yaml"
SUPPORT = "Mira Tosk sailed to Oslo in 1802 to buy grain."
PASSAGE = ("The harbour town of Vell had three bakers. " + SUPPORT + " Her brother Tam stayed home and repaired "
           "the mill. In 1805 a storm destroyed the northern pier. Tam later sailed to Lima with a cargo of wool. "
           "The mayor counted 412 sheep that spring. Children in Vell learned to swim before they could read. "
           "The mill was painted blue every summer.")
Q = Question("q1", "s1", PASSAGE, "Where did Mira Tosk sail to buy grain?", ["Oslo", "Lima"], 0, "toy")
KEY = "sk-test-Zq8SECRETvalue123"
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


@pytest.fixture(scope="module")
def prompts():
    return load_prompts(PROMPTS)


def ctx(side=0, role="debater_a", turn=0, visible=(), seed=7, fmt="debate", n_turns=3) -> SpeechContext:
    return SpeechContext(Q, side, role, fmt, turn, n_turns, list(visible), "round-1", seed)


def speech(raw: str, side: int, role: str = "debater_a", turn: int = 0) -> Speech:
    shown, checks = verify_quotes(raw, PASSAGE, 90.0)
    return Speech(role, "x", side, turn, raw, shown, checks)


def jctx(speeches, order=(0, 1), fmt="debate") -> JudgeContext:
    return JudgeContext(Q, fmt, list(order), list(speeches), "round-1", 3)


# ---- prompts ---------------------------------------------------------------------------------------


def test_prompts_file_loads_and_every_template_renders(prompts):
    assert "default" in prompts and prompts.path == str(PROMPTS)
    for name, pset in prompts.items():
        for section, keys in FIELDS.items():
            for key, fields in keys.items():
                tmpl = pset[section].get(key)
                if tmpl is None:
                    assert (section, key) in OPTIONAL
                    continue
                text = render(tmpl, key, **{f: f"<{f.upper()}>" for f in fields})
                assert "{" not in text and "}" not in text, (name, section, key)
        for key in ("debate", "consultancy"):
            assert all(f"{{{f}}}" in pset["debater"][key] for f in ("passage", "question", "answer_defending",
                                                                     "transcript")), key
        for key in ("debate", "consultancy", "double_consultancy", "empty"):
            assert all(f"{{{f}}}" in pset["judge"][key] for f in ("question", "answer_a", "answer_b")), key
            assert ("{transcript}" in pset["judge"][key]) == (key != "empty")
            assert "{passage}" not in pset["judge"][key]  # judges never see the passage
    sp = [speech(f"Oslo. <quote>{SUPPORT}</quote>", 0), speech("Lima. <quote>Mira went to Lima.</quote>", 1,
                                                              "debater_b")]
    system, user = judge_prompt(prompts, "default", jctx(sp, (1, 0)))
    assert "(A) Lima" in user and "(B) Oslo" in user and Q.question in user and system
    assert "<v_quote>" in user and "<u_quote>" in user and "<quote>" not in user  # speeches as shown
    assert "harbour town" not in user + system  # no passage text beyond the quoted sentence


def _write(tmp_path: Path, edit) -> Path:
    obj = yaml.safe_load(PROMPTS.read_text())
    edit(obj["default"])
    path = tmp_path / "prompts.yaml"
    path.write_text(yaml.safe_dump(obj))
    return path


def test_unknown_placeholder_names_file_set_and_key(tmp_path):
    path = _write(tmp_path, lambda s: s["judge"].update(debate="Story: {passage}\n{question}"))
    with pytest.raises(PipelineError, match=rf"{path}: default.judge.debate: unknown placeholder\(s\) \['passage'\]"):
        load_prompts(path)
    path = _write(tmp_path, lambda s: s["debater"].update(debate="{question} {answr_defending}"))
    with pytest.raises(PipelineError, match=r"default.debater.debate: unknown placeholder\(s\) \['answr_defending'\]"):
        load_prompts(path)


def test_missing_or_malformed_keys_name_file_and_key(tmp_path, prompts):
    path = _write(tmp_path, lambda s: s["judge"].pop("empty"))
    with pytest.raises(PipelineError, match=rf"^{path}: default.judge.empty: missing"):
        load_prompts(path)
    path = _write(tmp_path, lambda s: s["labels"].pop("consultant_b"))
    with pytest.raises(PipelineError, match=r"default.labels.consultant_b: missing"):
        load_prompts(path)
    path = _write(tmp_path, lambda s: s["judge"].update(debate="{question"))
    with pytest.raises(PipelineError, match=r"default.judge.debate: malformed template"):
        load_prompts(path)
    with pytest.raises(PipelineError, match=r"prompts.yaml: no prompt set 'terse' \(asked for by extractive"):
        build_debater("d", ModelConfig(type="extractive", prompt="terse"), prompts)
    with pytest.raises(PipelineError, match="prompts file not found"):
        load_prompts(tmp_path / "nope.yaml")
    path = _write(tmp_path, lambda s: s["debater"].pop("extractive"))
    with pytest.raises(PipelineError, match=r"default.debater.extractive: missing; the extractive debater d needs"):
        build_debater("d", ModelConfig(type="extractive"), load_prompts(path))
    assert prompt_set(prompts, "default", "me") is prompts["default"]


def test_transcript_shows_speeches_as_judged_with_labels_and_shown_letters(prompts):
    pset = prompts["default"]
    sp = [speech(f"Oslo! <quote>{SUPPORT}</quote>", 0), speech("Lima! <quote>made up</quote>", 1, "debater_b")]
    text = format_transcript(sp, pset, "judge", Q.answers, [1, 0])
    first, second = text.split("\n\n")
    assert first == f'Debater 1 (arguing for (B) "Oslo"), speech 1:\nOslo! <v_quote>{SUPPORT}</v_quote>'
    assert second == 'Debater 2 (arguing for (A) "Lima"), speech 1:\nLima! <u_quote>made up</u_quote>'
    assert format_transcript([], pset, "judge", Q.answers, [0, 1]) == "(no speeches yet)"
    debater_view = format_transcript(sp[:1], pset, "debater", Q.answers)
    assert debater_view.startswith('Debater 1 (arguing for "Oslo"), speech 1:')


# ---- extractive debater ----------------------------------------------------------------------------------


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


# ---- quote-similarity judge -------------------------------------------------------------------------------


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


# ---- hf backends ------------------------------------------------------------------------------------------


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


# ---- API backends against a real local HTTP server -----------------------------------------------------------


def completion(content, logprobs=None) -> dict:
    return {"id": "c1", "object": "chat.completion", "created": 0, "model": "judge-m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": logprobs,
                         "finish_reason": "stop"}]}


def top(pairs: dict[str, float]) -> dict:
    entries = [{"token": t, "logprob": lp, "bytes": None} for t, lp in pairs.items()]
    return {"content": [{**entries[0], "top_logprobs": entries}]}


def oai(httpserver, role="judge", **kw):
    cfg = ModelConfig(type="openai_compatible", model="judge-m", base_url=httpserver.url_for("/v1"),
                      **{"api_key_env": "DEBATE_TEST_KEY", "timeout_s": 5.0, "max_retries": 0, **kw})
    build = build_judge if role == "judge" else build_debater
    return build("api", cfg, load_prompts(PROMPTS))


@pytest.fixture
def key(monkeypatch):
    monkeypatch.setenv("DEBATE_TEST_KEY", KEY)
    return KEY


def test_openai_debater_normal_answer(httpserver, key):
    httpserver.expect_request("/v1/chat/completions", method="POST",
                              headers={"Authorization": f"Bearer {key}"}).respond_with_json(
        completion(f"Oslo is right. <quote>{SUPPORT}</quote>"))
    d = oai(httpserver, "debater", temperature=0.5, max_new_tokens=50)
    assert d.speak(ctx(0)) == f"Oslo is right. <quote>{SUPPORT}</quote>"
    body = json.loads(httpserver.log[0][0].get_data())
    assert body["model"] == "judge-m" and body["max_tokens"] == 50 and body["temperature"] == 0.5
    assert PASSAGE in body["messages"][-1]["content"] and body["messages"][0]["role"] == "system"
    assert d.speak_many([ctx(0), ctx(1)]) == [f"Oslo is right. <quote>{SUPPORT}</quote>"] * 2
    httpserver.check_assertions()


def test_openai_judge_probabilities_from_top_logprobs(httpserver, key):
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        completion("A", top({"A": math.log(0.6), " B": math.log(0.3), "The": math.log(0.05)})))
    v = oai(httpserver).judge(jctx([speech(f"<quote>{SUPPORT}</quote>", 0)], (1, 0)))
    assert v.has_probabilities and v.probs == pytest.approx([2 / 3, 1 / 3], abs=1e-12)
    body = json.loads(httpserver.log[0][0].get_data())
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["max_tokens"] == 1
    user = body["messages"][-1]["content"]
    assert user.endswith("The correct answer is (") and "harbour" not in json.dumps(body)  # no passage
    assert letter_probs([("A", math.log(0.5)), ("(A", math.log(0.2)), ("x", math.log(0.1))]) == \
        pytest.approx((0.7 / 0.8, 0.1 / 0.8))  # B absent: bounded by the smallest listed probability


def test_openai_judge_falls_back_to_the_text_without_logprobs(httpserver, key):
    httpserver.expect_ordered_request("/v1/chat/completions").respond_with_json(completion("B"))
    httpserver.expect_ordered_request("/v1/chat/completions").respond_with_json(
        completion("(A)", top({"The": -0.1, "It": -2.5})))
    judge = oai(httpserver)
    v = judge.judge(jctx([], (0, 1), "empty"))
    assert v.probs == [0.0, 1.0] and not v.has_probabilities and "no log-probabilities" in v.raw
    v = judge.judge(jctx([], (0, 1), "empty"))
    assert v.probs == [1.0, 0.0] and not v.has_probabilities and "neither letter" in v.raw
    httpserver.clear()
    httpserver.expect_request("/v1/chat/completions").respond_with_json(completion("Maybe"))
    with pytest.raises(PipelineError, match=r"the judge's reply names neither \(A\) nor \(B\): 'Maybe'"):
        judge.judge(jctx([], (0, 1), "empty"))
    replies = ("A", " (B).", "B)", "The answer is (A) because", "Answer: B", "Aha", "(A) or (B)", "a")
    assert [parse_letter(t) for t in replies] == ["A", "B", "B", "A", "B", None, None, None]


def test_openai_slow_answer_times_out(httpserver, key):
    def slow(request):
        time.sleep(1.0)
        return Response(json.dumps(completion("A")), content_type="application/json")

    httpserver.expect_request("/v1/chat/completions").respond_with_handler(slow)
    start = time.monotonic()
    with pytest.raises(PipelineError, match=r"api \(judge-m at http://localhost:\d+/v1\): no answer within "
                                            r"timeout_s=0.2 \(after 0 retries\)"):
        oai(httpserver, timeout_s=0.2).judge(jctx([], (0, 1), "empty"))
    assert time.monotonic() - start < 0.9
    time.sleep(0.9)  # let the (single-threaded) server finish the slow handler before the next test


def test_openai_500_is_retried_then_succeeds(httpserver, key):
    httpserver.expect_ordered_request("/v1/chat/completions").respond_with_json({"error": "overloaded"}, status=500)
    httpserver.expect_ordered_request("/v1/chat/completions").respond_with_json(completion("Speech."))
    assert oai(httpserver, "debater", max_retries=1).speak(ctx(0)) == "Speech."
    assert len(httpserver.log) == 2
    httpserver.clear()
    httpserver.expect_request("/v1/chat/completions").respond_with_json({"error": "down"}, status=503)
    with pytest.raises(PipelineError, match=r"HTTP 503 \(after 1 retries\)"):
        oai(httpserver, "debater", max_retries=1).speak(ctx(0))
    assert len(httpserver.log) == 2


@pytest.mark.parametrize("body", ['{"choices": "x"}', '{"object": "chat.completion"}', "not json at all",
                                  '{"choices": [{"index": 0, "message": {"role": "assistant", "content": null}}]}'])
def test_openai_malformed_body_is_a_clear_error(httpserver, key, body):
    httpserver.expect_request("/v1/chat/completions").respond_with_data(body, content_type="application/json")
    with pytest.raises(PipelineError, match=r"^openai_compatible judge api \(judge-m at .*\): malformed response"):
        oai(httpserver).judge(jctx([], (0, 1), "empty"))


def test_api_key_never_in_provenance_errors_or_returns(httpserver, key, monkeypatch):
    httpserver.expect_ordered_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": f"Incorrect API key provided: {key}"}}, status=401)
    httpserver.expect_ordered_request("/v1/chat/completions").respond_with_json(completion(f"my key is {key}"))
    d = oai(httpserver, "debater")
    with pytest.raises(PipelineError) as err:
        d.speak(ctx(0))
    assert "HTTP 401" in str(err.value) and key not in str(err.value) and "<redacted>" in str(err.value)
    assert err.value.__cause__ is None and err.value.__context__ is None
    assert d.speak(ctx(0)) == "my key is <redacted>"
    for backend in (d, oai(httpserver), oai(httpserver, api_key_env=None)):
        assert key not in json.dumps(backend.provenance())
    secret_url = httpserver.url_for("/v1").replace("http://", f"http://user:{key}@") + "?token=x"
    assert key not in public_url(secret_url) and "token" not in public_url(secret_url)
    # no api_key_env: the vLLM placeholder, never an ambient OPENAI_API_KEY
    monkeypatch.setenv("OPENAI_API_KEY", key)
    httpserver.clear()
    httpserver.expect_request("/v1/chat/completions", headers={"Authorization": "Bearer EMPTY"}).respond_with_json(
        completion("ok"))
    assert oai(httpserver, "debater", api_key_env=None).speak(ctx(0)) == "ok"
    monkeypatch.delenv("DEBATE_TEST_KEY")
    with pytest.raises(PipelineError, match=r"the API-key variable \$DEBATE_TEST_KEY \(api_key_env\) is not set"):
        oai(httpserver)


def test_anthropic_judge_verdict_without_probabilities(httpserver, key, prompts):
    httpserver.expect_request("/v1/messages", method="POST").respond_with_json(
        {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "stop_reason": "end_turn",
         "stop_sequence": None, "content": [{"type": "text", "text": "B)"}],
         "usage": {"input_tokens": 10, "output_tokens": 1}})
    cfg = ModelConfig(type="anthropic", model="claude-x", base_url=httpserver.url_for(""),
                      api_key_env="DEBATE_TEST_KEY", timeout_s=5.0, max_retries=0, max_new_tokens=5)
    judge = build_judge("claude", cfg, prompts)
    v = judge.judge(jctx([speech(f"<quote>{SUPPORT}</quote>", 0)], (0, 1)))
    assert v.probs == [0.0, 1.0] and not v.has_probabilities and "no probabilities" in v.raw
    request = httpserver.log[0][0]
    assert key in request.headers.get("x-api-key", "") + request.headers.get("Authorization", "")  # the client's choice
    body = json.loads(request.get_data())
    assert body["model"] == "claude-x" and body["max_tokens"] == 5 and "temperature" not in body
    assert body["messages"][0]["content"].endswith("The correct answer is (") and "system" in body
    assert key not in json.dumps(judge.provenance()) and judge.provenance()["probabilities"] is False
