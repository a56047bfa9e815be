"""Model references and checks (rlhf_pipeline.models): hub id or local directory, decided once; a misspelled
hub id fails at plan time when the hub answers."""

from pathlib import Path

import pytest

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import HubProbe, check_model, model_ref


def _fake_hub(httpserver):
    """A local stand-in for the hub's repo-info API: gpt2 exists, gtp2 does not."""
    httpserver.expect_request("/api/models/gpt2/revision/main").respond_with_json({"id": "gpt2", "sha": "0" * 40})
    httpserver.expect_request("/api/models/gpt2").respond_with_json({"id": "gpt2", "sha": "0" * 40})
    httpserver.expect_request("/api/models/gtp2").respond_with_json(
        {"error": "Repository not found"}, status=401, headers={"X-Error-Code": "RepoNotFound"})  # the hub's answer
    return HubProbe(timeout=5, endpoint=httpserver.url_for("").rstrip("/"))


def test_a_misspelled_hub_id_fails_at_plan_time_when_the_hub_answers(httpserver):
    hub = _fake_hub(httpserver)
    check_model("config sft.model", "gpt2", offline=False, hub=hub)
    with pytest.raises(PipelineError, match=r"config sft.model: 'gtp2' does not exist on the Hugging Face hub"):
        check_model("config sft.model", "gtp2", offline=False, hub=hub)
    assert hub.warning() is None


def test_model_ref_decides_hub_or_local_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    assert model_ref("minilm").local and Path(model_ref("minilm").path).is_dir()
    assert not model_ref("EleutherAI/pythia-70m").local and not model_ref("gpt2").local
    for local in ("results/gold_rm/model", "./m", "/abs/m", "~/m", "a/b/c"):
        assert model_ref(local).local, local
    check_model("x", "minilm", kind="tokenizer")
    check_model("x", "EleutherAI/pythia-70m", offline=False)  # online: a hub id is not checked here
