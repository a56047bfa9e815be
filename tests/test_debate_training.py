"""Training debaters from their own tournaments (rlhf_pipeline.debate.training): SFT rows and DPO
pairs built from transcripts (hand-checked values, training text equal to the generated speech),
the bad inputs, and a killed DPO iteration resumed through the real CLI equal to an uninterrupted one.
The rules themselves run in tests/test_debate_workflow.py (tiny settings)."""

import json
import signal

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from test_preemption import ENV, bar_progress, cli, interrupted, same_weights  # noqa: F401

from rlhf_pipeline.debate.backends.hf import chat_text
from rlhf_pipeline.debate.config import DebateSection, DPOSettings, PairSettings
from rlhf_pipeline.debate.prompts import debater_prompt, load_prompts
from rlhf_pipeline.debate.training import (
    branch_scores,
    dpo_trainer,
    dpo_trainer_config,
    pair_labels,
    preference_pairs,
    quote_tokens_needed,
    sft_rows,
    soft_label,
    soft_label_trainer,
    speech_context,
    strength_table,
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
    assert counts == {"speeches": 4, "best_of_n": 3, "branched": 0, "kept": 2, "below_threshold": 1}
    a, b = pairs
    assert a["chosen"] == " " + s1.alternatives[2]["raw"] and a["rejected"] == " " + s1.alternatives[1]["raw"]
    assert (a["p_chosen"], a["p_rejected"], a["gap"]) == (0.9, 0.2, pytest.approx(0.7))
    assert a["soft_label"] == pytest.approx(0.81 / (0.81 + 0.04))
    assert b["chosen"] == " " + s4.alternatives[0]["raw"] and b["rejected"] == " " + s4.alternatives[1]["raw"]
    assert (b["role"], b["turn"]) == ("debater_b", 1)


def test_unverified_penalty_picks_chosen_and_rejected_by_judge_score_less_failed_quotes(tok):
    """The judge ignores an unverified quote beside a verified one: with the penalty the selected candidate
    (0.9, one garbled quote) is no longer chosen; the best clean one (0.6) is, the garbled one rejected."""
    cands = [{"raw": "a", "score": 0.9, "selected": True, "unverified": 1},
             {"raw": "b", "score": 0.6, "selected": False, "unverified": 0},
             {"raw": "c", "score": 0.2, "selected": False, "unverified": 0},
             {"raw": "d", "score": 0.7, "selected": False, "unverified": 2}]
    s = speech("debater_a", 0, 0, "a", cands)
    (plain,), _ = preference_pairs([record([s])], [Q], tok, PROMPTS, "tiny", True, PairSettings(threshold=0.0))
    assert (plain["chosen"], plain["rejected"], plain["p_chosen"], plain["p_rejected"]) == (" a", " c", 0.9, 0.2)
    (pen,), _ = preference_pairs([record([s])], [Q], tok, PROMPTS, "tiny", True,
                                 PairSettings(threshold=0.0, unverified_penalty=0.5))
    # scores less 0.5 per failed quote, floored at 0: a 0.4, b 0.6, c 0.2, d 0 -> chosen b, rejected d
    assert (pen["chosen"], pen["rejected"]) == (" b", " d")
    assert (pen["p_chosen"], pen["p_rejected"], pen["gap"]) == (0.6, 0.0, 0.6)
    old = speech("debater_a", 0, 0, "a", [{k: v for k, v in c.items() if k != "unverified"} for c in cands])
    with pytest.raises(PipelineError, match=r"^t.jsonl: a best-of-N candidate has no 'unverified' count"):
        preference_pairs([record([old])], [Q], tok, PROMPTS, "tiny", True, PairSettings(unverified_penalty=1.0),
                         where="t.jsonl")


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
         r"debate.training.selfplay.best_of_n.n: got 1, expected n >= 2 \(or selfplay.branching other than none\)"),
        ({"source": "t", "judge": "j", "strength": {"branching": "full"}},
         "debate.training.strength.branching: got 'full', expected none"),
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


