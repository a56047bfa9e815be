"""Gold RM: training on a hidden quality signal, scoring with any seq-clf RM, metrics math."""

import json
import random

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from rlhf_pipeline.data.alpaca_farm import alpaca_prompt
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import join_text, load_tokenizer
from rlhf_pipeline.reward import GoldRMConfig, RewardModel
from rlhf_pipeline.reward.gold import (
    GoldScorer,
    alpacafarm_format,
    pairwise_order_accuracy,
    train_gold_rm,
)
from rlhf_pipeline.stats import spearman

torch.set_num_threads(2)
POS = ["great", "wonderful", "excellent", "helpful", "clear"]
FILLER = ["the", "answer", "is", "that", "we", "can", "see", "it", "here", "today"]
NEG = ["bad", "awful", "wrong", "useless", "vague"]


def _rows(n, seed):
    """quality = number of positive words among 4 sentiment words (0..4)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        k = rng.randint(0, 4)
        words = rng.sample(POS, k) + rng.sample(NEG, 4 - k) + rng.sample(FILLER, 3)
        rng.shuffle(words)
        rows.append({"prompt": "Question: what is it?", "response": " ".join(words), "quality": float(k)})
    return rows


@pytest.fixture(scope="module")
def gold(tmp_path_factory):
    out = tmp_path_factory.mktemp("gold") / "gold_rm"
    cfg = GoldRMConfig(n_samples=200, epochs=20, batch_size=64, learning_rate=3e-3, seed=0)
    return out, train_gold_rm(cfg, _rows(200, seed=0), out)


def test_gold_rm_fits_hidden_quality(gold):
    out, metrics = gold
    assert metrics == json.loads((out / "metrics.json").read_text())
    assert metrics["n_train"] == 180 and metrics["n_val"] == 20
    assert metrics["spearman"] > 0.7 and metrics["pearson"] > 0.7
    assert metrics["pairwise_accuracy"] > 0.8
    model = RewardModel.from_pretrained(out / "model")
    assert model.config.head == "mean" and model.config.freeze_backbone and model.config.mlp_hidden > 0
    assert model.backbone.__class__.__name__ == "BertModel"


def test_gold_scorer_on_trained_rm(gold):
    out, _ = gold
    scorer = GoldScorer(out / "model", batch_size=4, device="cpu")
    test = _rows(40, seed=5)
    scores = scorer([r["prompt"] for r in test], [r["response"] for r in test])
    assert scores.shape == (40,) and scores.dtype == np.float32
    assert spearman(scores, [r["quality"] for r in test]) > 0.7
    # batch size does not change scores
    again = GoldScorer(out / "model", batch_size=40, device="cpu")([r["prompt"] for r in test],
                                                                   [r["response"] for r in test])
    assert np.allclose(scores, again, atol=1e-5)


def test_gold_scorer_any_seqclf_model_and_alpacafarm_format(tmp_path):
    tok = load_tokenizer("minilm")
    torch.manual_seed(0)
    hub_like = BertForSequenceClassification(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                                        num_attention_heads=2, intermediate_size=32, num_labels=1))
    hub_like.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    prompts, responses = ["Name a colour.", "Say hi."], ["Blue.", "Hello there, friend."]
    hub_like.eval()

    def manual(texts):
        enc = tok(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            return hub_like(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[:, 0].numpy()

    plain = GoldScorer(tmp_path / "rm", batch_size=8, device="cpu")(prompts, responses)
    assert np.allclose(plain, manual([join_text(p, r) for p, r in zip(prompts, responses)]), atol=1e-5)
    alpaca = GoldScorer(tmp_path / "rm", is_alpacafarm_rm=True, batch_size=8, device="cpu")(prompts, responses)
    assert np.allclose(alpaca, manual([alpacafarm_format(p, r) for p, r in zip(prompts, responses)]), atol=1e-5)
    assert not np.allclose(alpaca, plain)


def test_alpacafarm_format():
    assert alpacafarm_format("Name a colour.", "Blue.") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes "
        "the request.\n\n### Instruction:\nName a colour.\n\n### Response:\nBlue."
    )
    # the alpaca_farm adapter's prompts already are Alpaca prompts: not wrapped a second time
    assert alpacafarm_format(alpaca_prompt("Name a colour."), "Blue.") == alpacafarm_format("Name a colour.", "Blue.")
    with_input = alpaca_prompt("Name a colour.", "Of the sky.")
    assert alpacafarm_format(with_input, " Blue.") == with_input + "\nBlue."


def test_missing_paths_and_bad_rows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the relative path below must not exist, whatever the repo holds
    (tmp_path / "results").mkdir()
    with pytest.raises(PipelineError, match="gold RM path: .*no_such_rm does not exist"):
        GoldScorer(tmp_path / "no_such_rm", batch_size=8)
    with pytest.raises(PipelineError, match="gold RM path: results/gold_rm/model does not exist"):
        GoldScorer("results/gold_rm/model", batch_size=8)
    with pytest.raises(PipelineError, match=r"row 1 misses field\(s\) \['quality'\]"):
        train_gold_rm(GoldRMConfig(), [{"prompt": "a", "response": "b", "quality": 1.0},
                                       {"prompt": "a", "response": "b"}], tmp_path / "g")
    with pytest.raises(PipelineError, match="empty"):
        train_gold_rm(GoldRMConfig(), [], tmp_path / "g")
    assert not (tmp_path / "g").exists()
    with pytest.raises(PipelineError, match=r"gold_rm: unknown key\(s\) \['model'\]"):
        GoldRMConfig.from_dict({"model": "x"})


def test_pairwise_order_accuracy_hand_computed():
    # 5 pairs with distinct targets; only (1,2) is ordered wrongly; the target tie (2,3) is skipped
    assert pairwise_order_accuracy([0.0, 2.0, 1.0, 5.0], [0.0, 1.0, 2.0, 2.0]) == pytest.approx(4 / 5)


def test_world_gold_is_the_exact_quality_on_the_gold_rm_scale_and_refuses_other_worlds():
    """gold_rm.path 'world': (quality - mean) / std, mean and std of the gold RM's training data's quality."""
    import numpy as np

    from rlhf_pipeline.data.synthetic import sample_scored_responses
    from rlhf_pipeline.errors import PipelineError
    from rlhf_pipeline.reward.gold import WorldQualityScorer, gold_scorer

    scorer = gold_scorer("world", batch_size=8)
    assert isinstance(scorer, WorldQualityScorer)
    q = np.array([r["quality"] for r in sample_scored_responses(4000, 0)])
    assert (scorer.mean, scorer.std) == (pytest.approx(q.mean()), pytest.approx(q.std()))
    prompt = "name some fruits. answer:"  # the module docstring's examples: quality 4.0, -2.0, -2.5
    out = scorer([prompt] * 3, ["apple, banana, cherry and grape", "apple apple apple apple", "dog, cat and horse"])
    assert out.dtype == np.float32
    assert out * scorer.std + scorer.mean == pytest.approx([4.0, -2.0, -2.5], abs=1e-5)
    with pytest.raises(PipelineError, match="gold_rm.path 'world' scores the synthetic world's prompts only"):
        scorer(["what is the capital of france?"], ["paris"])
