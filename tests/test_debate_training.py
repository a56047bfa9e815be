"""Training debaters from their own tournaments (rlhf_pipeline.debate.training): SFT rows and DPO
pairs built from transcripts (hand-checked values, training text equal to the generated speech),
the bad inputs, and a killed DPO iteration resumed through the real CLI equal to an uninterrupted one.
The rules themselves run in tests/test_debate_workflow.py (tiny settings)."""

import json
import signal

import pytest
import torch
from test_preemption import ENV, bar_progress, cli, interrupted, same_weights  # noqa: F401

from rlhf_pipeline.debate.backends.hf import chat_text
from rlhf_pipeline.debate.config import DebateSection, DPOSettings, PairSettings
from rlhf_pipeline.debate.prompts import debater_prompt, load_prompts
from rlhf_pipeline.debate.training import (
    preference_pairs,
    quote_tokens_needed,
    sft_rows,
    soft_label,
    speech_context,
    train_debater_dpo,
)
from rlhf_pipeline.debate.types import Question, RoundRecord, Speech, SpeechContext
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import write_jsonl
from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.trainer_checkpoints import latest_valid_checkpoint

PROMPTS = load_prompts("config/debate/prompts.yaml")
Q = Question(id="q1", story_id="s1", passage="Mira Voss lives in Oslo. Tomas Quill lives in Riga.",
             question="Where does Mira Voss live?", answers=["Oslo", "Riga"], correct_index=0, source="test")


def alts(*scores, selected=None):
    best = max(range(len(scores)), key=lambda i: scores[i]) if selected is None else selected
    return [{"raw": f"cand {i} <quote>Mira Voss lives in Oslo.</quote>", "score": s, "selected": i == best}
            for i, s in enumerate(scores)]


def speech(role, side, turn, raw, alternatives=()):
    return Speech(role=role, speaker="m", side=side, turn=turn, raw=raw, shown=raw, alternatives=list(alternatives))


def record(speeches, fmt="debate", status="ok"):
    return RoundRecord(round_id=f"{fmt}/m-vs-m/q1/a0", tournament="t", chunk=0, question_id="q1", story_id="s1",
                       question=Q.question, answers=Q.answers, format=fmt, debaters={"a": "m", "b": "m"},
                       sides={"a": 0, "b": 1}, correct_index=0, answer_order=[0, 1], speeches=speeches, judge="j",
                       probs=[0.5, 0.5], has_probabilities=True, judge_raw="", provenance={}, status=status)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("minilm")


# ---------------------------------------------------------------------------------------- pairs


def test_soft_label_hand_values():
    assert soft_label(0.8, 0.2, 1.0) == pytest.approx(0.8)
    assert soft_label(0.8, 0.2, 2.0) == pytest.approx(0.64 / 0.68)  # 0.941176...
    assert soft_label(0.6, 0.3, 0.5) == pytest.approx(0.6**0.5 / (0.6**0.5 + 0.3**0.5))  # 0.585786...
    assert soft_label(0.5, 0.5, 3.0) == pytest.approx(0.5)
    assert soft_label(0.0, 0.0, 1.0) == 0.5 and soft_label(0.4, 0.0, 1.0) == 1.0


def test_pairs_chosen_is_selected_rejected_is_lowest_and_threshold(tok):
    s1 = speech("debater_a", 0, 0, "x", alts(0.7, 0.2, 0.9, 0.4))      # gap 0.9 - 0.2 = 0.7: kept
    s2 = speech("debater_b", 1, 0, "y", alts(0.50, 0.48, 0.52))        # gap 0.04 <= 0.05: dropped
    s3 = speech("debater_a", 0, 1, "z")                                 # no alternatives: not a candidate
    s4 = speech("debater_b", 1, 1, "w", alts(0.3, 0.1, 0.1, 0.2))     # lowest tied: the first (index 1)
    pairs, counts = preference_pairs([record([s1, s2, s3, s4])], [Q], tok, PROMPTS, "tiny", True,
                                     PairSettings(threshold=0.05, soft_label_power=2.0))
    assert counts == {"speeches": 4, "best_of_n": 3, "kept": 2, "below_threshold": 1}
    a, b = pairs
    assert a["chosen"] == " " + s1.alternatives[2]["raw"] and a["rejected"] == " " + s1.alternatives[1]["raw"]
    assert (a["p_chosen"], a["p_rejected"], a["gap"]) == (0.9, 0.2, pytest.approx(0.7))
    assert a["soft_label"] == pytest.approx(0.81 / (0.81 + 0.04))
    assert b["chosen"] == " " + s4.alternatives[0]["raw"] and b["rejected"] == " " + s4.alternatives[1]["raw"]
    assert (b["role"], b["turn"]) == ("debater_b", 1)


