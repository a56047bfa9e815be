"""rlhf_pipeline.clients: the pure helpers; credentials in a URL, sent as basic auth and query parameters
(pytest-httpserver), never shown, detached from the config at plan time and read back in the job. The endpoint's
other requests are tested against real HTTP servers in tests/test_debate_backends_api.py (debaters and judges)
and tests/test_redteam_target.py (the red-team target); the whole workflow in tests/test_url_credentials_workflow.py."""

from types import SimpleNamespace

import pytest

from rlhf_pipeline.clients import (
    CREDENTIALS_REF,
    ChatEndpoint,
    attach_credentials,
    chat_choice,
    chat_messages,
    detach_credentials,
    message_text,
    read_key,
    scrub,
)
from rlhf_pipeline.debate.config import ModelConfig
from rlhf_pipeline.errors import PipelineError


def test_chat_messages_and_scrub():
    assert chat_messages(None, "hi") == [{"role": "user", "content": "hi"}]
    assert chat_messages("sys", "hi") == [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]
    assert scrub("key sk-1 and sk-1", ["sk-1", ""]) == "key <redacted> and <redacted>"


def test_read_key_names_the_variable_never_the_value(monkeypatch):
    assert read_key(None, "x") is None
    monkeypatch.setenv("CLIENTS_TEST_KEY", "sk-secret")
    assert read_key("CLIENTS_TEST_KEY", "x") == "sk-secret"
    monkeypatch.setenv("CLIENTS_TEST_KEY", "")
    with pytest.raises(PipelineError, match=r"^who: the API-key variable \$CLIENTS_TEST_KEY \(api_key_env\) is not"):
        read_key("CLIENTS_TEST_KEY", "who")


def test_malformed_responses_name_the_endpoint():
    ok = SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content="A"), logprobs=None)])
    assert chat_choice(ok, "w") == ("A", None)
    with pytest.raises(PipelineError, match=r"^w: malformed response: no 'choices' list \(got dict\)"):
        chat_choice({}, "w")
    with pytest.raises(PipelineError, match=r"choices\[0\]\.message\.content is not text"):
        chat_choice(SimpleNamespace(choices=[SimpleNamespace(message=None)]), "w")
    blocks = SimpleNamespace(content=[SimpleNamespace(type="text", text="a"), SimpleNamespace(type="tool_use"),
                                      SimpleNamespace(type="text", text="b")])
    assert message_text(blocks, "w") == "ab"
    with pytest.raises(PipelineError, match="no text block"):
        message_text(SimpleNamespace(content=[]), "w")


def test_endpoint_checks_its_settings_before_any_request(monkeypatch):
    monkeypatch.delenv("CLIENTS_NO_KEY", raising=False)
    with pytest.raises(PipelineError, match=r"^e: no base_url"):
        ChatEndpoint("openai_compatible", "e", "m", None, None, 1.0, 0, 1)
    with pytest.raises(PipelineError, match=r"^e: no api_key_env"):
        ChatEndpoint("anthropic", "e", "m", None, None, 1.0, 0, 1)
    with pytest.raises(PipelineError, match=r"^e: API 'grpc' is not one of"):
        ChatEndpoint("grpc", "e", "m", "http://x", None, 1.0, 0, 1)
    e = ChatEndpoint("openai_compatible", "e", "m", "http://user:pw@host:8000/v1?token=t", None, 1.0, 0, 1)
    assert e.where() == "e (m at http://host:8000/v1)"
    assert e.provenance() == {"backend": "openai_compatible", "model": "m", "base_url": "http://host:8000/v1"}


# --- credentials in the URL (user-info, query): sent as basic auth and query parameters, never shown ----------

USER, PASSWORD, QUERY_KEY = "us3r-name", "s3cr3t-userinfo", "s3cr3t-query"


def completion(content: str) -> dict:
    return {"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "logprobs": None,
                         "finish_reason": "stop"}]}


def with_credentials(url: str, userinfo: str = f"{USER}:{PASSWORD}", query: str = f"api-key={QUERY_KEY}") -> str:
    return url.replace("://", f"://{userinfo}@" if userinfo else "://") + (f"?{query}" if query else "")


def test_url_credentials_reach_the_server_as_query_parameters_and_basic_auth(httpserver):
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json(completion("A"))
    e = ChatEndpoint("openai_compatible", "e", "m", with_credentials(httpserver.url_for("/v1")), None, 5.0, 0, 1)
    assert e.chat(None, "hi") == ("A", None)
    request = httpserver.log[0][0]
    assert request.path == "/v1/chat/completions" and request.args.to_dict(flat=False) == {"api-key": [QUERY_KEY]}
    assert request.authorization.type == "basic"
    assert (request.authorization.username, request.authorization.password) == (USER, PASSWORD)
    assert e.where() == f"e (m at {httpserver.url_for('/v1')})"
    assert e.provenance()["base_url"] == httpserver.url_for("/v1")


def test_anthropic_gets_the_query_and_keeps_its_key(httpserver, monkeypatch):
    monkeypatch.setenv("CLIENTS_TEST_KEY", "sk-ant-k3y")
    httpserver.expect_request("/v1/messages", method="POST").respond_with_json(
        {"id": "m1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
         "stop_sequence": None, "content": [{"type": "text", "text": "B"}], "usage": {"input_tokens": 1,
                                                                                   "output_tokens": 1}})
    url = with_credentials(httpserver.url_for(""), userinfo="")
    assert ChatEndpoint("anthropic", "e", "m", url, "CLIENTS_TEST_KEY", 5.0, 0, 1).message(None, "hi", 5) == "B"
    request = httpserver.log[0][0]
    assert request.path == "/v1/messages" and request.args.to_dict(flat=False) == {"api-key": [QUERY_KEY]}
    assert "sk-ant-k3y" in request.headers.get("x-api-key", "") + request.headers.get("Authorization", "")


