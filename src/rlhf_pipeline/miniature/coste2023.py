"""Assets of the ``coste2023`` miniature: Coste et al. 2023 (pythia policy, pythia-70m proxy RMs, AlpacaFarm
instructions, the AlpacaFarm gold RM ``reward-model-human``) shrunk to sizes that run on CPU in seconds.

:func:`make` writes, under ``out_dir`` (``results/miniature/coste2023/``, the paths
``config/experiments/miniature/coste2023.yaml`` names):

- ``alpaca_farm/``: AlpacaFarm's ``alpaca_instructions`` splits as data files (``sft``, ``preference``,
  ``unlabeled``, ``val``; columns ``instruction``, ``input``, ``output``; the layout
  :mod:`rlhf_pipeline.data.alpaca_farm` reads), made from the synthetic world
  (:mod:`rlhf_pipeline.data.synthetic`): its instructions without the ``answer:`` cue, sometimes the topic as
  an ``input``, and its demonstrations of deliberately varied quality as outputs;
- ``pythia-1.4b/``: a tiny ``GPTNeoXForCausalLM`` (pythia's architecture: rotary on a quarter of each head,
  parallel residual, untied embeddings) with a GPT-NeoX-style byte-level BPE tokenizer trained on that data
  (it stands in for the ``EleutherAI/pythia-1.4b`` tokenizer too);
- ``pythia-70m/``: a smaller tiny ``GPTNeoXForCausalLM`` with the same tokenizer (pythia models share one), the
  proxy RMs' ``init`` backbone (saved with its LM head, as the hub's pythia-70m is; the reward model keeps the
  base model);
- ``reward-model-human/``: the gold RM in the layout AlpacaFarm's weight-diff recovery writes (see
  :mod:`rlhf_pipeline.reward.alpacafarm`): config.json is a ``RewardConfig`` (``model_type: reward_model``)
  recording only ``backbone_model_name_or_path`` (the recovery script's default ``./pretrained_models/sft10k``,
  which does not exist here, as after copying the models to another machine), sharded ``pytorch_model-*.bin``
  + index with ``backbone_model.*`` (a tiny ``LlamaForCausalLM``) and ``reward_head.*`` (Linear with bias),
  and a Llama-style tokenizer (BOS prepended, no EOS). Its head is fitted (least squares, the intercept as
  its bias) to the synthetic world's hidden quality of scored responses in AlpacaFarm's reward-model format
  (:func:`rlhf_pipeline.reward.gold.alpacafarm_format`), so gold rewards mean something in the miniature's
  plots; the backbone stays at its seeded random initialisation;
- ``sft10k/``: that backbone as a ``LlamaForCausalLM`` directory next to ``reward-model-human/``, where the
  recovery script puts the SFT model; its config.json is where the gold RM's Llama architecture comes from.

Seeded and deterministic: the data come from seeded generators, the tokenizers' trainers are deterministic and
every model is built after ``torch.manual_seed``.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from ..data import synthetic
from ..io import write_jsonl

SEED = 0
SPLIT_ROWS = {"sft": 256, "preference": 64, "unlabeled": 64, "val": 64}
"""Rows per AlpacaFarm split (the real ones: 10k, 20k, 20k, 2k)."""
SYNTHETIC_SPLIT = {"sft": "train", "preference": "train", "unlabeled": "train", "val": "val"}
"""Which synthetic prompt pool each AlpacaFarm split draws from (val's prompts are held out)."""
INPUT_SHARE = 0.25
"""Share of rows that name their topic in ``input`` (AlpacaFarm's ``### Input:`` block)."""
VOCAB_SIZE = 600
GOLD_VOCAB_SIZE = 500
GOLD_FIT_ROWS = 1024
"""Scored synthetic responses the gold RM's head is fitted to."""
GOLD_FIT_BATCH = 64
"""Texts per forward pass while the gold RM's features are computed for that fit."""
GOLD_RIDGE = 1e-2
GOLD_SHARD_SIZE = "700KB"
"""Shards of the gold RM's state dict: three, as the 7B recovery's ``pytorch_model-0000k-of-00003.bin`` (transformers
4.29's 10GB shards of a float32 7B model)."""
GOLD_BACKBONE_RECORDED = "./pretrained_models/sft10k"
"""``backbone_model_name_or_path`` as the recovery script records it by default (``--path-to-sft10k``)."""

POLICY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=512)
RM_BACKBONE = dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                   max_position_embeddings=512)
GOLD = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=512)


def alpaca_row(prompt: str, response: str, rng: random.Random) -> dict[str, str]:
    """A synthetic ``prompt`` / ``response`` as an AlpacaFarm row: the prompt without its answer cue is the
    instruction; with probability :data:`INPUT_SHARE` the input names the topic (else it is empty)."""
    instruction = prompt.removesuffix(synthetic.ANSWER_CUE).strip()
    given = f"topic: {synthetic.topic_of(prompt)}" if rng.random() < INPUT_SHARE else ""
    return {"instruction": instruction, "input": given, "output": response}