def test_strength_anchors_join_the_cross_play_and_the_table_last():
    base = {"debaters": {"x": {"type": "extractive"}, "y": {"type": "extractive"}},
            "judges": {"j": {"type": "quote_similarity"}}, "tournaments": {"t": {"debaters": ["x"], "judge": "j"}}}
    s = DebateSection.from_dict({**base, "training": {"source": "t", "judge": "j", "iterations": 1,
                                                      "strength": {"best_of_n": {"n": 1}, "anchors": ["y", "x"]}}})
    full = s.with_training()
    assert full.tournaments["strength"].debaters == ["sft", "dpo1", "y", "x"]
    assert full.tournament_run("strength").debaters["y"].type == "extractive"
    for training, msg in [
        ({"strength": {"anchors": ["z"]}}, r"debate.training.strength.anchors: got \['z'\], expected names from "
                                            r"debate.debaters \['x', 'y'\]"),
        ({"selfplay": {"anchors": ["x"]}}, r"debate.training.selfplay.anchors: got \['x'\], expected \[\]"),
    ]:
        with pytest.raises(PipelineError, match=msg):
            DebateSection.from_dict({**base, "training": {"source": "t", "judge": "j", **training}})
    rounds = pd.DataFrame([
        {"status": "ok", "format": f, "debater_a": d, "debater_b": d if f == "debate" else None,
         "question_id": q, "p_correct": p} for d, p in (("sft", 0.5), ("y", 0.9)) for q in ("q1", "q2")
        for f in ("debate", "consultancy")])
    ratings = pd.DataFrame([{"debater": d, "bt_strength": b, "bt_lo": b - 0.1, "bt_hi": b + 0.1,
                             "quote_validity": 1.0} for d, b in (("sft", -0.5), ("y", 0.5))])
    table = strength_table(rounds, ratings, ["sft"], {}, ["y"])
    assert list(table["debater"]) == ["sft", "y"] and list(table["checkpoint"]) == ["sft", ""]
    assert list(table["best_of_n"]) == [1, 1] and table["debate_accuracy"].tolist() == pytest.approx([0.5, 0.9])
    assert table.loc[1, "bt_strength"] == 0.5 and table["consultancy_questions"].tolist() == [2, 2]


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


# ------------------------------------------------------------------------------------- soft labels

def _hand_loss(trainer, batch, label, beta, nll_weight):
    """The soft-label DPO loss of a one-pair batch from the policy's and the reference's log-probs, computed
    here from their logits: -(l log sigmoid(beta h) + (1 - l) log sigmoid(-beta h)) + nll_weight * NLL."""
    ids, mask = batch["input_ids"], batch["completion_mask"][:, 1:].bool()

    def token_logps(model):
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=batch["attention_mask"]).logits[:, :-1].float()
        return torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]

    policy, ref = token_logps(trainer.model), token_logps(trainer.ref_model)  # rows: chosen, rejected
    (pc, pr), (rc, rr) = (policy * mask).sum(1), (ref * mask).sum(1)
    x = beta * ((pc - rc) - (pr - rr))
    dpo = -(label * F.logsigmoid(x) + (1 - label) * F.logsigmoid(-x))
    return (dpo + nll_weight * -policy[0][mask[0]].mean()).item(), x.item()


