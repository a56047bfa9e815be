"""Miniature assets of ``config/experiments/hh_flant5_rm.yaml``: a tiny FLAN-T5 and an Anthropic-HH-shaped
data folder, so the real config's reward-model ensemble (one member per readout head, fine-tuned and
frozen-backbone members, ``preferences.source: dataset``) runs end to end on CPU with nothing downloaded.

- ``flan-t5/``: a ``T5ForConditionalGeneration`` saved the way the ``google/flan-t5-*`` checkpoints are
  (gated-GELU feed-forward, untied embeddings: ``tie_word_embeddings=False``, which transformers 5 records as
  ``scale_decoder_outputs: false`` exactly as it does loading the flan-t5 configs; relative attention buckets;
  the pad token as the decoder's start token), with tiny dimensions, and a T5-style Unigram tokenizer
  (:func:`rlhf_pipeline.models.vocab.train_tokenizer`) trained on the data's own text.
- ``hh/``: ``train.jsonl`` and ``test.jsonl`` with ``chosen``/``rejected`` full transcripts
  ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``, the layout :mod:`rlhf_pipeline.data.anthropic_hh` reads from a
  folder of data files. The last human turn is a prompt of the embedded synthetic world
  (:mod:`rlhf_pipeline.data.synthetic`, its ``answer:`` cue dropped), from that split's own prompt pool;
  the two assistant answers are two of its demonstrations of different gold quality, the better one
  ``chosen``, so the pairs carry a real preference a reward model can learn. Some transcripts open with
  an earlier exchange, as many HH dialogues do, so the shared prefix spans several turns.

Everything is seeded: the same call writes the same files.
"""

from __future__ import annotations

import random
from pathlib import Path

from ..data import synthetic
from ..data.anthropic_hh import ASSISTANT
from ..io import write_jsonl

HUMAN = "\n\nHuman:"
MODEL_DIR = "flan-t5"
"""The tiny FLAN-T5 (``rm.init`` of the overlay)."""
DATA_DIR = "hh"
"""The HH-shaped data folder (``dataset.path`` of the overlay)."""
ROWS = {"train": 1600, "test": 200}
"""Pairs written per source split (the overlay's ``dataset.max_rows`` takes fewer)."""
EARLIER_TURN = 0.3
"""Share of transcripts that open with an earlier exchange."""
VOCAB_SIZE = 600
SEED = 0
T5_SIZES = dict(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4)
"""FLAN-T5-large: d_model 1024, d_kv 64, d_ff 2816, 24 + 24 layers, 16 heads."""
MODEL_MAX_LENGTH = 512
"""The FLAN-T5 tokenizers' ``model_max_length``."""


def human_turn(prompt: str) -> str:
    """A synthetic prompt as a human's request: its ``answer:`` cue dropped."""
    return prompt.removesuffix(synthetic.ANSWER_CUE).strip()


def transcript(turns: list[tuple[str, str]]) -> str:
    """``"\\n\\nHuman: h\\n\\nAssistant: a"`` for each (human, assistant) turn, as HH writes dialogues."""
    return "".join(f"{HUMAN} {h}{ASSISTANT} {a}" for h, a in turns)


def hh_pairs(split: str, n: int, seed: int = SEED) -> list[dict[str, str]]:
    """``n`` HH rows ``{"chosen", "rejected"}`` on ``split``'s prompts (module docstring): two
    demonstrations of different gold quality for the last human turn, the better one chosen."""
    prompts = synthetic.prompt_pool(seed)[split]
    rng = random.Random(f"miniature/hh_flant5_rm/{split}/{seed}")
    rows = []
    while len(rows) < n:
        earlier = []
        if rng.random() < EARLIER_TURN:
            first = rng.choice(prompts)
            earlier = [(human_turn(first), synthetic.demonstration(rng, synthetic.topic_of(first)))]
        prompt = rng.choice(prompts)
        topic = synthetic.topic_of(prompt)
        a, b = synthetic.demonstration(rng, topic), synthetic.demonstration(rng, topic)
        qa, qb = synthetic.quality(prompt, a), synthetic.quality(prompt, b)
        if qa == qb or not a.strip() or not b.strip():
            continue  # no preference between them (HH pairs always have one)
        chosen, rejected = (a, b) if qa > qb else (b, a)
        turn = human_turn(prompt)
        rows.append({"chosen": transcript([*earlier, (turn, chosen)]),
                     "rejected": transcript([*earlier, (turn, rejected)])})
    return rows


def tiny_flan_t5(tokenizer, out_dir: Path, seed: int = SEED) -> None:
    """A randomly initialised ``T5ForConditionalGeneration`` with FLAN-T5's configuration knobs and
    :data:`T5_SIZES`, saved with ``tokenizer`` to ``out_dir``."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    cfg = T5Config(vocab_size=len(tokenizer), feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                   relative_attention_num_buckets=32, relative_attention_max_distance=128,
                   layer_norm_epsilon=1e-6, dropout_rate=0.1,
                   pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                   decoder_start_token_id=tokenizer.pad_token_id, **T5_SIZES)
    torch.manual_seed(seed)
    T5ForConditionalGeneration(cfg).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def make(out_dir: Path) -> None:
    """Write ``out_dir/hh/{train,test}.jsonl`` and ``out_dir/flan-t5/`` (model + tokenizer)."""
    from ..models.vocab import train_tokenizer

    data = Path(out_dir) / DATA_DIR
    data.mkdir(parents=True, exist_ok=True)
    splits = {split: hh_pairs(split, n) for split, n in ROWS.items()}
    for split, rows in splits.items():
        write_jsonl(data / f"{split}.jsonl", rows)
    texts = [r[k] for r in splits["train"] for k in ("chosen", "rejected")]
    tok = train_tokenizer(texts, "t5", VOCAB_SIZE)
    tok.model_max_length = MODEL_MAX_LENGTH
    tiny_flan_t5(tok, Path(out_dir) / MODEL_DIR)
