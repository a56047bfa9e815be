"""The embedded synthetic world: seeded instruction prompts and a hidden gold notion of quality.

Prompts ask for examples of one of eight topics (fruits, animals, colors, ...) through one of eight
instruction templates and an optional opener, and always end with ``"answer:"`` (a token boundary
for the MiniLM WordPiece tokenizer), e.g. ``"hello, name some fruits. answer:"``. Every word is
lowercase and a single token of the MiniLM (bert-base-uncased) vocabulary.

Gold quality (hidden from the policy and the proxy reward models)
-----------------------------------------------------------------
The response is split into words (:func:`rlhf_pipeline.text.words`: lower-cased runs of letters;
punctuation and digits are ignored). Filler words
(``and``, ``i``, ``like``, ``maybe``, ... see :data:`FILLER`) are neutral; every other word is a
*content* word. With ``T`` the word list of the prompt's topic::

    d = number of distinct content words in T          (distinct on-topic words)
    r = #content words - #distinct content words       (repetitions, on- or off-topic)
    o = number of distinct content words not in T      (off-topic words)
    n = number of words, fillers included               (length)

    quality = clip( min(d, 5) - 1.0 * r - 0.5 * o - 0.25 * max(0, n - 12) - 1.0 * [d == 0],  -3, 5 )

So a good answer lists 3-5 distinct on-topic words (quality 3..5); more than five distinct words earn
nothing extra and more than twelve words cost length; repeating a word costs a full point per
repetition; off-topic words cost half a point each; a response with no on-topic word costs one point.
Examples for the prompt "name some fruits. answer:":

    "apple, banana, cherry and grape"   d=4 r=0 o=0 n=5   ->  4.0
    "apple apple apple apple"           d=1 r=3 o=0 n=4   -> -2.0
    "dog, cat and horse"                d=0 r=0 o=3 n=4   -> -2.5

The overoptimization story: in the demonstrations more on-topic words usually means better, so an
imperfect proxy reward model tends to reward "more on-topic words"; a policy optimised hard against
it learns to repeat on-topic words and to ramble, which the gold quality punishes.

Splits: the pool of all (opener, template, topic) prompts is split per topic into disjoint train /
val / test prompt sets (seeded), so held-out prompts are never seen in training. Each row samples a
prompt of its split's pool and a demonstration whose quality varies on purpose (good lists, long
lists, short answers, repetition, off-topic answers, rambling) so that samples from the SFT policy
differ in quality and can be labelled into preference pairs. Same seed -> identical rows.
"""

from __future__ import annotations

import random
from typing import Any

from ..errors import PipelineError
from ..text import words

TOPICS: dict[str, tuple[str, ...]] = {
    "fruits": ("apple", "banana", "cherry", "grape", "lemon", "orange", "peach", "pear", "plum",
               "mango", "lime", "coconut"),
    "animals": ("dog", "cat", "horse", "cow", "pig", "sheep", "goat", "lion", "tiger", "bear",
                "wolf", "fox"),
    "colors": ("red", "blue", "green", "yellow", "purple", "pink", "black", "white", "brown",
               "gray", "silver", "violet"),
    "vegetables": ("carrot", "potato", "onion", "tomato", "cabbage", "pepper", "corn", "bean",
                   "pea", "garlic", "pumpkin", "mushroom"),
    "sports": ("soccer", "tennis", "golf", "hockey", "baseball", "basketball", "football", "rugby",
               "boxing", "cricket", "swimming", "skiing"),
    "vehicles": ("car", "truck", "bus", "train", "bike", "boat", "ship", "plane", "taxi", "van",
                 "tractor", "jeep"),
    "instruments": ("piano", "guitar", "violin", "drum", "flute", "trumpet", "harp", "cello",
                    "organ", "banjo", "saxophone", "clarinet"),
    "drinks": ("water", "tea", "coffee", "milk", "juice", "beer", "wine", "soda", "whiskey",
               "cocoa", "vodka", "rum"),
}
"""Topic name (as it appears in prompts) -> its on-topic words. Topics share no word."""

FILLER: frozenset[str] = frozenset((
    "and", "or", "i", "like", "also", "maybe", "the", "some", "my", "favorite", "are", "is", "think",
    "really", "so", "um", "well", "too", "a", "of",
))
"""Neutral words: they count towards length but are neither on- nor off-topic."""

TEMPLATES: tuple[str, ...] = (
    "name some {topic}.",
    "list a few {topic}.",
    "what {topic} do you know?",
    "tell me about {topic}.",
    "give me examples of {topic}.",
    "which {topic} do you like?",
    "can you name {topic}?",
    "write a list of {topic}.",
)
OPENERS: tuple[str, ...] = ("", "please", "hello,", "hey,", "quick question:", "for a quiz:")
ANSWER_CUE = "answer:"
"""Every prompt ends with this cue; the response follows after a space (see ``join_text``)."""

# Gold-quality constants (see the module docstring).
DISTINCT_CAP = 5
REPEAT_COST = 1.0
OFF_TOPIC_COST = 0.5
LENGTH_FREE = 12
LENGTH_COST = 0.25
NO_ANSWER_COST = 1.0
QUALITY_MIN, QUALITY_MAX = -3.0, 5.0