def test_dpo_soft_label_loss_is_the_label_weighted_formula(dpo_inputs, tmp_path):
    """One pair, a policy moved off its reference: the trainer's loss with label l is
    -(l log sigmoid(beta h) + (1 - l) log sigmoid(-beta h)) + nll_weight * NLL(chosen) from the same
    log-probs (l = 1, 0.7, 0.5, 0.2), and at l = 1 it is TRL's own (hard) DPO loss."""
    from datasets import Dataset

    cfg = DPOSettings.from_dict({**DPO_CFG, "batch_size": 1})
    tok = load_tokenizer(str(dpo_inputs / "init"), padding_side="left")
    pair = json.loads((dpo_inputs / "pairs.jsonl").read_text().splitlines()[0])

    def loss_of(trainer):
        batch = trainer._prepare_inputs(next(iter(trainer.get_train_dataloader())))
        with torch.no_grad():
            return trainer.compute_loss(trainer.model, dict(batch)).item(), batch

    def moved_policy():  # the reference stays the saved init model
        model = load_causal_lm(str(dpo_inputs / "init"))
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
        return model

    hard, _ = loss_of(dpo_trainer(cfg, moved_policy(), tok, [pair], tmp_path / "hard"))
    assert type(dpo_trainer(cfg, moved_policy(), tok, [pair], tmp_path / "h")).__name__ == "DPOTrainer"
    for label in (1.0, 0.7, 0.5, 0.2):
        trainer = soft_label_trainer()(model=moved_policy(), args=dpo_trainer_config(cfg, None, tmp_path / str(label),
                                                                                     soft_labels=True),
                                       train_dataset=Dataset.from_list([{**pair, "soft_label": label}]),
                                       processing_class=tok)
        loss, batch = loss_of(trainer)
        expected, x = _hand_loss(trainer, batch, label, cfg.beta, cfg.nll_weight)
        assert abs(x) > 0.05  # the policy is off its reference: the label matters
        assert loss == pytest.approx(expected, abs=1e-5), label
        if label == 1.0:
            assert loss == pytest.approx(hard, abs=1e-6)
    assert type(dpo_trainer(cfg, moved_policy(), tok, [{**pair, "soft_label": 0.7}], tmp_path / "s")).__name__ == (
        "SoftLabelDPOTrainer")


def test_dpo_trains_on_soft_labels_end_to_end(dpo_inputs, tmp_path):
    """train_debater_dpo on pairs.jsonl rows carrying soft labels. A judge indifferent between the speeches
    (l = 0.5) teaches nothing: at the reference h = 0, where the l = 0.5 loss is log 2 with zero gradient, so
    the model stays the init model (hard labels would move it). Mixed labels with the NLL term and LoRA train."""
    import math

    pairs = [json.loads(line) for line in (dpo_inputs / "pairs.jsonl").read_text().splitlines()]
    flat = {**DPO_CFG, "epochs": 1, "nll_weight": 0.0}
    m = train_debater_dpo(DPOSettings.from_dict(flat), dpo_inputs / "init", [{**p, "soft_label": 0.5} for p in pairs],
                          tmp_path / "indifferent")
    assert (m["soft_labels"], m["mean_label"], m["n_pairs"]) == (True, 0.5, 18)
    assert m["train_loss"] == pytest.approx(math.log(2), abs=1e-6)
    same_weights(dpo_inputs / "init" / "model.safetensors", tmp_path / "indifferent" / "model.safetensors")

    mixed = [{**p, "soft_label": soft_label(0.9, 0.1 + 0.02 * i, 1.0)} for i, p in enumerate(pairs)]
    m = train_debater_dpo(DPOSettings.from_dict({**DPO_CFG, "epochs": 1, "lora": {"enabled": True, "r": 4}}),
                          dpo_inputs / "init", mixed, tmp_path / "mixed")
    assert m["soft_labels"] and 0.5 < m["mean_label"] < 1 and math.isfinite(m["train_loss"])
    assert load_causal_lm(str(tmp_path / "mixed")).config.hidden_size == TINY["hidden_size"]