def alpaca_splits(seed: int = SEED) -> dict[str, list[dict[str, str]]]:
    """Rows of each AlpacaFarm split (:data:`SPLIT_ROWS`), from the synthetic world's splits."""
    out = {}
    for split, n in SPLIT_ROWS.items():
        rng = random.Random(f"miniature/coste2023/{split}/{seed}")
        rows = synthetic.make_split(SYNTHETIC_SPLIT[split], n, seed=seed + len(out))
        out[split] = [alpaca_row(r["prompt"], r["response"], rng) for r in rows]
    return out


def write_alpaca_farm(folder: Path, splits: dict[str, list[dict[str, str]]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        write_jsonl(folder / f"{split}.jsonl", rows)


def _texts(splits: dict[str, list[dict[str, str]]]) -> list[str]:
    from ..data.alpaca_farm import alpaca_prompt

    return [f"{alpaca_prompt(r['instruction'], r['input'])}\n{r['output']}" for rows in splits.values() for r in rows]


def _gpt_neox(tok, sizes: dict, seed: int):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(seed)
    cfg = GPTNeoXConfig(vocab_size=len(tok), rotary_pct=0.25, use_parallel_residual=True,
                        tie_word_embeddings=False, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                        pad_token_id=tok.pad_token_id, **sizes)
    return GPTNeoXForCausalLM(cfg)


def save_pythia(path: Path, tok, sizes: dict, seed: int) -> None:
    """A tiny pythia-shaped causal LM with ``tok`` at ``path``."""
    _gpt_neox(tok, sizes, seed).save_pretrained(path)
    tok.save_pretrained(path)


@torch.no_grad()
def fit_gold_head(model, head, tok, rows: list[dict], batch_size: int) -> dict[str, float]:
    """Set ``head`` (Linear with bias) to the ridge fit of z-scored quality on ``model``'s (a causal LM's) last-token
    state for ``rows`` (``prompt``, ``response``, ``quality``), texts in AlpacaFarm's reward-model format; the
    intercept is the bias. Returns the fit's Pearson correlation with quality."""
    from ..reward.gold import alpacafarm_format
    from ..reward.heads import encode_texts, last_token_pool, padded_batches
    from ..stats import pearson

    texts = [alpacafarm_format(r["prompt"], r["response"]) for r in rows]
    ids = encode_texts(tok, texts, add_eos=False)
    feats = torch.zeros(len(ids), model.config.hidden_size)
    model.eval()
    for idx, batch in padded_batches(tok, ids, batch_size):
        hidden = model.model(**batch).last_hidden_state
        feats[idx] = last_token_pool(hidden, batch["attention_mask"]).float()
    q = torch.tensor([float(r["quality"]) for r in rows])
    y = (q - q.mean()) / q.std()
    x = torch.cat([feats, torch.ones(len(rows), 1)], dim=1)  # the intercept absorbs the features' mean
    w = torch.linalg.solve(x.T @ x + GOLD_RIDGE * torch.eye(x.shape[1]), x.T @ y)
    head.weight.copy_(w[:-1][None])
    head.bias.copy_(w[-1:])
    return {"pearson": pearson((feats @ w[:-1]).numpy(), q.numpy())}


def save_gold_rm(path: Path, texts: list[str], seed: int) -> dict[str, float]:
    """AlpacaFarm's ``reward-model-human`` in miniature (see the module docstring) at ``path``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ..models import load_tokenizer
    from ..models.vocab import train_tokenizer
    from ..reward.alpacafarm import save_alpacafarm_layout

    path = Path(path)
    train_tokenizer(texts, "llama3", GOLD_VOCAB_SIZE, path)
    tok = load_tokenizer(str(path))
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=False, **GOLD)
    model = LlamaForCausalLM(cfg)
    head = torch.nn.Linear(cfg.hidden_size, 1)
    scored = [{**r, "prompt": r["prompt"].removesuffix(synthetic.ANSWER_CUE).strip()}
              for r in synthetic.sample_scored_responses(GOLD_FIT_ROWS, seed)]
    fit = fit_gold_head(model, head, tok, scored, batch_size=GOLD_FIT_BATCH)
    sft10k = path.parent / Path(GOLD_BACKBONE_RECORDED).name
    model.save_pretrained(sft10k)
    tok.save_pretrained(sft10k)
    save_alpacafarm_layout(model, head, path, GOLD_BACKBONE_RECORDED, max_shard_size=GOLD_SHARD_SIZE)
    tok.save_pretrained(path)
    return fit


def make(out_dir: Path) -> None:
    """Write the miniature's data and tiny models under ``out_dir`` (listed in the module docstring)."""
    from ..models.vocab import train_tokenizer

    out_dir = Path(out_dir)
    splits = alpaca_splits()
    write_alpaca_farm(out_dir / "alpaca_farm", splits)
    texts = _texts(splits)
    tok = train_tokenizer(texts, "gpt_neox", VOCAB_SIZE)
    save_pythia(out_dir / "pythia-1.4b", tok, POLICY, SEED)
    save_pythia(out_dir / "pythia-70m", tok, RM_BACKBONE, SEED + 1)
    save_gold_rm(out_dir / "reward-model-human", texts, SEED + 2)