def test_url_credentials_that_cannot_be_sent_are_refused_by_name(monkeypatch):
    monkeypatch.setenv("CLIENTS_TEST_KEY", "sk-k3y")
    url = with_credentials("http://host:8000/v1")
    with pytest.raises(PipelineError, match=r"^e: base_url http://host:8000/v1 with credentials: its user-info "
                       r"\(HTTP basic auth\) and api_key_env \(a bearer token\) both need the Authorization header"):
        ChatEndpoint("openai_compatible", "e", "m", url, "CLIENTS_TEST_KEY", 1.0, 0, 1)
    with pytest.raises(PipelineError, match=r"query parameter\(s\) \['k'\] given more than once") as err:
        ChatEndpoint("openai_compatible", "e", "m", "http://host/v1?k=s3cr3t-1&k=s3cr3t-2", None, 1.0, 0, 1)
    assert "s3cr3t" not in str(err.value)


def test_url_credentials_never_in_errors_or_returned_texts(httpserver):
    echoed = f"bad key {QUERY_KEY} for {USER}:{PASSWORD} (s3cr3t%2Bquery s3cr3t+query)"
    httpserver.expect_ordered_request("/v1/chat/completions").respond_with_json({"error": {"message": echoed}},
                                                                                status=401)
    httpserver.expect_ordered_request("/v1/chat/completions").respond_with_json(completion(echoed))
    url = with_credentials(httpserver.url_for("/v1"), query="api-key=s3cr3t-query&b=s3cr3t%2Bquery")
    e = ChatEndpoint("openai_compatible", "e", "m", url, None, 5.0, 0, 1)
    with pytest.raises(PipelineError) as err:
        e.chat(None, "hi")
    assert "HTTP 401" in str(err.value) and "<redacted>" in str(err.value)
    for text in (str(err.value), e.chat(None, "hi")[0]):
        assert not any(s in text for s in ("s3cr3t", USER)), text


def test_detached_credentials_leave_the_public_url_and_a_variable(monkeypatch):
    cfg = {"judges": {"j": ModelConfig(type="openai_compatible", model="m", base_url=with_credentials("http://h:1/v1")),
                      "k": ModelConfig(type="openai_compatible", model="m", base_url="http://h:1/other")}}
    env = detach_credentials(cfg, "debate")
    ref = cfg["judges"]["j"].base_url
    public, var = ref.split(CREDENTIALS_REF)
    assert public == "http://h:1/v1" and var.startswith("RLHF_URL_") and env == {var: with_credentials("http://h:1/v1")}
    assert cfg["judges"]["k"].base_url == "http://h:1/other"  # no credentials: as it was
    again = {"j": ModelConfig(type="openai_compatible", model="m",
                              base_url=with_credentials("http://h:1/v1", f"{USER}:0ther-pw", "api-key=0ther"))}
    assert detach_credentials(again)[var] and again["j"].base_url == ref  # another credential: the same params
    moved = {"j": ModelConfig(type="openai_compatible", model="m", base_url=with_credentials("http://h:1/v2"))}
    detach_credentials(moved)
    assert moved["j"].base_url.startswith("http://h:1/v2#credentials=RLHF_URL_") and moved["j"].base_url != ref
    two = {"a": ModelConfig(type="openai_compatible", model="m", base_url=with_credentials("http://h:1/v1")),
           "b": ModelConfig(type="openai_compatible", model="m", base_url="http://h:1/v1?api-key=0ther-k3y")}
    with pytest.raises(PipelineError, match=r"^config x\.b\.base_url: other credentials than x\.a\.base_url for the "
                       r"same server http://h:1/v1") as err:
        detach_credentials(two, "x")
    assert "0ther" not in str(err.value) and QUERY_KEY not in str(err.value)
    keyed = {"a": ModelConfig(type="anthropic", model="m", base_url=with_credentials("http://h/"), api_key_env="K")}
    with pytest.raises(PipelineError, match=r"^config a\.base_url: http://h/ with credentials: its user-info"):
        detach_credentials(keyed)


def test_the_job_reads_the_full_url_back_or_names_the_missing_variable(monkeypatch):
    cfg = {"j": ModelConfig(type="openai_compatible", model="m", base_url=with_credentials("http://h:1/v1"))}
    (var, full), = detach_credentials(cfg).items()
    monkeypatch.delenv(var, raising=False)
    with pytest.raises(PipelineError, match=rf"^e: base_url http://h:1/v1 takes its credentials from \${var}, which "
                       r"is not set \(the Snakefile sets it"):
        ChatEndpoint("openai_compatible", "e", "m", cfg["j"].base_url, None, 1.0, 0, 1)
    monkeypatch.setenv(var, "http://elsewhere:1/v1?api-key=x")
    with pytest.raises(PipelineError, match=rf"^e: \${var} holds the URL of another server than base_url http://h:1"):
        attach_credentials(cfg["j"].base_url, "e")
    monkeypatch.setenv(var, full)
    assert attach_credentials(cfg["j"].base_url, "e") == full and attach_credentials("http://a/v1", "e") == "http://a/v1"
    assert ChatEndpoint("openai_compatible", "e", "m", cfg["j"].base_url, None, 1.0, 0, 1).url == "http://h:1/v1"
