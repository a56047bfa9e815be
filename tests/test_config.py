"""Config sections (rlhf_pipeline.config): one typed definition per setting, with its help and schema,
validated however the section is built; --config takes JSON or a file."""

import dataclasses

import pytest

from rlhf_pipeline.config import Section, bad, json_schema, load_config_arg
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.ppo import PPOConfig
from rlhf_pipeline.preferences import PreferencesConfig
from rlhf_pipeline.reward.config import RMConfig
from rlhf_pipeline.sft import SFTConfig
from rlhf_pipeline.workflow_config import WorkflowConfig


def _sections(cls=WorkflowConfig, seen=None):
    import typing

    seen = set() if seen is None else seen
    for tp in typing.get_type_hints(cls).values():
        for t in (tp, *typing.get_args(tp)):
            if isinstance(t, type) and issubclass(t, Section) and t not in seen:
                seen.add(t)
                _sections(t, seen)
    return seen


def test_every_section_documents_every_setting():
    sections = _sections()
    assert {PPOConfig, SFTConfig, RMConfig, PreferencesConfig} <= sections and len(sections) >= 14
    for cls in sections:
        for f in dataclasses.fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text"
        assert set(json_schema(cls)["properties"]) == {f.name for f in dataclasses.fields(cls)}


def test_direct_construction_validates_like_from_dict():
    for build in (lambda: PPOConfig(lam=5), lambda: RMConfig(epochs=0), lambda: SFTConfig(batch_size=0),
                  lambda: PPOConfig(batch_size=8, mini_batch_size=3)):
        with pytest.raises(PipelineError, match=r"^config [a-z_.]+: got "):
            build()
    assert SFTConfig(lora={"r": 4}).lora.r == 4 and SFTConfig(epochs=2).epochs == 2.0


def test_config_arg_accepts_json_and_files(tmp_path):
    assert load_config_arg('{"epochs": 2}') == {"epochs": 2}
    f = tmp_path / "s.yaml"
    f.write_text("epochs: 3\n")
    assert load_config_arg(str(f)) == {"epochs": 3}
    with pytest.raises(PipelineError, match="neither a JSON object nor an existing file"):
        load_config_arg(str(tmp_path / "missing.yaml"))


def test_a_config_error_shows_a_url_without_its_credentials_and_no_secret_value():
    with pytest.raises(PipelineError) as e:
        bad("debate.judges.j.base_url", "http://user:pw-secret@host:8000/v1?api-key=q-secret", "something else")
    assert "'http://host:8000/v1'" in str(e.value) and "secret" not in str(e.value)
    with pytest.raises(PipelineError, match="got <redacted>, expected"):
        bad("redteam.target.api_key", "k-secret", "something else")