def test_training_text_is_exactly_the_generated_speech(tok):
    """Quote tags, case and spacing as generated: chosen/rejected are the candidates' raw text."""
    raw_best = "i  defend  OSLO . <quote>mira voss lives in oslo.</quote><quote>Made-up</quote>"
    raw_worst = "< quote >riga</quote"
    s = speech("debater_a", 0, 0, raw_best, [{"raw": raw_best, "score": 0.9, "selected": True},
                                             {"raw": raw_worst, "score": 0.1, "selected": False}])
    (pair,), _ = preference_pairs([record([s])], [Q], tok, PROMPTS, "tiny", True, PairSettings(threshold=0.0))
    assert pair["chosen"][1:] == raw_best and pair["rejected"][1:] == raw_worst
    rows = sft_rows([record([s])], [Q], tok, PROMPTS, "tiny", True, seed=0)
    assert rows[0]["completion"] == " " + raw_best and rows[0]["prompt"] == pair["prompt"]


def test_prompt_is_what_the_hf_debater_sees(tok):
    """Turn 2 of a simultaneous debate: each side saw both turn-1 speeches, not the other's turn-2 one."""
    a0, b0 = speech("debater_a", 0, 0, "a zero"), speech("debater_b", 1, 0, "b zero")
    a1, b1 = speech("debater_a", 0, 1, "a one"), speech("debater_b", 1, 1, "b one")
    rec = record([a0, b0, a1, b1])
    rows = sft_rows([rec], [Q], tok, PROMPTS, "default", True, seed=0)
    assert [r["completion"] for r in rows] == ["a zero", "b zero", "a one", "b one"]  # the prompt ends in a newline
    assert all(r["prompt"][-1].isspace() for r in rows)
    ctx = SpeechContext(question=Q, side=1, role="debater_b", format="debate", turn=1, n_turns=2,
                        visible=[a0, b0], round_id=rec.round_id, seed=0)
    assert rows[3]["prompt"] == chat_text(tok, *debater_prompt(PROMPTS, "default", ctx))[0]
    assert "a one" not in rows[3]["prompt"] and "b zero" in rows[3]["prompt"]
    assert speech_context(rec, b1, Q, 2, simultaneous=False).visible == [a0, b0, a1]  # sequential: sees a's
    only = sft_rows([rec, record([a0], status="failed")], [Q], tok, PROMPTS, "tiny", True, max_speeches=2, seed=3)
    assert len(only) == 2 and all(r["completion"] in {" a zero", " b zero", " a one", " b one"} for r in only)


def test_chat_template_prompts_train_on_the_debaters_tokens():
    """A Llama-3-style template writes <|begin_of_text|> and the tokenizer adds BOS too: the rows' prompt,
    tokenised as TRL's trainers do (with special tokens), is the hf debater's prompt tokens (one BOS)."""
    from rlhf_pipeline.models.vocab import train_tokenizer

    llama = train_tokenizer([Q.passage, Q.question, "Debater argue quote story"], "llama3", vocab_size=300)
    s = speech("debater_a", 0, 0, "Oslo", [{"raw": "Oslo", "score": 0.9, "selected": True},
                                           {"raw": "Riga", "score": 0.1, "selected": False}])
    (pair,), _ = preference_pairs([record([s])], [Q], llama, PROMPTS, "default", True, PairSettings(threshold=0.0))
    (row,) = sft_rows([record([s])], [Q], llama, PROMPTS, "default", True, seed=0)
    ctx = speech_context(record([s]), s, Q, 1, True)
    text, special = chat_text(llama, *debater_prompt(PROMPTS, "default", ctx))
    debater_ids = llama(text, add_special_tokens=special)["input_ids"]
    assert debater_ids.count(llama.bos_token_id) == 1
    assert llama(text=row["prompt"])["input_ids"] == debater_ids == llama(text=pair["prompt"])["input_ids"]
    # the template's turn header ends in a blank line: the speech follows it with no added space
    assert row["prompt"].endswith("\n\n") and (row["completion"], pair["chosen"], pair["rejected"]) == (
        "Oslo", "Oslo", "Riga")


def test_bad_inputs_are_one_clear_line(tok):
    no_bon = record([speech("debater_a", 0, 0, "x"), speech("debater_b", 1, 0, "y")])
    with pytest.raises(PipelineError, match=r"^t.jsonl: no speech has best-of-N alternatives \(2 speeches\)"):
        preference_pairs([no_bon], [Q], tok, PROMPTS, "tiny", True, PairSettings(), where="t.jsonl")
    flat = record([speech("debater_a", 0, 0, "x", alts(0.5, 0.5))])
    with pytest.raises(PipelineError, match=r"0 of 1 best-of-N speeches .* > debate.training.pairs.threshold=0.05"):
        preference_pairs([flat], [Q], tok, PROMPTS, "tiny", True, PairSettings())
    base = {"debaters": {"x": {"type": "extractive"}}, "judges": {"j": {"type": "quote_similarity"}},
            "tournaments": {"t": {"debaters": ["x"], "judge": "j"}}}
    for training, msg in [
        ({"source": "t", "judge": "j", "iterations": 0}, "debate.training.iterations: got 0, expected >= 1"),
        ({"source": "t", "judge": "j", "selfplay": {"best_of_n": {"n": 1}}},
         "debate.training.selfplay.best_of_n.n: got 1, expected n >= 2"),
        ({"source": "nope", "judge": "j"}, "debate.training.source: got 'nope'"),
        ({"source": "t", "judge": "j", "dpo_per_iteration": {3: {"beta": 1}}},
         "debate.training.dpo_per_iteration: got '3', expected iteration numbers 1..2"),
        ({"source": "t", "judge": "j", "dpo_per_iteration": {2: {"betta": 1}}},
         r"debate.training.dpo_per_iteration.2: unknown key\(s\) \['betta'\]"),
    ]:
        with pytest.raises(PipelineError, match=msg):
            DebateSection.from_dict({**base, "training": training})


