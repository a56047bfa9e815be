"""The default toxicity classifier (rlhf_pipeline.redteam.classifier): frozen real MiniLM + a trained layer,
saved as a plain HF model; its math by hand and its input checks."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.redteam.classifier import (
    accuracy,
    average_ranks,
    check_rows,
    fold_standardization,
    holdout_split,
    load_base_classifier,
    pooled_features,
    roc_auc,
    toxicity_probs,
    train_toxicity_classifier,
)
from rlhf_pipeline.redteam.config import ClassifierTrainConfig
from rlhf_pipeline.redteam.world import classifier_rows

torch.set_num_threads(2)

# ---------------------------------------------------------------------------------------------
# Classifier math and input checks
# ---------------------------------------------------------------------------------------------

def test_roc_auc_and_accuracy_by_hand():
    assert average_ranks([3, 1, 3, 2]).tolist() == [3.5, 1.0, 3.5, 2.0]
    # positives 0.35 and 0.8 against negatives 0.1 and 0.4: wins 1 + 2 of 4 pairs
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert roc_auc([0.5, 0.5, 0.9], [1, 0, 1]) == 0.75  # the tie counts half
    assert math.isnan(roc_auc([0.2, 0.3], [1, 1]))
    assert accuracy([0.2, 0.5, 0.7, 0.4], [0, 1, 0, 0]) == 0.75


def test_fold_standardization_by_hand():
    w, b = torch.tensor([[1.0, 2.0]]), torch.tensor([0.5])
    mean, std = torch.tensor([1.0, -1.0]), torch.tensor([2.0, 4.0])
    w2, b2 = fold_standardization(w, b, mean, std)
    assert w2.tolist() == [[0.5, 0.5]] and b2.tolist() == [0.5]
    f = torch.tensor([3.0, 5.0])
    assert (w2 @ f + b2).item() == (w @ ((f - mean) / std) + b).item() == 4.5


def test_holdout_split():
    train, val = holdout_split(50, seed=0)
    assert len(val) == 5 and sorted(train + val) == list(range(50)) and (train, val) == holdout_split(50, 0)
    assert holdout_split(9, seed=0)[1] == []


@pytest.mark.parametrize("rows, message", [
    ([], "no labelled texts (rows is empty)"),
    ([{"text": "you idiot"}], "row 0 misses field(s) ['label']; rows need ['text', 'label']"),
    ([{"text": "ok", "label": 0}, {"text": "you idiot", "label": 2}],
     "row 1: label is 2; expected 0 (non_toxic) or 1 (toxic)"),
    ([{"text": "ok", "label": 0}, {"text": "you idiot", "label": True}],
     "row 1: label is True; expected 0 (non_toxic) or 1 (toxic)"),
    ([{"text": 3, "label": 0}], "row 0: text is int; expected a string"),
    ([{"text": "ok", "label": 0}, {"text": "fine", "label": 0}],
     "all 2 rows have label 0; expected both 0 (non_toxic) and 1 (toxic)"),
])
def test_classifier_rows_checked(rows, message):
    with pytest.raises(PipelineError, match=re.escape("toxicity classifier training: " + message)):
        check_rows(rows)


# ---------------------------------------------------------------------------------------------
# Training the classifier (real MiniLM)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("tox") / "toxicity"
    rows = classifier_rows(400, seed=0)
    cfg = ClassifierTrainConfig(epochs=10, batch_size=64, learning_rate=3e-3, seed=0)
    return out, rows, train_toxicity_classifier(cfg, rows, out)


def test_tiny_classifier_beats_ninety_percent(trained):
    out, _, metrics = trained
    assert metrics == json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] == 360 and metrics["n_val"] == 40
    assert metrics["accuracy"] > 0.9 and metrics["auc"] > 0.95
    assert metrics["id2label"] == {"0": "non_toxic", "1": "toxic"}


def test_saved_classifier_reproduces_predictions_and_labels(trained):
    out, rows, metrics = trained
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    tok = AutoTokenizer.from_pretrained(out / "model")
    assert model.config.id2label == {0: "non_toxic", 1: "toxic"}
    assert model.config.label2id == {"non_toxic": 0, "toxic": 1}
    _, val = holdout_split(len(rows), seed=0)
    texts, labels = [rows[i]["text"] for i in val], [rows[i]["label"] for i in val]
    probs = toxicity_probs(model, tok, texts, batch_size=16)
    assert accuracy(probs, labels) == metrics["accuracy"]
    assert roc_auc(probs, labels) == pytest.approx(metrics["auc"], abs=1e-12)
    # the full saved forward == the trained layer over the untouched frozen encoder's cached features
    base, base_tok = load_base_classifier(seed=0)
    feats = pooled_features(base, base_tok, texts, batch_size=40)
    with torch.no_grad():
        head = torch.softmax(model.classifier(feats), dim=-1)[:, 1].numpy()
    np.testing.assert_allclose(probs, head, atol=1e-5)
    # batch size does not change the scores
    np.testing.assert_allclose(probs, toxicity_probs(model, tok, texts, batch_size=40), atol=1e-5)


def test_training_is_seeded(tmp_path):
    rows = classifier_rows(40, seed=1)
    cfg = ClassifierTrainConfig(epochs=2, batch_size=16, seed=3)
    a = train_toxicity_classifier(cfg, rows, tmp_path / "a")
    b = train_toxicity_classifier(cfg, rows, tmp_path / "b")
    drop = {"encode_time_s", "train_time_s"}
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
    wa = AutoModelForSequenceClassification.from_pretrained(tmp_path / "a" / "model").classifier.weight
    wb = AutoModelForSequenceClassification.from_pretrained(tmp_path / "b" / "model").classifier.weight
    assert torch.equal(wa, wb)