def test_hard_labels_by_default_and_bad_labels_are_one_line(tok):
    s = speech("debater_a", 0, 0, "x", alts(0.9, 0.2))
    (pair,), _ = preference_pairs([record([s])], [Q], tok, PROMPTS, "tiny", True, PairSettings())
    assert PairSettings().soft_label_power is None and pair["soft_label"] == 1.0
    (soft,), _ = preference_pairs([record([s])], [Q], tok, PROMPTS, "tiny", True, PairSettings(soft_label_power=1.0))
    assert soft["soft_label"] == pytest.approx(0.9 / 1.1)
    assert pair_labels([pair, {**pair, "soft_label": 0}, {"prompt": "p", "chosen": "c", "rejected": "r"}]) == [
        1.0, 0.0, 1.0]
    for bad in (1.5, -0.1, "0.7", None, True):
        with pytest.raises(PipelineError, match=rf"^pair 1: soft_label {bad!r} is not a probability in \[0, 1\]$"):
            pair_labels([pair, {**pair, "soft_label": bad}])


def test_branch_pairs_score_each_speech_over_the_transcripts_that_contain_it(tok):
    def node(path, role, side, raw):
        s = speech(role, side, len(path) - 1 if role == "x" else 0, raw)
        s.role, s.turn, s.branch = role, 0, list(path)
        return s

    a0, a1 = node([0], "debater_a", 0, "A zero"), node([1], "debater_a", 0, "A one")
    b = {p: node(p, "debater_b", 1, f"B {p[0]}{p[1]}") for p in ((0, 0), (0, 1), (1, 0), (1, 1))}
    rec = record([a0, b[0, 0]])
    rec.branch_speeches = [a1, b[0, 1], b[1, 0], b[1, 1]]
    probs = {(0, 0): [0.8, 0.2], (0, 1): [0.6, 0.4], (1, 0): [0.3, 0.7], (1, 1): [0.5, 0.5]}
    rec.branches = [{"path": list(p), "probs": v, "has_probabilities": True, "judge_raw": ""} for p, v in probs.items()]
    # A's speeches (side 0): [0] in transcripts 00, 01 -> (0.8 + 0.6) / 2 = 0.7; [1] -> (0.3 + 0.5) / 2 = 0.4
    # B's (side 1): 00 -> 0.2, 01 -> 0.4, 10 -> 0.7, 11 -> 0.5
    assert branch_scores(rec) == pytest.approx({(0,): 0.7, (1,): 0.4, (0, 0): 0.2, (0, 1): 0.4, (1, 0): 0.7,
                                                (1, 1): 0.5})
    pairs, counts = preference_pairs([rec], [Q], tok, PROMPTS, "tiny", False, PairSettings(threshold=0.19))
    assert counts == {"speeches": 6, "best_of_n": 0, "branched": 3, "kept": 3, "below_threshold": 0}
    first, under0, under1 = pairs
    assert (first["chosen"], first["rejected"], first["p_chosen"], first["p_rejected"]) == (
        " A zero", " A one", pytest.approx(0.7), pytest.approx(0.4))
    assert (under0["chosen"], under0["rejected"]) == (" B 01", " B 00") and under0["source"] == "branch"
    assert (under1["chosen"], under1["rejected"], under1["gap"]) == (" B 10", " B 11", pytest.approx(0.2))
    # sequential debate: B's prompt holds the A speech of its own branch (later speeches get pairs too)
    assert "A zero" in under0["prompt"] and "A one" not in under0["prompt"]
    assert "A one" in under1["prompt"] and "A zero" not in under1["prompt"]
    assert len(preference_pairs([rec], [Q], tok, PROMPTS, "tiny", False, PairSettings(threshold=0.25))[0]) == 1


def test_branched_selfplay_needs_no_best_of_n():
    s = DebateSection.from_dict({
        "debaters": {"x": {"type": "extractive"}}, "judges": {"j": {"type": "quote_similarity"}},
        "tournaments": {"t": {"debaters": ["x"], "judge": "j"}},
        "training": {"source": "t", "judge": "j", "selfplay": {"best_of_n": {"n": 1}, "branching": "single_random"}}})
    assert s.with_training().tournaments["dpo/iter1"].branching == "single_random"