SPLITS = ("train", "val", "test")
HOLDOUT_PER_TOPIC = 6
"""Prompts per topic reserved for val and for test each (of 48 per topic)."""

LEADS = ("i like", "maybe", "well,", "i think", "my favorite are", "some are")


# --------------------------------------------------------------------------------------------
# Gold quality
# --------------------------------------------------------------------------------------------

def topic_of(prompt: str) -> str:
    """The topic a synthetic prompt asks about (the first topic name among its words)."""
    for w in words(prompt):
        if w in TOPICS:
            return w
    raise PipelineError(
        f"synthetic quality: prompt {prompt!r} names no topic; topics: {sorted(TOPICS)}"
    )


def quality_terms(prompt: str, response: str) -> dict[str, int]:
    """The counts the gold quality is made of: ``d`` distinct on-topic, ``r`` repeated, ``o``
    distinct off-topic content words and ``n`` words in all."""
    on_topic = set(TOPICS[topic_of(prompt)])
    ws = words(response)
    content = [w for w in ws if w not in FILLER]
    distinct = set(content)
    return {
        "d": len(distinct & on_topic),
        "r": len(content) - len(distinct),
        "o": len(distinct - on_topic),
        "n": len(ws),
    }


def quality_from_terms(d: int, r: int, o: int, n: int) -> float:
    """``clip(min(d,5) - r - 0.5 o - 0.25 max(0, n-12) - [d==0], -3, 5)``."""
    q = (min(d, DISTINCT_CAP) - REPEAT_COST * r - OFF_TOPIC_COST * o
         - LENGTH_COST * max(0, n - LENGTH_FREE) - NO_ANSWER_COST * (d == 0))
    return float(min(QUALITY_MAX, max(QUALITY_MIN, q)))


def quality(prompt: str, response: str) -> float:
    """Hidden gold quality of ``response`` to the synthetic ``prompt`` (formula: module docstring)."""
    return quality_from_terms(**quality_terms(prompt, response))


# --------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------

def make_prompt(opener: str, template: str, topic: str) -> str:
    """``"{opener} {instruction} answer:"`` without a leading space when there is no opener."""
    return " ".join(p for p in (opener, template.format(topic=topic), ANSWER_CUE) if p)


def all_prompts() -> list[str]:
    """Every prompt of the world (topics x templates x openers), in a fixed order."""
    return [make_prompt(o, t, topic) for topic in TOPICS for t in TEMPLATES for o in OPENERS]


def prompt_pool(seed: int) -> dict[str, list[str]]:
    """Disjoint prompt sets per split: per topic, a seeded shuffle gives ``HOLDOUT_PER_TOPIC``
    prompts to val, as many to test and the rest to train."""
    rng = random.Random(f"synthetic/prompts/{seed}")
    pool: dict[str, list[str]] = {s: [] for s in SPLITS}
    for topic in TOPICS:
        prompts = [make_prompt(o, t, topic) for t in TEMPLATES for o in OPENERS]
        rng.shuffle(prompts)
        k = HOLDOUT_PER_TOPIC
        pool["val"] += prompts[:k]
        pool["test"] += prompts[k:2 * k]
        pool["train"] += prompts[2 * k:]
    return pool


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------

def _as_list(ws: list[str], rng: random.Random) -> str:
    """Format words as ``"a, b and c"`` or ``"a b c"``."""
    if len(ws) > 1 and rng.random() < 0.7:
        return ", ".join(ws[:-1]) + " and " + ws[-1]
    return " ".join(ws)


def _other_topic_words(rng: random.Random, topic: str, k: int) -> list[str]:
    other = rng.choice([t for t in TOPICS if t != topic])
    return rng.sample(TOPICS[other], k)


def _with_lead(text: str, rng: random.Random, p: float) -> str:
    return f"{rng.choice(LEADS)} {text}" if text and rng.random() < p else text


def _good(rng: random.Random, topic: str) -> str:
    return _with_lead(_as_list(rng.sample(TOPICS[topic], rng.randint(3, 5)), rng), rng, 0.3)


def _long_list(rng: random.Random, topic: str) -> str:
    return _as_list(rng.sample(TOPICS[topic], rng.randint(6, 10)), rng)


def _short(rng: random.Random, topic: str) -> str:
    return _with_lead(_as_list(rng.sample(TOPICS[topic], rng.randint(1, 2)), rng), rng, 0.3)


def _repetitive(rng: random.Random, topic: str) -> str:
    base = rng.sample(TOPICS[topic], rng.randint(1, 2))
    ws = base + [rng.choice(base) for _ in range(rng.randint(2, 4))]
    rng.shuffle(ws)
    return " ".join(ws)


def _off_topic(rng: random.Random, topic: str) -> str:
    ws = _other_topic_words(rng, topic, rng.randint(1, 3))
    if rng.random() < 0.3:
        ws.insert(rng.randrange(len(ws) + 1), rng.choice(TOPICS[topic]))
    return _with_lead(_as_list(ws, rng), rng, 0.3)


