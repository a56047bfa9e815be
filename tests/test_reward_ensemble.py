"""Ensemble objectives against hand-computed numbers, and the EnsembleReward callable."""

import pytest
import torch

from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.reward import RewardModel
from rlhf_pipeline.reward.ensemble import (
    EnsembleReward,
    combine,
    member_variance,
    standardize,
)
from rlhf_pipeline.reward.heads import encode_for_reward, score_token_ids

torch.set_num_threads(1)

# K=3 members, B=2 samples. Column 0: 1, 3, 2 (mean 2, pop. var 2/3, min 1);
# column 1: 4, 0, 2 (mean 2, pop. var 8/3, min 0).
SCORES = torch.tensor([[1.0, 4.0], [3.0, 0.0], [2.0, 2.0]])


def test_mean_wco_uwo_hand_computed():
    assert combine(SCORES, "mean").tolist() == [2.0, 2.0]
    assert combine(SCORES, "WCO").tolist() == [1.0, 0.0]
    assert torch.allclose(member_variance(SCORES), torch.tensor([2 / 3, 8 / 3]))
    # UWO = mean - 0.5 * var = [2 - 1/3, 2 - 4/3]
    assert torch.allclose(combine(SCORES, "UWO", 0.5), torch.tensor([5 / 3, 2 / 3]))
    assert torch.allclose(combine(SCORES, "UWO", 0.0), combine(SCORES, "mean"))


def test_objective_names_case_insensitive():
    assert torch.equal(combine(SCORES, "wco"), combine(SCORES, "WCO"))
    assert torch.equal(combine(SCORES, "Uwo", 0.5), combine(SCORES, "UWO", 0.5))
    assert torch.equal(combine(SCORES, "MEAN"), combine(SCORES, "mean"))


def test_single_member():
    one = torch.tensor([[5.0, -1.0]])
    assert member_variance(one).tolist() == [0.0, 0.0]
    for objective in ("mean", "WCO", "UWO"):
        assert combine(one, objective, 0.5).tolist() == [5.0, -1.0]


def test_standardize_hand_computed():
    scores = torch.tensor([[1.0, 3.0], [10.0, 20.0]])
    z = standardize(scores, [1.0, 10.0], [2.0, 5.0])
    assert z.tolist() == [[0.0, 1.0], [0.0, 2.0]]


def test_errors():
    with pytest.raises(PipelineError, match=r"'best'.*\['mean', 'WCO', 'UWO'\]"):
        combine(SCORES, "best")
    with pytest.raises(PipelineError, match="uwo_weight=-0.1"):
        combine(SCORES, "UWO", -0.1)
    with pytest.raises(PipelineError, match="stds must be > 0"):
        standardize(SCORES, [0, 0, 0], [1, 0, 1])
    with pytest.raises(PipelineError, match="3 members but 2 means"):
        standardize(SCORES, [0, 0], [1, 1])


@pytest.fixture(scope="module")
def member_dirs(tmp_path_factory):
    d = tmp_path_factory.mktemp("ens")
    tok = load_tokenizer("minilm")
    lm = load_causal_lm(None, tok, tiny=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=4), seed=0)
    dirs = []
    for k, (mu, sd) in enumerate([(0.5, 2.0), (-1.0, 0.5)]):
        torch.manual_seed(k)
        m = RewardModel.from_backbone(lm, head="mean")
        m.config.reward_mean, m.config.reward_std, m.config.reward_max_length = mu, sd, 16
        m.save_pretrained(d / f"m{k}")
        tok.save_pretrained(d / f"m{k}")
        dirs.append(d / f"m{k}")
    return dirs


PROMPTS = ["Tell me:", "Tell me:", "Why?"]
RESPONSES = ["a cat", "the dog sat on a very long mat with many words", "because"]


def test_ensemble_reward_matches_members(member_dirs):
    tok = load_tokenizer(str(member_dirs[0]))
    raw = []
    for d in member_dirs:
        m = RewardModel.from_pretrained(d)
        raw.append(score_token_ids(m, tok, encode_for_reward(tok, PROMPTS, RESPONSES, 16), batch_size=32))
    raw = torch.stack(raw)
    z = (raw - torch.tensor([[0.5], [-1.0]])) / torch.tensor([[2.0], [0.5]])

    ens = EnsembleReward(member_dirs, objective="uwo", uwo_weight=0.5, device="cpu")
    detail = ens.score_detail(PROMPTS, RESPONSES)
    assert detail["members"].shape == (2, 3)
    assert torch.allclose(detail["members"], z, atol=1e-5)
    assert torch.allclose(detail["variance"], ((z[0] - z[1]) / 2) ** 2, atol=1e-5)  # K=2 pop. var
    assert torch.allclose(detail["reward"], z.mean(0) - 0.5 * ((z[0] - z[1]) / 2) ** 2, atol=1e-5)
    assert torch.allclose(ens(PROMPTS, RESPONSES), detail["reward"])

    plain = EnsembleReward(member_dirs, objective="WCO", standardize=False, device="cpu")
    assert torch.allclose(plain(PROMPTS, RESPONSES), raw.min(0).values, atol=1e-5)


def test_ensemble_reward_errors(member_dirs, tmp_path):
    with pytest.raises(PipelineError, match="nope.*does not exist"):
        EnsembleReward([member_dirs[0], tmp_path / "nope"])
    with pytest.raises(PipelineError, match="must be one of"):
        EnsembleReward(member_dirs, objective="max")
    with pytest.raises(PipelineError, match="uwo_weight"):
        EnsembleReward(member_dirs, objective="UWO", uwo_weight=-1)
