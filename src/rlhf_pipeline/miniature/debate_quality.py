"""Assets of the ``debate_quality`` miniature: debate tournaments on QuALITY with Meta-Llama-3-8B-Instruct
(served to the debaters by an OpenAI-compatible server, run in-process as the judge, and fine-tuned with
LoRA SFT and DPO), shrunk to sizes that run on CPU in seconds.

:func:`make` writes, under ``out_dir`` (``results/miniature/debate_quality/``, the paths
``config/experiments/miniature/debate_quality.yaml`` names):

- ``quality/``: QuALITY as released (``QuALITY.v1.0.1.htmlstripped.train`` and ``.dev``: one JSON article per
  line, ``article_id``, ``set_unique_id``, ``article``, ``questions: [{question, question_unique_id, options,
  gold_label, difficult, validation: [{untimed_best_distractor, ...}], ...}]``, the layout
  :mod:`rlhf_pipeline.debate.data` reads). The articles are passages of the project's synthetic debate world
  (:func:`rlhf_pipeline.debate.data.make_story`), so each question is answerable by quoting a sentence; each
  question has four options (the correct answer, the world's distractor and two more values of the same
  kind), annotators' votes whose majority best distractor is the world's distractor, and a ``difficult``
  flag on :data:`DIFFICULT_SHARE` of the questions (``difficult_only: true`` keeps those);
- ``Meta-Llama-3-8B-Instruct/``: a tiny ``LlamaForCausalLM`` of Llama 3's shape (grouped-query attention,
  RoPE base 500000, untied embeddings, ``<|eot_id|>`` ending a turn) with a Llama-3-style byte-level BPE
  tokenizer and chat template (:func:`rlhf_pipeline.models.vocab.train_tokenizer`, style ``llama3``) trained
  on the passages, questions and the prompt file's templates. It is the judge's model, the SFT base model
  and the model the miniature OpenAI-compatible server (:mod:`rlhf_pipeline.miniature.serve`) serves to the
  debaters. Its weights are random with a wide initialisation (:data:`INIT_RANGE`), so the judge's
  probabilities move with the transcript it reads: best-of-N candidates then differ in score by more than
  the DPO pair threshold, as a real judge's do.

Seeded and deterministic: the data come from seeded generators, the tokenizer trainer is deterministic and the
model is built after ``torch.manual_seed``.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from ..debate import data as world
from ..debate.config import SyntheticDebateConfig
from ..io import write_jsonl

SEED = 0
MODEL_DIR = "Meta-Llama-3-8B-Instruct"
DATA_DIR = "quality"
STORIES = {"train": 4, "dev": 8}
"""Articles per QuALITY file (dev is split by story into val and test by the data stage)."""
STORY = SyntheticDebateConfig(questions_per_story=3, facts_per_story=8, two_fact_fraction=0.25)
DIFFICULT_SHARE = 2 / 3
"""Share of questions annotated as difficult (QuALITY's hard subset is about half)."""
OPTIONS = 4
VOTES = 3
"""Untimed validators per question (QuALITY has five; three give a clear majority here)."""
VOCAB_SIZE = 1024
LLAMA = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5,
             tie_word_embeddings=False)
"""Llama-3-8B-Instruct's architecture (GQA 4:1 there, 2:1 here) at a few hundred thousand parameters."""
INIT_RANGE = 0.15
"""Standard deviation of the random weights (0.02 in a trained model's config): wide enough that the judge's
answer-letter logits differ visibly between transcripts."""


def _options(rng: random.Random, correct: str, distractor: str, kind: str, passage: dict[str, list[str]]
             ) -> list[str]:
    """Four distinct options of the answer's kind: correct, distractor and two more (the passage's first)."""
    pool = [v for v in passage[kind] + world.global_values(kind) if v not in (correct, distractor)]
    extra = list(dict.fromkeys(pool))[: OPTIONS - 2]
    options = [correct, distractor, *extra]
    rng.shuffle(options)
    return options


