"""The published human debates (Michael et al. 2023) as tournament ``human`` (rlhf_pipeline.debate.human), on
tests/fixtures/debates-readable.jsonl, shaped like julianmichael/debate's pub/debates-readable.jsonl: two
human debates (a later export with room names, speakers and ``<indices>`` markers, and an older one without
them, whose judge was wrong), a consultancy, a debate without a verdict (with a ``correctAnswer``), an AI
debate (a GPT-4 debater) on the first debate's question and an offline judge's session of the first debate;
tests/fixtures/debates-readable-malformed.jsonl has a malformed record on line 2. Then the real rules on
tiny settings: debate_human, its debate_summary, re-judging it and an SFT debater trained on it."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rlhf_pipeline.debate.backends.simple import OfflineDebater, OfflineJudge, load_records
from rlhf_pipeline.debate.config import DebateSection, HumanDebatesConfig, ModelConfig
from rlhf_pipeline.debate.data import load_questions
from rlhf_pipeline.debate.human import convert_human_debates, parse_debate, read_human_debates
from rlhf_pipeline.debate.types import JudgeContext, SpeechContext
from rlhf_pipeline.errors import PipelineError

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests/fixtures/debates-readable.jsonl"
MALFORMED = ROOT / "tests/fixtures/debates-readable-malformed.jsonl"
THRESHOLD = 90.0
LIGHTHOUSE = "debate/human-vs-human/the-lighthouse-keeper-0/a0"


def convert(tmp_path: Path, **settings):
    cfg = HumanDebatesConfig(path=str(settings.pop("path", SOURCE)), **settings)
    out = tmp_path / "human"
    counts = convert_human_debates(cfg, out / "questions.jsonl", out / "transcripts/chunk0.jsonl", THRESHOLD)
    records = {r.round_id: r for r in load_records(out)}
    return counts, records, {q.id: q for q in load_questions(out / "questions.jsonl")}, out


def rows() -> list[dict]:
    return [json.loads(line) for line in SOURCE.read_text().splitlines()]


def test_the_published_shape_becomes_questions_and_rounds(tmp_path):
    counts, records, questions, _ = convert(tmp_path)
    assert counts["kept"] == {"human_debate": 2, "human_consultancy": 1}
    assert counts["skipped"] == {"offline_judge": 1, "no_speeches": 0, "setting": 1, "unjudged": 1,
                                 "no_correct_answer": 0, "duplicate_question": 0, "over_max": 0}
    assert counts["sha256"] == hashlib.sha256(SOURCE.read_bytes()).hexdigest() and counts["debates"] == 6
    assert sorted(records) == ["consultancy/human/the-lighthouse-keeper-3/a1", "debate/human-vs-human/20002_77124/a0",
                               LIGHTHOUSE]
    src = rows()[0]
    rec = records[LIGHTHOUSE]
    assert (rec.tournament, rec.chunk, rec.format, rec.status, rec.judge) == ("human", 0, "debate", "ok", "human_judge")
    assert rec.debaters == {"a": "human", "b": "human"} and rec.sides == {"a": 0, "b": 1}
    assert rec.answers == src["answers"] and rec.correct_index == 0 and rec.answer_order == [0, 1]
    # Debater index 0 is slot a (debater_a, answer 0), index 1 slot b; turns count per role, in file order
    assert [(s.role, s.side, s.turn) for s in rec.speeches] == [("debater_a", 0, 0), ("debater_b", 1, 0),
                                                                 ("debater_a", 0, 1), ("debater_b", 1, 1)]
    # raw: the speech without the export's <indices> markers; shown/quotes: verified against the story
    first = rec.speeches[0]
    assert first.raw == ("Martha came on her own: <quote>She told the harbour master that she had come to keep the "
                         "light, though nobody had hired her.</quote> Nobody sent her.")
    assert "<v_quote>" in first.shown and "<indices>" not in first.shown + first.raw
    assert all(q.status == "verified" for s in rec.speeches for q in s.quotes)
    # the verdict: the last Judge turn with probabilities (by answer index), its text
    assert rec.probs == [0.8, 0.2] and rec.has_probabilities and rec.judge_raw == "A's timeline convinces me."
    assert rec.provenance["human"] == {"backend": "human", "source": str(SOURCE), "sha256": counts["sha256"],
                                       "line": 1, "people": ["Cheerful Otter", "Quiet Heron"]}
    assert rec.provenance["human_judge"]["people"] == ["Brave Lynx"]
    q = questions["the-lighthouse-keeper-0"]
    assert (q.passage, q.story_id, q.question, q.correct_index) == (src["story"], "20001", src["question"], 0)
    assert q.source == "human/human_debate/debates-readable.jsonl:1"


def test_older_export_wrong_judge_and_consultancy(tmp_path):
    _, records, questions, _ = convert(tmp_path)
    old = records["debate/human-vs-human/20002_77124/a0"]  # no roomName: {storyId}_{debateId}
    # the judge favoured answer 0 and was wrong (isJudgeCorrect false): answer 1 is correct
    assert old.correct_index == 1 and questions["20002_77124"].correct_index == 1 and old.probs == [0.65, 0.35]
    assert [q.status for s in old.speeches for q in s.quotes] == ["unverified", "verified"]
    assert "<u_quote>" in old.speeches[0].shown and old.provenance["human"]["people"] == []
    cons = records["consultancy/human/the-lighthouse-keeper-3/a1"]  # only Debater index 1 speaks
    assert cons.format == "consultancy" and cons.debaters == {"a": "human"} and cons.sides == {"a": 1}
    assert [(s.role, s.side, s.turn) for s in cons.speeches] == [("consultant", 1, 0), ("consultant", 1, 1)]
    assert cons.probs == [0.1, 0.9] and cons.correct_index == 1 and cons.judge_raw == "Convinced."


def test_unjudged_debate_is_a_round_whose_verdict_failed(tmp_path):
    counts, records, _, _ = convert(tmp_path, judged_only=False)
    rec = records["debate/human-vs-human/north-of-svalbard-2/a0"]
    assert rec.status == "failed" and rec.failed_stage == "verdict" and rec.probs is None
    assert rec.correct_index == 0  # its correctAnswer
    assert rec.error == f"no judge verdict in {SOURCE}:4" and counts["unjudged_kept"] == 1


def test_settings_deduplicate_and_max_debates(tmp_path):
    counts, records, _, _ = convert(tmp_path, settings=["human_debate", "ai_debate"])
    ai = records["debate/human-vs-gpt4/the-lighthouse-keeper-ai-1/a0"]  # the GPT-4 debater is index 1: slot b
    assert ai.debaters == {"a": "human", "b": "gpt4"} and ai.speeches[1].speaker == "gpt4"
    assert sorted(ai.provenance) == ["gpt4", "human", "human_judge"] and counts["skipped"]["setting"] == 1
    counts, records, _, _ = convert(tmp_path / "dedup", settings=["human_debate", "ai_debate"], deduplicate=True)
    assert counts["skipped"]["duplicate_question"] == 1 and not any("gpt4" in r for r in records)
    counts, records, _, _ = convert(tmp_path / "max", max_debates=1)
    assert list(records) == [LIGHTHOUSE] and counts["skipped"]["over_max"] == 2


@pytest.mark.parametrize("edit, expected", [
    (lambda r: r.update(correctAnswer=r["answers"][1]), 1),  # correctAnswer first, as the research code
    (lambda r: r["turns"][-1].update(probabilities=[0.5, 0.5]), None),  # a 0.5 verdict decides nothing
    (lambda r: r.update(isJudgeCorrect=None), None),
])
def test_correct_answer(edit, expected):
    row = rows()[0]
    edit(row)
    assert parse_debate(row, "f.jsonl", 1).correct_index() == expected


def test_offline_backends_replay_the_human_rounds(tmp_path):
    _, records, questions, out = convert(tmp_path)
    rec = records[LIGHTHOUSE]
    cfg = ModelConfig(type="offline", transcripts=str(out))
    debater, judge = OfflineDebater("human", cfg, {}), OfflineJudge("human_judge", cfg, {})
    q = questions["the-lighthouse-keeper-0"]
    ctx = SpeechContext(q, 1, "debater_b", "debate", 1, 2, rec.speeches[:3], LIGHTHOUSE, 0)
    assert debater.speak(ctx) == rec.speeches[3].raw
    verdict = judge.judge(JudgeContext(q, "debate", [1, 0], rec.speeches, LIGHTHOUSE, 0))
    assert verdict.probs == [0.2, 0.8]  # by shown position: answer 1 shown first


def test_sft_rows_train_on_the_human_speeches(tmp_path):
    from rlhf_pipeline.debate.prompts import load_prompts
    from rlhf_pipeline.debate.training import sft_rows
    from rlhf_pipeline.models import load_tokenizer

    _, records, questions, _ = convert(tmp_path)
    rows_ = sft_rows(records.values(), questions.values(), load_tokenizer("minilm"),
                     load_prompts(ROOT / "config/debate/prompts.yaml"), "default", True, ["human"], seed=0)
    speeches = [s.raw for r in records.values() for s in r.speeches]
    assert [row["completion"].lstrip() for row in rows_] == speeches and len(speeches) == 8
    assert "Gull Rock" in rows_[0]["prompt"]  # the story is the passage the debater is given


# --- bad input: one line naming the file, the record (line) and the field ------------------------------------


def _edited(tmp_path: Path, edit) -> Path:
    data = rows()
    edit(data)
    path = tmp_path / "edited.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in data))
    return path


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d.__setitem__(2, [1, 2]), ":3: expected a JSON object (one debate), got list"),
    (lambda d: d.__setitem__(1, "{not json"), ":2: not valid JSON"),
    (lambda d: d[0].pop("story"), ":1: missing field 'story'"),
    (lambda d: d[1].update(answers=["a", "b", "c"]), ":2: field 'answers' must be a list of two non-empty strings"),
    (lambda d: d[0]["turns"][2].update(role="Moderator"), ":1: field 'turns[2].role' must be 'Debater', 'Judge'"),
    (lambda d: d[0]["turns"][0].update(index=2), ":1: field 'turns[0].index' must be 0 or 1 for a debater's turn"),
    (lambda d: d[0]["turns"][0].update(text=None), ":1: missing field 'turns[0].text'"),
    (lambda d: d[2]["turns"][3].update(probabilities=[0.5, 0.6]), ":3: field 'turns[3].probabilities': "
     "probabilities must sum to 1"),
    (lambda d: d[0].update(isJudgeCorrect="yes"), ":1: field 'isJudgeCorrect' must be true, false or null"),
    (lambda d: d[2].update(roomName="the-lighthouse-keeper-0"), ":3: field 'roomName'/'debateId': debate id "
     "'the-lighthouse-keeper-0' repeats line 1"),
])
def test_malformed_records_are_one_line_naming_file_line_and_field(tmp_path, edit, expected):
    path = _edited(tmp_path, edit)
    with pytest.raises(PipelineError) as e:
        read_human_debates(path)
    assert str(e.value).startswith(str(path)) and expected in str(e.value) and "\n" not in str(e.value)


def test_malformed_fixture_and_missing_file(tmp_path):
    with pytest.raises(PipelineError, match=r"debates-readable-malformed\.jsonl:2: field 'turns\[3\]\.probabilities'"
                       r": must be 2 probabilities in \[0, 1\], got \[0\.9\]"):
        convert(tmp_path, path=MALFORMED)
    with pytest.raises(PipelineError, match="nowhere.jsonl: file not found"):
        convert(tmp_path, path=tmp_path / "nowhere.jsonl")
    with pytest.raises(PipelineError, match="config debate.human.path: got None"):
        convert_human_debates(HumanDebatesConfig(), tmp_path / "q.jsonl", tmp_path / "t.jsonl", THRESHOLD)
    with pytest.raises(PipelineError, match="no debate kept of 6"):
        convert(tmp_path, settings=["ai_consultancy"])
    assert not (tmp_path / "human").exists()  # nothing written


def test_config_makes_human_a_training_source():
    base = {"debaters": {"x": {"type": "deterministic"}}, "judges": {"j": {"type": "deterministic"}},
            "training": {"source": "human", "judge": "j"}}
    with pytest.raises(PipelineError, match="config debate.training.source: got 'human', expected a name from "
                       r"debate.tournaments \[\], or human with debate.human.path set"):
        DebateSection.from_dict(base)
    section = DebateSection.from_dict({**base, "human": {"path": "d.jsonl"}})
    assert section.with_training().human.path == "d.jsonl"
    assert section.human_tournament()["human"].debaters == ["human"]
    with pytest.raises(PipelineError, match=r"source_debaters: got \['gpt4'\], expected debaters of tournament "
                       r"human \['human'\]"):
        DebateSection.from_dict({**base, "human": {"path": "d.jsonl"},
                                 "training": {**base["training"], "source_debaters": ["gpt4"]}})
    with pytest.raises(PipelineError, match="config debate.tournaments.human: got 'human', expected another name"):
        DebateSection.from_dict({**base, "training": {}, "human": {"path": "d.jsonl"},
                                 "tournaments": {"human": {"debaters": ["x"], "judge": "j"}}})


def test_cli_stage_writes_the_files_and_fails_in_one_line(tmp_path):
    def stage(config: dict) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rlhf_pipeline", "debate-human", "--config", json.dumps(config),
                               "--quote-fuzzy-threshold", str(THRESHOLD), "--questions", str(tmp_path / "q.jsonl"),
                               "--out", str(tmp_path / "t/chunk0.jsonl"), "--manifest", str(tmp_path / "m.json")],
                              capture_output=True, text=True, timeout=120)

    r = stage({"path": str(SOURCE)})
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["kept"] == {"human_debate": 2, "human_consultancy": 1} and manifest["sha256"]
    assert len(load_questions(tmp_path / "q.jsonl")) == 3
    r = stage({"path": str(MALFORMED)})
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "malformed.jsonl:2: field" in r.stderr


# --- the rules on tiny settings ------------------------------------------------------------------------------

TARGETS = ["results/debate/human/judge.csv", "results/debate/human/rejudge/coin/judge.csv", "results/debate/sft/model"]


def snakemake(workdir: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(config), "--cores", "2", *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f"snakemake failed ({r.returncode}):\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


@pytest.mark.integration
def test_rules_convert_summarise_rejudge_and_train_on_the_human_debates(tmp_path):
    cfg = yaml.safe_load((ROOT / "tests/configs/tiny.yaml").read_text())
    shutil.copy(SOURCE, tmp_path / "debates-readable.jsonl")
    cfg["debate"]["human"] = {"path": "debates-readable.jsonl", "judged_only": False, "bootstrap": 10}
    cfg["debate"]["training"].update(source="human", source_debaters=["human"])
    config = tmp_path / "human.yaml"
    config.write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path, config, *TARGETS)
    res = tmp_path / "results/debate/human"
    assert [json.loads(line)["round_id"] for line in (res / "transcripts/chunk0.jsonl").read_text().splitlines()] == [
        LIGHTHOUSE, "debate/human-vs-human/20002_77124/a0", "consultancy/human/the-lighthouse-keeper-3/a1",
        "debate/human-vs-human/north-of-svalbard-2/a0"]
    rounds = pd.read_csv(res / "rounds.csv")
    assert rounds["status"].tolist().count("failed") == 1 and set(rounds["format"]) == {"debate", "consultancy"}
    assert rounds.set_index("round_id").loc[LIGHTHOUSE, "p_correct"] == 0.8
    judge = pd.read_csv(res / "judge.csv").set_index("format")
    assert judge.loc["debate", "rounds"] == 2 and judge.loc["consultancy", "rounds"] == 1
    rejudged = pd.read_csv(res / "rejudge/coin/rounds.csv")  # the coin judges the unjudged debate too
    assert (rejudged["status"] == "ok").all() and len(rejudged) == 4
    assert json.loads((res / "manifest.json").read_text())["sha256"] == hashlib.sha256(SOURCE.read_bytes()).hexdigest()
    model = tmp_path / "results/debate/sft"
    assert (model / "model/model.safetensors").is_file()
    assert json.loads((model / "manifest.json").read_text())["speeches"] == 8  # every speech but the unjudged round's
    assert "Nothing to be done" in (lambda r: r.stdout + r.stderr)(snakemake(tmp_path, config, "-n", *TARGETS))
