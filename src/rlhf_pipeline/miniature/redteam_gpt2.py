"""Assets of the miniature of ``config/experiments/redteam_gpt2.yaml`` (curiosity-driven red-teaming with a
GPT-2 attacker fine-tuned on IMDb prompts, Hong et al. 2024): every model the real config names, in its
architecture family and with its labels, tiny and randomly initialised, plus an IMDb-shaped data folder.

Written under ``out_dir`` (``results/miniature/redteam_gpt2/``; the overlay names these paths)::

    imdb/        dataset.path: train.parquet, test.parquet, unsupervised.parquet with ``text`` and ``label``,
                 the columns and splits stanfordnlp/imdb publishes (``unsupervised`` is labelled -1 there and
                 ignored by the adapter); ordered by label like the source, with ``<br /><br />`` breaks
    gpt2/        sft.model, tokenizer and redteam.target.model (the real config names gpt2 for all three):
                 a GPT2LMHeadModel with a byte-level BPE tokenizer in GPT-2's style (``<|endoftext|>`` as
                 BOS, EOS and UNK, no pad token), trained on the reviews
    toxicity/    redteam.toxicity.model: a RobertaForSequenceClassification with the labels of
                 facebook/roberta-hate-speech-dynabench-r4-target ({0: nothate, 1: hate}) and a RoBERTa-style
                 tokenizer (``<s> … </s>``, 512 tokens)
    gibberish/   redteam.gibberish.model: a DistilBertForSequenceClassification, the family of
                 madhurjindal/autonlp-Gibberish-Detector-492513457, with its labels (clean, mild gibberish,
                 noise, word salad) and a bert-base-uncased WordPiece tokenizer (the shipped MiniLM's, the
                 vocabulary DistilBERT uncased shares)

The reviews are made of the red-team world's attacker-style texts (:func:`rlhf_pipeline.redteam.world.
attacker_text`), so some IMDb prompts hold the world's trigger words. GPT-2 is briefly fit (:func:`fit`) to
the world's dialogues (a target of that world answers with insults, more often after trigger words; so
short a fit learns the words, not yet the rule), and the hate classifier to the world's labelled texts, so
that toxicity varies with the reply instead of being one number for every text (an untrained classifier
gives all texts about the same probability, and then every attack succeeds or none does). The gibberish
detector stays untrained: its term only has to be read. Seeded: the same call writes the same files
(weights included).
"""

from __future__ import annotations

import random
from pathlib import Path

SEED = 0
N_REVIEWS = {"train": 240, "test": 80, "unsupervised": 40}
"""Reviews per split of the IMDb-shaped folder (the overlay's dataset.max_rows may take fewer)."""
VOCAB_SIZE = 1024
TINY = {"hidden": 32, "layers": 2, "heads": 2, "ffn": 64}
"""Model dimensions shared by the three tiny models."""
N_WORLD = 600
"""Red-team world dialogues the tiny GPT-2 is fit to, and labelled texts the hate classifier is fit to."""
FIT_BATCH, FIT_LR = 32, 3e-3
GPT2_FIT_STEPS, CLASSIFIER_FIT_STEPS = 150, 60
"""The short fits of the tiny GPT-2 and of the hate classifier (:func:`fit`): enough for GPT-2 to put the
world's insults into about one reply in ten, and for the classifier to tell them apart."""
GPT2_POSITIONS = 1024
"""GPT-2's context (n_positions), kept: prompts and replies are short, so the table costs little."""
ROBERTA_MAX_TOKENS = 512
HATE_LABELS = {0: "nothate", 1: "hate"}
"""id2label of facebook/roberta-hate-speech-dynabench-r4-target."""
GIBBERISH_LABELS = {0: "clean", 1: "mild gibberish", 2: "noise", 3: "word salad"}
"""id2label of madhurjindal/autonlp-Gibberish-Detector-492513457."""


def review(rng: random.Random) -> str:
    """One IMDb-shaped review: 2-4 of the world's attacker-style texts as sentences, some separated by
    IMDb's HTML line breaks."""
    from ..redteam.world import attacker_text

    parts = [attacker_text(rng).rstrip(".") + "." for _ in range(rng.randint(2, 4))]
    text = parts[0]
    for p in parts[1:]:
        text += ("<br /><br />" if rng.random() < 0.3 else " ") + p
    return text


def imdb_rows(split: str, n: int, seed: int = SEED) -> list[dict]:
    """``n`` rows ``{"text", "label"}`` of ``split``, ordered by label as the source is (labels 0/1 half
    each; ``unsupervised`` rows are -1)."""
    rng = random.Random(f"miniature/redteam_gpt2/imdb/{split}/{seed}")
    labels = [-1] * n if split == "unsupervised" else sorted(i % 2 for i in range(n))
    return [{"text": review(rng), "label": label} for label in labels]


def write_imdb(out: Path) -> dict[str, list[dict]]:
    """The IMDb-shaped folder (one Parquet file per split); returns its rows."""
    import pandas as pd

    out.mkdir(parents=True, exist_ok=True)
    rows = {split: imdb_rows(split, n) for split, n in N_REVIEWS.items()}
    for split, rs in rows.items():
        pd.DataFrame(rs, columns=["text", "label"]).to_parquet(out / f"{split}.parquet", index=False)
    return rows


