"""The miniature OpenAI-compatible server (rlhf_pipeline.miniature.serve), through the official ``openai`` client
the debate and red-team backends use: the model list, seeded sampling, greedy decoding, n choices, max_tokens, and
OpenAI-style errors for an unknown model or a bad request."""

import openai
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from rlhf_pipeline.miniature.serve import start
from rlhf_pipeline.models.vocab import train_tokenizer

TEXTS = ["Mira Voss lives in Oslo.", "Tomas Quill bought the kettle on Monday.", "Which answer is correct?"]
MESSAGES = [{"role": "system", "content": "You argue."}, {"role": "user", "content": "Where does Mira Voss live?"}]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    path = tmp_path_factory.mktemp("served") / "llama"
    tok = train_tokenizer(TEXTS, "llama3", vocab_size=300, out_dir=path)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, eos_token_id=tok.eos_token_id, initializer_range=0.5)
    LlamaForCausalLM(cfg).save_pretrained(path)
    server, url = start(str(path), served_name="tiny/llama")
    yield openai.OpenAI(api_key="EMPTY", base_url=url, max_retries=0), tok
    server.shutdown()


def test_models_lists_the_served_name(served):
    client, _ = served
    assert [m.id for m in client.models.list().data] == ["tiny/llama"]


def test_seeded_sampling_repeats_and_greedy_choices_agree(served):
    client, tok = served

    def chat(**kw):
        return client.chat.completions.create(model="tiny/llama", messages=MESSAGES, **kw)

    a, b = chat(max_tokens=6, temperature=1.0, seed=3), chat(max_tokens=6, temperature=1.0, seed=3)
    assert a.choices[0].message.content == b.choices[0].message.content
    others = {chat(max_tokens=6, temperature=1.0, seed=s).choices[0].message.content for s in range(4, 9)}
    assert len(others | {a.choices[0].message.content}) > 1  # different seeds, different samples
    assert a.usage.completion_tokens <= 6 and a.choices[0].finish_reason in ("stop", "length")
    prompt = tok.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert a.usage.prompt_tokens == len(tok(prompt, add_special_tokens=False)["input_ids"])
    greedy = chat(max_tokens=4, temperature=0, n=3)
    assert [c.index for c in greedy.choices] == [0, 1, 2] and len({c.message.content for c in greedy.choices}) == 1
    assert len(chat(max_tokens=4, temperature=0.7, n=2, seed=1).choices) == 2


def test_unknown_model_and_bad_requests_are_openai_errors(served):
    client, _ = served
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="other", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model="tiny/llama", messages=MESSAGES, max_tokens=0)
    with pytest.raises(openai.BadRequestError, match="messages"):
        client.chat.completions.create(model="tiny/llama", messages=[])
