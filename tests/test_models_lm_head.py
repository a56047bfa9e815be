"""BlockedLMHead: the LM head's logits in column blocks, bit for bit those of nn.Linear, with its gradients."""

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

from rlhf_pipeline.models import load_causal_lm, load_tokenizer
from rlhf_pipeline.models.lm_head import BlockedLMHead, use_blocked_lm_head


@pytest.mark.parametrize("shape", [(40, 16), (3, 12, 16), (4, 16)])  # 40, 36 rows: blocks; 4: F.linear
def test_forward_and_gradients_equal_linear_bit_for_bit(shape):
    torch.manual_seed(0)
    linear = nn.Linear(16, 1500, bias=False)  # 1500 = one full block of 1024 and a partial one
    blocked = BlockedLMHead(16, 1500, bias=False)
    blocked.weight = nn.Parameter(linear.weight.detach().clone())
    x = torch.randn(*shape, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    grad = torch.randn(*shape[:-1], 1500)
    want, got = linear(x), blocked(x2)
    assert got.shape == want.shape and torch.equal(got, want)
    want.backward(grad)
    got.backward(grad)
    assert torch.equal(x2.grad, x.grad) and torch.equal(blocked.weight.grad, linear.weight.grad)


def test_a_tied_llama_keeps_its_tie_logits_and_saved_form(tmp_path):
    tok = load_tokenizer("minilm")
    model = load_causal_lm(None, tok, tiny={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                            "num_attention_heads": 2}, seed=0).eval()
    ids = tok(["alpha bravo", "charlie"], return_tensors="pt", padding=True)
    with torch.no_grad():
        want = model(**ids).logits
    original = use_blocked_lm_head(model)
    assert isinstance(model.lm_head, BlockedLMHead) and type(original) is nn.Linear
    assert model.lm_head.weight is model.model.embed_tokens.weight  # still tied
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, want)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert type(loaded.lm_head) is nn.Linear and torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_heads_with_bias_are_left_alone():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(4, 8)

        def get_output_embeddings(self):
            return self.head

        def set_output_embeddings(self, m):
            self.head = m
    m = M()
    assert use_blocked_lm_head(m) is None and type(m.head) is nn.Linear