def test_derived_checkpoints_and_tournaments():
    s = DebateSection.from_dict({
        "debaters": {"x": {"type": "extractive"}}, "judges": {"j": {"type": "quote_similarity"}},
        "tournaments": {"t": {"debaters": ["x"], "judge": "j"}},
        "training": {"source": "t", "judge": "j", "iterations": 3, "dpo_per_iteration": {2: {"beta": 0.5}}}})
    full = s.with_training()
    assert list(full.tournaments) == ["t", "dpo/iter1", "dpo/iter2", "dpo/iter3", "strength"]
    assert full.tournaments["dpo/iter1"].debaters == ["sft"] and full.tournaments["dpo/iter3"].debaters == ["dpo2"]
    assert full.tournaments["strength"].debaters == ["sft", "sft_bo4", "dpo1", "dpo1_bo4", "dpo2", "dpo2_bo4",
                                                     "dpo3", "dpo3_bo4"]
    assert full.debaters["dpo2_bo4"].model == "results/debate/dpo/iter2/model"
    assert full.debaters["dpo2_bo4"].best_of_n.n == 4 and full.debaters["dpo2"].best_of_n is None
    assert [s.training.dpo_for(i).beta for i in (1, 2, 3)] == [0.1, 0.5, 0.1]


def test_minilm_tokenizer_needs_quote_tokens(tok):
    assert quote_tokens_needed(tok) == ["<quote>", "</quote>"]
    tok2 = load_tokenizer("minilm")
    tok2.add_tokens(["<quote>", "</quote>"])
    assert quote_tokens_needed(tok2) == []


# ------------------------------------------------------------------------------- DPO resume (CLI)

TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}
DPO_CFG = dict(epochs=3, batch_size=4, max_length=48, learning_rate=1e-3, beta=0.1, nll_weight=0.5, seed=1)
DPO_STEPS = 3 * 5  # 18 pairs / 4 per batch = 5 steps per epoch; distinct from the dataset size


@pytest.fixture(scope="module")
def dpo_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("dpo")
    tok = load_tokenizer("minilm")
    torch.manual_seed(0)
    lm = load_causal_lm(None, tok, tiny=TINY, seed=0)
    lm.save_pretrained(d / "init")
    tok.save_pretrained(d / "init")
    words = ["oslo", "riga", "monday", "kettle", "lamps", "voss", "quill", "porto", "friday"]
    pairs = [{"prompt": f"story: {words[i % 9]} {words[(i + 3) % 9]}\nspeech:",
              "chosen": f" <quote>{words[i % 9]}</quote>", "rejected": f" {words[(i + 5) % 9]} {words[i % 4]}"}
             for i in range(18)]
    write_jsonl(d / "pairs.jsonl", pairs)
    return d


def test_dpo_sigterm_then_rerun_equals_uninterrupted(dpo_inputs, tmp_path):
    straight, run = tmp_path / "straight", tmp_path / "run"
    pairs = [json.loads(line) for line in (dpo_inputs / "pairs.jsonl").read_text().splitlines()]
    train_debater_dpo(DPOSettings.from_dict(DPO_CFG), dpo_inputs / "init", pairs, straight / "model")
    args = ["debate-dpo", "--config", json.dumps(DPO_CFG), "--init", dpo_inputs / "init", "--pairs",
            dpo_inputs / "pairs.jsonl", "--out", run / "model", "--ckpt-dir", run / "ckpt", "--manifest",
            run / "manifest.json"]
    rc, err = interrupted(args, bar_progress(DPO_STEPS), 6)
    assert rc == 128 + signal.SIGTERM, err[-3000:]
    ckpt = latest_valid_checkpoint(run / "ckpt")
    assert ckpt is not None and not (run / "model").exists() and not (run / "manifest.json").exists()
    r = cli(*args)
    assert f"resuming from {ckpt}" in r.stderr
    same_weights(straight / "model" / "model.safetensors", run / "model" / "model.safetensors")
    metrics = json.loads((run / "model" / "dpo_metrics.json").read_text())
    assert metrics["resumed_from"] == ckpt.name and metrics["n_pairs"] == 18
    assert not list((run / "ckpt").glob("checkpoint-*"))
