"""Small tokenizers trained by the project (the ``tokenizers`` library) in the style of a model family.

A miniature of a real-scale experiment needs tiny models of the real models' architecture families, and
their tokenizers should behave like the real ones (byte-level BPE with ``<|endoftext|>`` for GPT-2 and
GPT-NeoX, Llama 3's special tokens and chat template, RoBERTa's ``<s> … </s>``, T5's Unigram with a
trailing ``</s>``), but they must be made here, in seconds, with nothing downloaded. Training is seeded
by construction: the ``tokenizers`` trainers are deterministic for the same texts and settings.
"""

from __future__ import annotations

from collections.abc import Iterable
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
