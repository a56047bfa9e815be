"""rlhf_pipeline.clients: the pure helpers; the endpoint's requests are tested against real HTTP servers in
tests/test_debate_backends_api.py (debaters and judges) and tests/test_redteam_target.py (the red-team target)."""

from types import SimpleNamespace

import pytest

from rlhf_pipeline.clients import ChatEndpoint, chat_choice, chat_messages, message_text, read_key, scrub
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
