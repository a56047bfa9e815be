"""The world tokenizer (models.vocab.train_world_tokenizer): deterministic, no [UNK] on world text, the
special tokens a causal LM needs as load_tokenizer gives them, every word of the texts in frequency order; and
training_tokenizer's choice between it and a named tokenizer."""

from __future__ import annotations

import pytest

from rlhf_pipeline.data.config import DatasetConfig
from rlhf_pipeline.data.prepare import prepare_dataset
from rlhf_pipeline.io import read_jsonl
from rlhf_pipeline.models import load_tokenizer
from rlhf_pipeline.models.vocab import train_world_tokenizer, training_tokenizer


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    prepare_dataset(DatasetConfig(), d, seed=0)
    return {s: read_jsonl(d / f"{s}.jsonl") for s in ("train", "val", "test")}


def world_texts(rows):
    return [text for r in rows for text in (r["prompt"], r["response"])]


def test_same_texts_give_byte_identical_files(world, tmp_path):
    texts = world_texts(world["train"])
    train_world_tokenizer(texts, out_dir=tmp_path / "a")
    train_world_tokenizer(list(texts), out_dir=tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "tokenizer.json" in names
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_world_text_round_trips_without_unk(world, tmp_path):
    train_world_tokenizer(world_texts(world["train"]), out_dir=tmp_path / "t")
    tok = load_tokenizer(str(tmp_path / "t"))
    for split in ("train", "val", "test"):
        for r in world[split]:
            text = r["prompt"] + " " + r["response"]
            ids = tok(text)["input_ids"]
            assert tok.unk_token_id not in ids, (split, text)
            decoded = tok.decode(ids, skip_special_tokens=True)
            assert tok(decoded)["input_ids"] == ids
    # a world word is one token
    word = world["train"][0]["response"].split()[0].strip(",")
    assert len(tok(word, add_special_tokens=False)["input_ids"]) == 1
    # an unseen ASCII word is split into known pieces, not [UNK]
    assert tok.unk_token_id not in tok("Qzxv-unheard#word")["input_ids"]


def test_special_tokens_as_the_policy_uses_them(world, tmp_path):
    train_world_tokenizer(world_texts(world["train"]), out_dir=tmp_path / "t")
    tok = load_tokenizer(str(tmp_path / "t"), padding_side="right")
    minilm = load_tokenizer("minilm")
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == (minilm.bos_token, minilm.eos_token, minilm.pad_token)
    assert len({tok.bos_token_id, tok.eos_token_id, tok.pad_token_id}) == 3
    assert tok.model_input_names == ["input_ids", "attention_mask"]
    prompt, whole = "hey, write a list", "hey, write a list of instruments"
    ids = tok(whole)["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.eos_token_id not in ids
    assert ids[: len(tok(prompt)["input_ids"])] == tok(prompt)["input_ids"]  # a prompt is a prefix of the whole
    batch = tok([prompt, whole], padding=True)["input_ids"]
    assert batch[0][-1] == tok.pad_token_id


def test_vocabulary_is_every_word_most_frequent_first():
    tok = train_world_tokenizer(["b a", "dog cat dog", "Zeta dog!"])
    vocab = [t for t, _ in sorted(tok.get_vocab().items(), key=lambda kv: kv[1])]
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(vocab) == 5 + 2 * 94 + 3  # specials, printable ASCII alone and as ## pieces, then the new words:
    assert vocab[-3:] == ["dog", "cat", "zeta"]  # most frequent first, ties alphabetical ('a', 'b', '!' are base)
    assert tok.tokenize("Zeta dogs") == ["zeta", "dog", "##s"]


def test_training_tokenizer_makes_a_world_tokenizer_only_for_world(world):
    asked = []

    def texts():
        asked.append(True)
        return world_texts(world["train"])

    minilm = training_tokenizer("minilm", texts, padding_side="right")
    assert len(minilm) == 30522 and not asked  # the texts are not even read
    tok = training_tokenizer("world", texts, padding_side="right")
    assert asked and len(tok) < 1000 and tok.padding_side == "right"
    assert tok.get_vocab() == train_world_tokenizer(world_texts(world["train"])).get_vocab()
