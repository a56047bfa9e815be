"""Small tokenizers trained by the project (the ``tokenizers`` library) in the style of a model family.

A miniature of a real-scale experiment needs tiny models of the real models' architecture families, and
their tokenizers should behave like the real ones (byte-level BPE with ``<|endoftext|>`` for GPT-2 and
GPT-NeoX, Llama 3's special tokens and chat template, RoBERTa's ``<s> … </s>``, T5's Unigram with a
trailing ``</s>``), but they must be made here, in seconds, with nothing downloaded. Training is seeded
by construction: the ``tokenizers`` trainers are deterministic for the same texts and settings.

The embedded default's from-scratch models (the SFT policy and what starts from it, the red-team target, the SFT
debater, the AD models) use a *world tokenizer* instead (``tokenizer: world``): a vocabulary of the words their
own training texts use, a few hundred, where MiniLM's 30,522 rows of embeddings and output layer were most of
a tiny model's parameters and compute.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Style:
    """How a family's tokenizer is built: model, special tokens and what wraps an encoded text."""

    model: str  # "bpe" (byte-level) or "unigram"
    special: dict[str, str]  # transformers' name -> token text (bos_token, eos_token, ...)
    extra: tuple[str, ...] = ()  # further special tokens (chat markers)
    wrap: str = "none"  # "bos" (prepend BOS), "roberta" (<s> A </s>), "eos" (append EOS), "none"
    chat_template: str | None = None


STYLES: dict[str, Style] = {
    "gpt2": Style("bpe", {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}),
    "gpt_neox": Style("bpe", {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                              "unk_token": "<|endoftext|>", "pad_token": "<|padding|>"}),
    "llama3": Style("bpe", {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
                    extra=("<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>"), wrap="bos",
                    chat_template=LLAMA3_CHAT_TEMPLATE),
    "roberta": Style("bpe", {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>",
                             "mask_token": "<mask>", "cls_token": "<s>", "sep_token": "</s>"}, wrap="roberta"),
    "t5": Style("unigram", {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}, wrap="eos"),
}


def train_tokenizer(texts: Iterable[str], style: str, vocab_size: int = 1000, out_dir: str | Path | None = None):
    """A fast tokenizer of ``style`` (a key of :data:`STYLES`) trained on ``texts``; saved to ``out_dir``
    when given. Returns the ``transformers`` tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if style not in STYLES:
        raise ValueError(f"tokenizer style {style!r}: one of {sorted(STYLES)}")
    st = STYLES[style]
    specials = list(dict.fromkeys([*st.special.values(), *st.extra]))
    if st.model == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                          unk_token=st.special["unk_token"])
    tok.train_from_iterator(list(texts), trainer)
    ids = {t: tok.token_to_id(t) for t in specials}
    if st.wrap == "bos":
        bos = st.special["bos_token"]
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                           special_tokens=[(bos, ids[bos])])
    elif st.wrap == "roberta":
        tok.post_processor = processors.RobertaProcessing(("</s>", ids["</s>"]), ("<s>", ids["<s>"]),
                                                          trim_offsets=True, add_prefix_space=False)
    elif st.wrap == "eos":
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                           special_tokens=[("</s>", ids["</s>"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **st.special,
                                   additional_special_tokens=list(st.extra) or None)
    if st.chat_template:
        fast.chat_template = st.chat_template
    if out_dir is not None:
        fast.save_pretrained(out_dir)
    return fast


WORLD = "world"
"""The ``tokenizer`` value (config ``tokenizer``, ``debate.training.tokenizer``; CLI ``--tokenizer``) that gives a
from-scratch model a world tokenizer made from its own training texts (:func:`training_tokenizer`)."""

WORLD_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
ASCII_ALPHABET = [chr(c) for c in range(33, 127)]
"""Every printable ASCII character is a token of its own, so an unseen ASCII word is split, never [UNK]."""


def train_world_tokenizer(texts: Iterable[str], out_dir: str | Path | None = None):
    """A small WordPiece tokenizer for a synthetic world's ``texts``, shaped like the MiniLM tokenizer as
    :func:`~rlhf_pipeline.models.load_tokenizer` gives it to a causal LM: lowercasing BERT normaliser and
    pre-tokeniser, ``[PAD]`` pad, ``[CLS]`` BOS (encodings are ``[CLS] text``, no trailing ``[SEP]``, so a
    tokenised prompt is a prefix of the tokenised prompt + completion), ``[SEP]`` EOS, no token_type_ids, no
    chat template.

    The vocabulary: the special tokens, every printable ASCII character (alone and as a ``##`` piece; 193 in
    all), then every word of ``texts``, most frequent first (ties in alphabetical order). A synthetic world has
    a few hundred words, so the model's embeddings and output layer are a few hundred rows, not MiniLM's
    30,522. A word of the texts is one token; any other ASCII word is split into known pieces, never
    ``[UNK]``. Deterministic by construction: the same texts give byte-identical files (the ``tokenizers``
    trainers are not: their merges break ties in hash order, which changes from run to run). Saved to
    ``out_dir`` when given; returns the ``transformers`` tokenizer."""
    from collections import Counter

    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    pad, unk, cls, sep, mask = WORLD_SPECIALS
    normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=None, clean_text=True,
                                            handle_chinese_chars=True)
    pre = pre_tokenizers.BertPreTokenizer()
    counts = Counter(word for text in texts for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    base = [*WORLD_SPECIALS, *ASCII_ALPHABET, *(f"##{c}" for c in ASCII_ALPHABET)]
    words = sorted(counts.keys() - set(base), key=lambda w: (-counts[w], w))
    vocab = {t: i for i, t in enumerate([*base, *words])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token=unk, max_input_chars_per_word=100))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.post_processor = processors.TemplateProcessing(single=f"{cls} $A", pair=f"{cls} $A $B",
                                                       special_tokens=[(cls, vocab[cls])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=cls, eos_token=sep, pad_token=pad,
                                   unk_token=unk, cls_token=cls, sep_token=sep, mask_token=mask,
                                   model_max_length=512, model_input_names=["input_ids", "attention_mask"])
    if out_dir is not None:
        fast.save_pretrained(out_dir)
    return fast


def training_tokenizer(name: str, texts: Callable[[], Iterable[str]], padding_side: str = "left"):
    """The tokenizer a model trains with: for ``name`` ``'world'`` the world tokenizer of the texts it trains on
    (``texts()``, called only then; :func:`train_world_tokenizer`), else the named one
    (:func:`~rlhf_pipeline.models.load_tokenizer`: hub id, path or ``'minilm'``). The training stage saves it
    with the model, so every later stage reads it from the model directory."""
    from . import load_tokenizer

    if name != WORLD:
        return load_tokenizer(name, padding_side=padding_side)
    tok = train_world_tokenizer(texts())
    tok.padding_side = padding_side
    return tok
