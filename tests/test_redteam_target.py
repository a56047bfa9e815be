"""Red-team targets (rlhf_pipeline.redteam.target): the local model is deterministic and leaves the global RNG
alone; the OpenAI-compatible target against a real HTTP server, unreachable or unconfigured in one line."""

from __future__ import annotations

import json
import time

import pytest
import torch

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.redteam.config import TargetConfig
from rlhf_pipeline.redteam.target import LocalTarget, OpenAITarget, build_target


def test_local_target_is_deterministic_and_leaves_the_global_rng_alone(tiny_lm):
    texts = ["name some fruits. answer:", "hello", ""]
    sampled = LocalTarget(tiny_lm, max_new_tokens=5, greedy=False, temperature=1.0, batch_size=2, seed=1)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = sampled.respond(texts)
    assert torch.rand(1) == before  # the caller's RNG stream is untouched
    assert a == sampled.respond(texts) and len(a) == 3 and all(isinstance(x, str) for x in a)
    other = LocalTarget(tiny_lm, max_new_tokens=5, greedy=False, batch_size=2, seed=2)
    assert other.respond(texts * 3) != sampled.respond(texts * 3)
    cfg = TargetConfig(max_new_tokens=5, greedy=True, batch_size=1)
    greedy = build_target(cfg, tiny_lm)
    assert greedy.respond(texts) == greedy.respond(list(reversed(texts)))[::-1]
    assert greedy.provenance()["backend"] == "hf" and not greedy.include_prompt
    with pytest.raises(PipelineError, match=r"redteam.target.model: null and no default"):
        build_target(TargetConfig(), None)
    with pytest.raises(PipelineError, match=r"^redteam.target.model: \S+ does not exist \(give a model directory"):
        build_target(TargetConfig(model=tiny_lm + "-missing"), None)


def completion(content: str) -> dict:
    return {"id": "c1", "object": "chat.completion", "created": 0, "model": "target-m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


def test_openai_target_against_a_real_http_server(httpserver, monkeypatch):
    key = "sk-test-SECRET-123"
    monkeypatch.setenv("REDTEAM_TEST_KEY", key)
    httpserver.expect_request("/v1/chat/completions", method="POST",
                              headers={"Authorization": f"Bearer {key}"}).respond_with_json(completion(" a reply "))
    cfg = TargetConfig(backend="openai_compatible", model="target-m", base_url=httpserver.url_for("/v1"),
                       api_key_env="REDTEAM_TEST_KEY", timeout_s=5.0, max_retries=0, concurrency=2,
                       max_new_tokens=7, include_prompt=True)
    target = build_target(cfg, None)  # probes the server once
    assert target.respond(["attack one", "attack two"]) == ["a reply", "a reply"]
    bodies = [json.loads(req.get_data()) for req, _ in httpserver.log]
    assert bodies[0]["max_tokens"] == 1 and len(bodies) == 3
    assert {b["messages"][0]["content"] for b in bodies[1:]} == {"attack one", "attack two"}
    assert all(b["max_tokens"] == 7 and b["temperature"] == 0.0 and b["model"] == "target-m" for b in bodies[1:])
    assert target.include_prompt and key not in json.dumps(target.provenance())
    httpserver.clear()
    httpserver.expect_request("/v1/chat/completions").respond_with_json({"error": {"message": f"bad key {key}"}},
                                                                        status=401)
    with pytest.raises(PipelineError) as e:
        target.respond(["x"])
    assert "HTTP 401" in str(e.value) and key not in str(e.value) and "\n" not in str(e.value)


def test_openai_target_unreachable_or_unconfigured_fails_with_one_line(monkeypatch):
    cfg = TargetConfig(backend="openai_compatible", model="m", base_url="http://127.0.0.1:9/v1", timeout_s=2.0,
                       max_retries=0)
    t0 = time.time()
    with pytest.raises(PipelineError) as e:
        build_target(cfg, None)
    msg = str(e.value)
    assert msg.startswith("redteam target (openai_compatible) (m at http://127.0.0.1:9/v1): cannot connect")
    assert "\n" not in msg and time.time() - t0 < 10
    monkeypatch.delenv("REDTEAM_MISSING_KEY", raising=False)
    with pytest.raises(PipelineError, match=r"the API-key variable \$REDTEAM_MISSING_KEY \(api_key_env\) is not set"):
        OpenAITarget(TargetConfig(backend="openai_compatible", model="m", base_url="http://127.0.0.1:9/v1",
                                  api_key_env="REDTEAM_MISSING_KEY"))
