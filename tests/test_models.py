"""Model references and checks (rlhf_pipeline.models): hub id or local directory, decided once."""

from pathlib import Path

from rlhf_pipeline.models import check_model, model_ref


def test_model_ref_decides_hub_or_local_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    assert model_ref("minilm").local and Path(model_ref("minilm").path).is_dir()
    assert not model_ref("EleutherAI/pythia-70m").local and not model_ref("gpt2").local
    for local in ("results/gold_rm/model", "./m", "/abs/m", "~/m", "a/b/c"):
        assert model_ref(local).local, local
    check_model("x", "minilm", kind="tokenizer")
    check_model("x", "EleutherAI/pythia-70m", offline=False)  # online: a hub id is not checked here
