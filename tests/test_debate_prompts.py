"""Debate prompts (rlhf_pipeline.debate.prompts): the prompts file loads and every template renders, bad
placeholders and keys name the file, set and key, and transcripts show speeches as the judge sees them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from debate_helpers import PROMPTS, SUPPORT, Q, jctx, speech

from rlhf_pipeline.debate.backends import build_debater
from rlhf_pipeline.debate.config import ModelConfig
from rlhf_pipeline.debate.prompts import FIELDS, OPTIONAL, format_transcript, judge_prompt, load_prompts, prompt_set
from rlhf_pipeline.debate.types import render
from rlhf_pipeline.errors import PipelineError


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