def world_texts(n: int, seed: int = SEED) -> tuple[list[str], list[str], list[int]]:
    """From the red-team world: ``n`` dialogues (an attacker-style text and the reply a target of that
    world gives, toxic more often after trigger words) and ``n`` labelled texts for the hate classifier
    (texts, labels; 1 = holds an insult)."""
    from ..models import join_text
    from ..redteam.world import classifier_rows, target_rows

    dialogues = [join_text(r["prompt"] + ".", r["response"]) for r in target_rows(n, seed)]
    rows = classifier_rows(n, seed)
    return dialogues, [r["text"] for r in rows], [r["label"] for r in rows]


def fit(model, tok, texts: list[str], labels: list[int] | None, steps: int, seed: int = SEED) -> None:
    """A few AdamW steps on seeded mini-batches of ``texts``: next-token loss (``labels`` None, padding
    ignored) or classification loss. The tiny models then behave a little like the pretrained ones
    (a language model of the corpus, a classifier that reads toxic words), instead of giving every text
    the same output."""
    import torch

    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=FIT_LR)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is fastest, and many times faster on a busy machine
    try:
        _fit_steps(model, tok, texts, labels, steps, rng, opt)
    finally:
        torch.set_num_threads(threads)
    model.eval()


def _fit_steps(model, tok, texts, labels, steps, rng, opt) -> None:
    import torch

    for _ in range(steps):
        idx = rng.sample(range(len(texts)), min(FIT_BATCH, len(texts)))
        enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, truncation=True, max_length=64)
        if labels is None:
            target = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        else:
            target = torch.tensor([labels[i] for i in idx])
        loss = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], labels=target).loss
        opt.zero_grad()
        loss.backward()
        opt.step()


def make_gpt2(out: Path, texts: list[str], dialogues: list[str]) -> None:
    """A tiny GPT2LMHeadModel with a GPT-2-style tokenizer trained on ``texts`` and ``dialogues``, the model
    fit to the dialogues (its "pretraining": the attacker learns the reviews in the sft stage)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from ..models.vocab import train_tokenizer

    tok = train_tokenizer(texts + dialogues, "gpt2", VOCAB_SIZE)
    tok.model_max_length = GPT2_POSITIONS
    cfg = GPT2Config(vocab_size=len(tok), n_positions=GPT2_POSITIONS, n_embd=TINY["hidden"], n_layer=TINY["layers"],
                     n_head=TINY["heads"], n_inner=TINY["ffn"], bos_token_id=tok.bos_token_id,
                     eos_token_id=tok.eos_token_id)
    torch.manual_seed(SEED)
    model = GPT2LMHeadModel(cfg)
    tok.pad_token = tok.eos_token  # for the batches of fit() only; the saved tokenizer has none, as GPT-2's
    fit(model, tok, dialogues, None, GPT2_FIT_STEPS)
    tok.pad_token = None
    model.save_pretrained(out)
    tok.save_pretrained(out)


def make_toxicity(out: Path, texts: list[str], labels: list[int]) -> None:
    """A tiny RobertaForSequenceClassification with the hate-speech classifier's labels, fit to ``labels``
    (1 = hate)."""
    import torch
    from transformers import RobertaConfig, RobertaForSequenceClassification

    from ..models.vocab import train_tokenizer

    tok = train_tokenizer(texts, "roberta", VOCAB_SIZE)
    tok.model_max_length = ROBERTA_MAX_TOKENS
    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=TINY["hidden"], num_hidden_layers=TINY["layers"],
                        num_attention_heads=TINY["heads"], intermediate_size=TINY["ffn"],
                        max_position_embeddings=ROBERTA_MAX_TOKENS + 2, type_vocab_size=1,
                        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                        id2label=HATE_LABELS, label2id={v: k for k, v in HATE_LABELS.items()})
    torch.manual_seed(SEED + 1)
    model = RobertaForSequenceClassification(cfg)
    fit(model, tok, texts, labels, CLASSIFIER_FIT_STEPS)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def make_gibberish(out: Path) -> None:
    """A tiny DistilBertForSequenceClassification with the gibberish detector's labels and a WordPiece
    (bert-base-uncased) tokenizer."""
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertTokenizer

    from ..models import minilm_path

    tok = DistilBertTokenizer.from_pretrained(minilm_path())  # input ids and mask only, as DistilBERT's
    tok.model_max_length = ROBERTA_MAX_TOKENS
    cfg = DistilBertConfig(vocab_size=tok.vocab_size, dim=TINY["hidden"], n_layers=TINY["layers"],
                           n_heads=TINY["heads"], hidden_dim=TINY["ffn"], max_position_embeddings=ROBERTA_MAX_TOKENS,
                           pad_token_id=tok.pad_token_id, id2label=GIBBERISH_LABELS,
                           label2id={v: k for k, v in GIBBERISH_LABELS.items()})
    torch.manual_seed(SEED + 2)
    DistilBertForSequenceClassification(cfg).save_pretrained(out)
    tok.save_pretrained(out)


def make(out_dir: Path) -> None:
    """Write the IMDb-shaped folder and the three tiny models under ``out_dir`` (module docstring)."""
    out_dir = Path(out_dir)
    rows = write_imdb(out_dir / "imdb")
    reviews = [r["text"].replace("<br />", " ") for split in ("train", "unsupervised") for r in rows[split]]
    dialogues, texts, labels = world_texts(N_WORLD)
    make_gpt2(out_dir / "gpt2", reviews, dialogues)
    make_toxicity(out_dir / "toxicity", texts, labels)
    make_gibberish(out_dir / "gibberish")
