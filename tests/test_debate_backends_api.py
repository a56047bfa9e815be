"""The API debaters and judges (rlhf_pipeline.debate.backends.api) against a real local HTTP server
(pytest-httpserver) speaking the OpenAI / Anthropic wire format: answers, probabilities from top logprobs,
timeouts, retries, malformed bodies, and the API key never shown."""

from __future__ import annotations

import json
import math
import time

import pytest
from debate_helpers import PASSAGE, PROMPTS, SUPPORT, ctx, jctx, speech
from werkzeug import Response

from rlhf_pipeline.clients import public_url
from rlhf_pipeline.debate.backends import build_debater, build_judge
from rlhf_pipeline.debate.backends.api import letter_probs, parse_letter
from rlhf_pipeline.debate.config import ModelConfig
from rlhf_pipeline.debate.prompts import load_prompts
from rlhf_pipeline.errors import PipelineError

KEY = "sk-test-Zq8SECRETvalue123"


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
    assert d.thread_safe and d.concurrency == d.cfg.concurrency
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