def quality_articles(split: str, n: int, seed: int = SEED) -> list[dict]:
    """``n`` QuALITY article rows for ``split`` ("train" or "dev"), each with its questions."""
    rows = []
    offset = 0 if split == "train" else STORIES["train"]
    flags = world.two_fact_flags(n, STORY.questions_per_story, STORY.two_fact_fraction, seed + offset)
    for i in range(n):
        story = world.make_story(seed, offset + i, STORY, flags[i])
        rng = random.Random(f"miniature/debate_quality/{split}/{i}/{seed}")
        article_id = str(20000 + 37 * (offset + i))
        writer = f"W{offset + i:03d}"
        values = world.passage_values(story.facts)
        questions = []
        for j, (cand, distractor, _) in enumerate(story.questions):
            options = _options(rng, cand.correct, distractor, cand.answer_kind, values)
            gold, best = options.index(cand.correct) + 1, options.index(distractor) + 1
            other = next(k for k in range(1, OPTIONS + 1) if k not in (gold, best))
            votes = [best] * (VOTES - 1) + [other]
            rng.shuffle(votes)
            questions.append({
                "question": cand.question, "question_unique_id": f"{article_id}_{writer}_{j + 1}",
                "options": options, "writer_label": gold, "gold_label": gold,
                "validation": [{"untimed_annotator_id": f"A{k}", "untimed_answer": gold,
                                "untimed_eval1_answerability": 1, "untimed_eval2_context": 2,
                                "untimed_best_distractor": v} for k, v in enumerate(votes)],
                "speed_validation": [{"speed_annotator_id": f"S{k}", "speed_answer": rng.randint(1, OPTIONS)}
                                     for k in range(VOTES)],
                "difficult": int(rng.random() < DIFFICULT_SHARE),
            })
        rows.append({"article_id": article_id, "set_unique_id": f"{article_id}_{writer}", "batch_num": "22",
                     "writer_id": writer, "source": "Gutenberg", "title": f"Story {article_id}",
                     "year": 1960, "author": "Anonymous", "topic": "Fiction", "url": "", "license": "",
                     "article": story.passage, "questions": questions})
    return rows


def write_quality(folder: Path, seed: int = SEED) -> dict[str, list[dict]]:
    """The QuALITY files (``QuALITY.v1.0.1.htmlstripped.{train,dev}``) under ``folder``; returns the rows."""
    out = {split: quality_articles(split, n, seed) for split, n in STORIES.items()}
    for split, rows in out.items():
        write_jsonl(folder / f"QuALITY.v1.0.1.htmlstripped.{split}", rows)
    return out


def corpus(articles: list[dict], prompts_file: Path | None = None) -> list[str]:
    """The texts the tokenizer learns: passages, questions, options (and the prompt templates when given)."""
    texts = [a["article"] for a in articles]
    texts += [q["question"] + " " + " ".join(q["options"]) for a in articles for q in a["questions"]]
    if prompts_file is not None and prompts_file.is_file():
        texts.append(prompts_file.read_text())
    return texts


def make_llama3(out_dir: Path, texts: list[str], seed: int = SEED) -> None:
    """A tiny Llama-3-shaped causal LM with its Llama-3-style tokenizer and chat template, saved to ``out_dir``."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from ..models.vocab import train_tokenizer

    tok = train_tokenizer(texts, "llama3", VOCAB_SIZE)
    eot, end = tok.convert_tokens_to_ids("<|eot_id|>"), tok.convert_tokens_to_ids("<|end_of_text|>")
    cfg = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=eot,
                      initializer_range=INIT_RANGE, **LLAMA)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=[end, eot],
                                               do_sample=True, temperature=0.6, top_p=0.9)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)


def make(out_dir: Path) -> None:
    """Write the miniature's QuALITY files and tiny Llama 3 under ``out_dir``."""
    out_dir = Path(out_dir)
    rows = write_quality(out_dir / DATA_DIR)
    prompts = Path(__file__).resolve().parents[3] / "config/debate/prompts.yaml"
    make_llama3(out_dir / MODEL_DIR, corpus([a for split in rows.values() for a in split], prompts))