def _rambling(rng: random.Random, topic: str) -> str:
    on = rng.sample(TOPICS[topic], rng.randint(2, 5))
    ws = on + [rng.choice(on) for _ in range(rng.randint(0, 3))]
    ws += _other_topic_words(rng, topic, rng.randint(0, 2))
    ws += [rng.choice(sorted(FILLER)) for _ in range(rng.randint(3, 8))]
    rng.shuffle(ws)
    return " ".join(ws[:20])


DEMO_STYLES = {
    "good": (_good, 0.30),
    "long_list": (_long_list, 0.10),
    "short": (_short, 0.15),
    "repetitive": (_repetitive, 0.15),
    "off_topic": (_off_topic, 0.10),
    "rambling": (_rambling, 0.20),
}
"""Demonstration styles and their probabilities: deliberately a mix of qualities."""


def demonstration(rng: random.Random, topic: str) -> str:
    """One SFT demonstration for ``topic`` in a randomly drawn style of :data:`DEMO_STYLES`."""
    names = list(DEMO_STYLES)
    style = rng.choices(names, weights=[DEMO_STYLES[s][1] for s in names])[0]
    return DEMO_STYLES[style][0](rng, topic)


def make_split(split: str, n: int, seed: int) -> list[dict[str, str]]:
    """``n`` rows ``{"prompt", "response"}`` for ``split``; prompts come from the split's own pool."""
    if split not in SPLITS:
        raise PipelineError(f"synthetic: unknown split {split!r}; splits: {list(SPLITS)}")
    prompts = prompt_pool(seed)[split]
    rng = random.Random(f"synthetic/{split}/{seed}")
    rows = []
    for _ in range(n):
        prompt = rng.choice(prompts)
        rows.append({"prompt": prompt, "response": demonstration(rng, topic_of(prompt))})
    return rows


def load_rows(cfg, seed: int) -> dict[str, list[dict[str, Any]]]:
    """The ``synthetic`` adapter: rows per split, sized by ``cfg.synthetic`` (``DatasetConfig``)."""
    sizes = {"train": cfg.synthetic.n_train, "val": cfg.synthetic.n_val, "test": cfg.synthetic.n_test}
    return {split: make_split(split, n, seed) for split, n in sizes.items()}


# --------------------------------------------------------------------------------------------
# Scored responses for fitting the default gold reward model
# --------------------------------------------------------------------------------------------

def _heavy_repeat(rng: random.Random, topic: str) -> str:
    return " ".join([rng.choice(TOPICS[topic])] * rng.randint(3, 20))


def _cycled(rng: random.Random, topic: str) -> str:
    base = rng.sample(TOPICS[topic], rng.randint(2, 5))
    return " ".join(base[i % len(base)] for i in range(rng.randint(len(base) + 1, 20)))


def _very_long(rng: random.Random, topic: str) -> str:
    vocab = list(TOPICS[topic]) + sorted(FILLER)
    return " ".join(rng.choice(vocab) for _ in range(rng.randint(13, 22)))


def _empty_ish(rng: random.Random, topic: str) -> str:
    return rng.choice(["", ".", "um", "and and", "i think so", "maybe", "well, i like some"])


def _off_topic_long(rng: random.Random, topic: str) -> str:
    others = [w for t, ws in TOPICS.items() if t != topic for w in ws]
    return " ".join(rng.choice(others) for _ in range(rng.randint(3, 16)))


def _random_mix(rng: random.Random, topic: str) -> str:
    on, off = TOPICS[topic], [w for t, ws in TOPICS.items() if t != topic for w in ws]
    p_on, p_fill = rng.random(), rng.random() * 0.5
    out = []
    for _ in range(rng.randint(0, 20)):
        u = rng.random()
        out.append(rng.choice(sorted(FILLER)) if u < p_fill
                   else rng.choice(on) if u < p_fill + (1 - p_fill) * p_on else rng.choice(off))
    return " ".join(out)


SCORED_STYLES = {
    "demonstration": (demonstration, 0.45),
    "heavy_repeat": (_heavy_repeat, 0.10),
    "cycled": (_cycled, 0.10),
    "very_long": (_very_long, 0.10),
    "empty_ish": (_empty_ish, 0.05),
    "off_topic_long": (_off_topic_long, 0.05),
    "random_mix": (_random_mix, 0.15),
}
"""Generators for gold-RM training data: demonstrations plus the degenerate outputs an optimised
policy drifts to (heavy repetition, cycling lists, rambling, empty, off-topic)."""


def sample_scored_responses(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` rows ``{"prompt", "response", "quality"}`` over the whole quality range."""
    rng = random.Random(f"synthetic/scored/{seed}")
    prompts = all_prompts()
    names = list(SCORED_STYLES)
    weights = [SCORED_STYLES[s][1] for s in names]
    rows = []
    for _ in range(n):
        prompt = rng.choice(prompts)
        style = rng.choices(names, weights=weights)[0]
        response = SCORED_STYLES[style][0](rng, topic_of(prompt))
        rows.append({"prompt": prompt, "response": response, "quality": quality(prompt, response)})
    return rows
