"""Debate datasets: the synthetic world of facts, the QuALITY adapter, the stage and the reader."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from rlhf_pipeline.debate import data
from rlhf_pipeline.debate.backends.simple import sentences
from rlhf_pipeline.debate.config import DebateDatasetConfig, SyntheticDebateConfig
from rlhf_pipeline.debate.data import load_questions, majority_distractor, prepare_debate_data
from rlhf_pipeline.debate.quotes import verify_quotes
from rlhf_pipeline.errors import PipelineError
from rlhf_pipeline.io import read_jsonl


def syn(seed: int = 0, **kw) -> DebateDatasetConfig:
    return DebateDatasetConfig(seed=seed, synthetic=SyntheticDebateConfig(**kw))


@pytest.fixture(scope="module")
def default_splits():
    return data.make_synthetic(syn())


def all_rows(splits):
    return [q for s in data.SPLITS for q in splits[s]]


# ---------------------------------------------------------------------------------------------
# An independent reader of the synthetic passages: parses the sentences back into facts and
# answers each question kind by its own rules, so the generator is checked against the text.
# ---------------------------------------------------------------------------------------------

NAME = r"[A-Z][a-z]+ [A-Z][a-z]+"
FACT_PATTERNS = {
    "home": rf"(?P<p>{NAME}) lives in (?P<t>\w+)\.",
    "work": rf"(?P<p>{NAME}) works in (?P<t>\w+)\.",
    "visit": rf"(?P<p>{NAME}) visited (?P<t>\w+) on (?P<d>\w+)\.",
    "action": rf"(?P<p>{NAME}) (?P<v>\w+) the (?P<o>\w+) on (?P<d>\w+)\.",
    "count": rf"(?P<p>{NAME}) (?P<v>\w+) (?P<n>\d+) (?P<i>\w+) in (?P<t>\w+)\.",
}
PAST = {**{b: p for p, b in data.ACTIONS.items()}, **{b: p for p, b in data.COUNT_VERBS.items()}}


def parse(passage: str) -> list[dict]:
    facts = []
    for s in sentences(passage):
        kinds = [k for k, pat in FACT_PATTERNS.items() if re.fullmatch(pat, s)]
        assert len(kinds) == 1, s
        facts.append({"kind": kinds[0], **re.fullmatch(FACT_PATTERNS[kinds[0]], s).groupdict()})
    return facts


def solve(question: str, facts: list[dict]) -> set[str]:
    """Every answer the passage supports for the question."""
    def f(kind, **kw):
        return [x for x in facts if x["kind"] == kind and all(x[k] == v for k, v in kw.items())]

    def homes(people):
        return {x["t"] for p in people for x in f("home", p=p)}

    def only(xs):
        return {x["p"] for x in xs} if len(xs) == 1 else set()  # the question's person must be unique

    rules = [
        (r"Where does the person who (\w+) the (\w+) live\?", lambda v, o: homes(only(f("action", v=v, o=o)))),
        (r"Where does the person who visited (\w+) on (\w+) live\?", lambda t, d: homes(only(f("visit", t=t, d=d)))),
        (r"On which day did the person who lives in (\w+) (\w+) the (\w+)\?",
         lambda t, b, o: {x["d"] for p in only(f("home", t=t)) for x in f("action", p=p, v=PAST[b], o=o)}),
        (r"How many (\w+) did the person who visited (\w+) on (\w+) (\w+)\?",
         lambda i, t, d, b: {x["n"] for p in only(f("visit", t=t, d=d)) for x in f("count", p=p, v=PAST[b], i=i)}),
        (rf"Where does ({NAME}) live\?", lambda p: {x["t"] for x in f("home", p=p)}),
        (rf"Where does ({NAME}) work\?", lambda p: {x["t"] for x in f("work", p=p)}),
        (rf"Which town did ({NAME}) visit on (\w+)\?", lambda p, d: {x["t"] for x in f("visit", p=p, d=d)}),
        (rf"On which day did ({NAME}) visit (\w+)\?", lambda p, t: {x["d"] for x in f("visit", p=p, t=t)}),
        (rf"On which day did ({NAME}) (\w+) the (\w+)\?",
         lambda p, b, o: {x["d"] for x in f("action", p=p, v=PAST[b], o=o)}),
        (r"Who (\w+) the (\w+)\?", lambda v, o: {x["p"] for x in f("action", v=v, o=o)}),
        (rf"How many (\w+) did ({NAME}) (\w+)\?", lambda i, p, b: {x["n"] for x in f("count", p=p, v=PAST[b], i=i)}),
    ]
    for pattern, rule in rules:
        m = re.fullmatch(pattern, question)
        if m:
            return rule(*m.groups())
    raise AssertionError(f"unparsed question {question!r}")


def answer_kind(value: str) -> str:
    if value in data.TOWNS:
        return "town"
    if value in data.DAYS:
        return "day"
    if value.isdigit():
        return "number"
    first, last = value.split(" ")
    assert first in data.FIRST_NAMES and last in data.SURNAMES, value
    return "person"


# ---------------------------------------------------------------------------------------------
# Synthetic
# ---------------------------------------------------------------------------------------------

def test_synthetic_same_seed_same_files_different_seed_different(tmp_path):
    counts = prepare_debate_data(syn(seed=3), tmp_path / "a")
    prepare_debate_data(syn(seed=3), tmp_path / "b")
    prepare_debate_data(syn(seed=4), tmp_path / "c")
    assert counts == {"train": 96, "val": 48, "test": 96}
    for split in data.SPLITS:
        a, b, c = ((tmp_path / d / f"{split}.jsonl").read_bytes() for d in "abc")
        assert a == b
        assert a != c
        passages_a = {r["passage"] for r in read_jsonl(tmp_path / "a" / f"{split}.jsonl")}
        passages_c = {r["passage"] for r in read_jsonl(tmp_path / "c" / f"{split}.jsonl")}
        assert not passages_a & passages_c
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["questions"] == counts and summary["stories"] == {"train": 24, "val": 12, "test": 24}


def test_synthetic_splits_are_disjoint_by_story(default_splits):
    stories = {s: {q.story_id for q in default_splits[s]} for s in data.SPLITS}
    assert {s: len(v) for s, v in stories.items()} == {"train": 24, "val": 12, "test": 24}
    assert not stories["train"] & stories["val"] and not stories["train"] & stories["test"]
    assert not stories["val"] & stories["test"]
    by_story = Counter(q.story_id for q in all_rows(default_splits))
    assert set(by_story.values()) == {4}
    assert len({q.id for q in all_rows(default_splits)}) == 240


def test_synthetic_correct_index_is_balanced(default_splits):
    for split, qs in default_splits.items():
        assert sum(q.correct_index for q in qs) == len(qs) // 2, split
    # not a fixed pattern: both orders occur among the first rows
    assert len({q.correct_index for q in default_splits["test"][:6]}) == 2


def test_synthetic_questions_are_answered_by_the_passage_and_only_by_it(default_splits):
    for q in all_rows(default_splits):
        facts = parse(q.passage)
        assert len(facts) == 8
        correct, wrong = q.answers[q.correct_index], q.answers[1 - q.correct_index]
        assert solve(q.question, facts) == {correct}, (q.question, q.passage)
        assert wrong != correct


def test_synthetic_answers_are_the_same_kind_of_thing(default_splits):
    expected = {k: kind for k, (kind, _) in data.QUESTION_KINDS.items()}
    seen = Counter()
    for q in all_rows(default_splits):
        kind = q.source.split("/")[2]
        assert [answer_kind(a) for a in q.answers] == [expected[kind]] * 2, q
        seen[expected[kind]] += 1
    assert set(seen) == set(data.ANSWER_KINDS)  # where, when, who and how-many questions all occur


def test_synthetic_distractors_come_from_the_passage_where_possible(default_splits):
    origins = Counter()
    for q in all_rows(default_splits):
        origin = q.source.split("/")[3]
        wrong = q.answers[1 - q.correct_index]
        assert bool(re.search(rf"\b{wrong}\b", q.passage)) == (origin != "outside"), q
        origins[origin] += 1
    assert origins["outside"] < 0.1 * sum(origins.values())
    assert origins["related"] > origins["passage"] > origins["outside"]


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 1.0])
def test_synthetic_two_fact_share_is_the_configured_one(fraction):
    splits = data.make_synthetic(syn(n_stories=20, two_fact_fraction=fraction))
    rows = all_rows(splits)
    two = [q for q in rows if q.source.split("/")[1] == "two_fact"]
    assert len(two) == round(fraction * len(rows))
    assert all(data.QUESTION_KINDS[q.source.split("/")[2]][1] for q in two)
    if fraction == 1.0:  # several chain kinds, not one
        assert len({q.source.split("/")[2] for q in two}) >= 3


def test_synthetic_sentences_are_plain_and_quotable(default_splits):
    clashes = 0
    for q in all_rows(default_splits)[::4]:
        sents = sentences(q.passage)
        assert len(sents) == 8 and all(s.endswith(".") and s.count(".") == 1 for s in sents)
        _, checks = verify_quotes("".join(f"<quote>{s}</quote>" for s in sents), q.passage, 90.0)
        assert [c.method for c in checks] == ["exact"] * 8
        people = {f["p"] for f in parse(q.passage)}
        firsts = Counter(p.split()[0] for p in people)
        lasts = Counter(p.split()[1] for p in people)
        clashes += max(firsts.values()) > 1 or max(lasts.values()) > 1
    assert 10 <= clashes <= 50  # of 60 stories: name clashes are common but not universal


def test_synthetic_sizes_follow_the_config():
    splits = data.make_synthetic(syn(n_stories=10, questions_per_story=2, facts_per_story=5, val_fraction=0.1,
                                     test_fraction=0.3))
    assert {s: len(v) for s, v in splits.items()} == {"train": 12, "val": 2, "test": 6}
    assert all(len(sentences(q.passage)) == 5 for q in all_rows(splits))


def test_synthetic_impossible_sizes_name_the_key():
    with pytest.raises(PipelineError, match=r"^debate\.dataset\.synthetic\.questions_per_story: 4 questions"):
        data.make_synthetic(syn(n_stories=2, facts_per_story=2, two_fact_fraction=1.0))


def test_empty_tournament_split_fails_before_writing(tmp_path):
    with pytest.raises(PipelineError, match=r"^debate dataset synthetic: split 'test' is empty .*dataset\.split"):
        prepare_debate_data(syn(n_stories=1), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_split_stories_keeps_order_and_sizes():
    ids = [f"s{i}" for i in range(10)]
    out = data.split_stories(ids, {"val": 2, "test": 3}, seed=0, salt="t")
    assert [len(out[s]) for s in ("train", "val", "test")] == [5, 2, 3]
    assert sorted(out["train"] + out["val"] + out["test"]) == sorted(ids)
    assert all(out[s] == sorted(out[s], key=ids.index) for s in out)
    assert data.split_stories(ids, {"val": 20}, seed=0, salt="t")["train"] == []


def test_balance_puts_the_correct_answer_where_correct_index_says():
    rows = [(f"q{i}", "s", "P.", "Q?", f"right{i}", f"wrong{i}", "x") for i in range(5)]
    qs = data.balance(rows, seed=1, salt="t")
    assert sum(q.correct_index for q in qs) == 2
    assert all(q.answers[q.correct_index] == f"right{i}" and q.answers[1 - q.correct_index] == f"wrong{i}"
               for i, q in enumerate(qs))


def test_minilm_quoting_judge_is_above_chance_but_not_perfect():
    """The world's purpose: a MiniLM debater quoting the sentences most similar to question + its
    answer, and a judge comparing each side's best quote with question + answer, do better than
    chance on one-fact questions but not perfectly overall, and about chance on two-fact ones."""
    import numpy as np
    from sentence_transformers import SentenceTransformer

    from rlhf_pipeline.models import minilm_path

    model = SentenceTransformer(minilm_path(), device="cpu")
    rows = all_rows(data.make_synthetic(syn(seed=1, n_stories=20)))
    texts = sorted({s for q in rows for s in sentences(q.passage)}
                   | {f"{q.question} {a}" for q in rows for a in q.answers})
    emb = dict(zip(texts, model.encode(texts, batch_size=128, normalize_embeddings=True)))
    p_correct = {"one_fact": [], "two_fact": []}
    for q in rows:
        sents = sentences(q.passage)
        best = []
        for a in q.answers:
            query = emb[f"{q.question} {a}"]
            quote = max(sents, key=lambda s, query=query: float(emb[s] @ query))
            best.append(float(emb[quote] @ query))
        z = 10 * np.array(best)
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        p_correct[q.source.split("/")[1]].append(p[q.correct_index] > 0.5)
    one, two = np.mean(p_correct["one_fact"]), np.mean(p_correct["two_fact"])
    overall = np.mean(p_correct["one_fact"] + p_correct["two_fact"])
    assert one > 0.8 and 0.25 < two < 0.75 and 0.6 < overall < 0.95, (one, two, overall)


# ---------------------------------------------------------------------------------------------
# QuALITY
# ---------------------------------------------------------------------------------------------

OPTS = ["alpha", "beta", "gamma", "delta"]


def qq(qid: str, gold=1, difficult=1, votes=(2, 2, 3), options=None) -> dict:
    """A QuALITY question shaped like the release's."""
    return {"question": f"What about {qid}?", "question_unique_id": qid, "options": options or list(OPTS),
            "writer_label": gold, "gold_label": gold, "difficult": difficult,
            "validation": [{"untimed_annotator_id": str(i), "untimed_answer": gold, "untimed_eval1_answerability": 1,
                            "untimed_eval2_context": 2, "untimed_best_distractor": v} for i, v in enumerate(votes)],
            "speed_validation": [{"speed_annotator_id": "9", "speed_answer": 2}]}


def article(aid: str, questions: list[dict], set_id: str | None = None) -> dict:
    return {"article_id": aid, "set_unique_id": set_id or f"{aid}_W1", "batch_num": "1", "writer_id": "1",
            "source": "Gutenberg", "title": f"Story {aid}", "year": 1950, "author": "Anon", "topic": "sf",
            "url": "http://example.org", "license": "pd", "article": f"Text of story {aid}. It is long.",
            "questions": questions}


def write_lines(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def quality_dir(tmp_path):
    d = tmp_path / "QuALITY.v1.0.1"
    d.mkdir()
    train = [article("t1", [qq("t1_1"), qq("t1_2", difficult=0)]), article("t2", [qq("t2_1", gold=3)])]
    dev = [article(f"d{k}", [qq(f"d{k}_1"), qq(f"d{k}_2", gold=2, votes=(1, 3, 3))]) for k in range(1, 5)]
    dev[0]["questions"] += [qq("d1_bad_gold", gold=5), qq("d1_no_gold", gold=None), qq("d1_only_gold", votes=(1, 1)),
                            qq("d1_no_votes", votes=())]
    dev.append(article("d1", [qq("d1_3")], set_id="d1_W2"))  # the same story, another writer's questions
    write_lines(d / "QuALITY.v1.0.1.htmlstripped.train", train)
    write_lines(d / "QuALITY.v1.0.1.htmlstripped.dev", dev)
    write_lines(d / "QuALITY.v1.0.1.dev", [{"garbage": True}])  # the raw-HTML copy: not read
    write_lines(d / "QuALITY.v1.0.1.htmlstripped.test", [article("x1", [qq("x1_1", gold=None)])])
    (d / "README.txt").write_text("not data")
    return d


def quality(path, **kw) -> DebateDatasetConfig:
    return DebateDatasetConfig(name="quality", path=str(path), **kw)


@pytest.mark.parametrize(("votes", "gold", "expected"), [
    ([2, 2, 3], 1, 2),           # majority
    ([3, 2, 2, 3], 1, 2),        # tie -> the lowest option number
    ([1, 1, 4], 1, 4),           # votes for the gold answer do not count
    ([1, 1], 1, None),           # only the gold answer named
    ([], 2, None),               # no votes
    ([None, 0, 5, True, "2", 3], 1, 3),  # missing, out-of-range (1-based), bool and string votes are ignored
])
def test_majority_distractor(votes, gold, expected):
    assert majority_distractor([{"untimed_best_distractor": v} for v in votes], gold, list(OPTS)) == expected


def test_majority_distractor_skips_an_option_with_the_gold_text():
    assert majority_distractor([{"untimed_best_distractor": 2}] * 2 + [{"untimed_best_distractor": 3}], 1,
                               ["same", " same ", "other", "x"]) == 3


def test_quality_folder_difficult_only(quality_dir):
    splits, skipped = data.make_quality(quality(quality_dir))
    assert skipped == {"excluded_story": 0, "not_difficult": 1, "bad_gold_label": 2, "no_distractor": 2,
                       "story_in_train": 0}
    assert [q.id for q in splits["train"]] == ["t1_1", "t2_1"]
    by_id = {q.id: q for q in all_rows(splits)}
    # 1-based labels: gold 1 -> alpha, majority distractor 2 -> beta; gold 3 -> gamma
    assert sorted(by_id["t1_1"].answers) == ["alpha", "beta"] and by_id["t1_1"].answers[by_id["t1_1"].correct_index] \
        == "alpha"
    assert by_id["t2_1"].answers[by_id["t2_1"].correct_index] == "gamma"
    q = by_id["d2_2"]  # gold 2 (beta), votes (1, 3, 3) -> gamma
    assert q.answers[q.correct_index] == "beta" and q.answers[1 - q.correct_index] == "gamma"
    assert q.passage == "Text of story d2. It is long." and q.question == "What about d2_2?"
    assert q.source == "quality/dev/d2_W1" and q.story_id == "d2"
    # dev -> val / test by story: 4 stories, 2 each; d1's two question sets stay together
    stories = {s: {q.story_id for q in splits[s]} for s in data.SPLITS}
    assert stories["train"] == {"t1", "t2"} and len(stories["val"]) == 2 and len(stories["test"]) == 2
    assert stories["val"] | stories["test"] == {"d1", "d2", "d3", "d4"} and not stories["val"] & stories["test"]
    for split, qs in splits.items():
        assert sum(q.correct_index for q in qs) == len(qs) // 2, split
    assert len(all_rows(splits)) == 2 + 4 * 2 + 1


def test_quality_all_questions_and_exclude_list(quality_dir):
    splits, skipped = data.make_quality(quality(quality_dir, difficult_only=False, exclude_stories=["d3", "t2"]))
    assert skipped == {"excluded_story": 3, "not_difficult": 0, "bad_gold_label": 2, "no_distractor": 2,
                       "story_in_train": 0}
    ids = {q.id for q in all_rows(splits)}
    assert "t1_2" in ids and not {"t2_1", "d3_1", "d3_2"} & ids


def test_quality_story_split_is_seeded(quality_dir):
    def val(seed):
        return {q.story_id for q in data.make_quality(quality(quality_dir, seed=seed))[0]["val"]}
    assert val(0) == val(0)
    assert len({frozenset(val(s)) for s in range(8)}) > 1


def test_quality_dev_story_in_train_is_dropped(tmp_path):
    write_lines(tmp_path / "train.jsonl", [article("a", [qq("a_1")])])
    write_lines(tmp_path / "dev.jsonl", [article("a", [qq("a_2")], set_id="a_W2"), article("b", [qq("b_1")])])
    splits, skipped = data.make_quality(quality(tmp_path))
    assert skipped["story_in_train"] == 1
    assert [q.id for q in all_rows(splits)] == ["a_1", "b_1"]


def test_quality_single_file_is_read_as_named(tmp_path):
    f = write_lines(tmp_path / "QuALITY.v1.0.1.htmlstripped.train", [article("a", [qq("a_1")])])
    splits, _ = data.make_quality(quality(f))
    assert [q.id for q in splits["train"]] == ["a_1"] and not splits["test"]
    g = write_lines(tmp_path / "mine.jsonl", [article("a", [qq("a_1")]), article("b", [qq("b_1")])])
    splits, _ = data.make_quality(quality(g))  # a file that names no split: dev
    assert not splits["train"] and len(splits["val"]) == 1 and len(splits["test"]) == 1


def test_quality_flat_hub_rows():
    """A hub copy with one row per question (tasksource/QuALITY's columns), in memory."""
    from datasets import Dataset, DatasetDict

    def flat(aid, qid, **kw):
        q = qq(qid, **kw)
        if qid is None:
            del q["question_unique_id"]
        a = article(aid, [])
        del a["questions"]
        return {**a, "article_id": int(aid), "set_unique_id": f"{aid}_W1", **q}

    dsd = DatasetDict({"train": Dataset.from_list([flat("1", "1_1"), flat("1", "1_2", difficult=0)]),
                       "validation": Dataset.from_list([flat("2", "2_1"), flat("3", "3_1", gold=2, votes=(2, 4)),
                                                        flat("4", "4_1"), flat("5", None)])})
    questions = data.read_quality_hub(dsd, "tasksource/QuALITY")
    assert questions[0].where == "tasksource/QuALITY split 'train' row 0"
    splits, skipped = data.make_quality(quality("tasksource/QuALITY"), questions)
    assert skipped["not_difficult"] == 1
    assert [q.id for q in splits["train"]] == ["1_1"] and splits["train"][0].story_id == "1"
    assert {q.story_id for q in splits["val"] + splits["test"]} == {"2", "3", "4", "5"}
    assert "5_W1-q3" in {q.id for q in all_rows(splits)}  # no question_unique_id: set id and row
    q3 = next(q for q in all_rows(splits) if q.id == "3_1")
    assert q3.answers[q3.correct_index] == "beta" and q3.answers[1 - q3.correct_index] == "delta"


def test_quality_prepare_writes_files_and_counts(quality_dir, tmp_path):
    counts = prepare_debate_data(quality(quality_dir), tmp_path / "out")
    assert counts["train"] == 2 and counts["val"] + counts["test"] == 9
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["skipped"]["bad_gold_label"] == 2 and summary["questions"] == counts
    assert len(load_questions(tmp_path / "out" / "test.jsonl")) == counts["test"]


@pytest.mark.parametrize(("row", "message"), [
    ("{not json", r"QuALITY\.v1\.0\.1\.htmlstripped\.dev:2: not valid JSON"),
    ({"article_id": "a", "questions": []}, r"htmlstripped\.dev:2: field 'article' must be a non-empty string"),
    ({**article("a", []), "article_id": None}, r"htmlstripped\.dev:2: field 'article_id' must be"),
    (article("a", [{**qq("a_1"), "options": "abcd"}]),
     r"htmlstripped\.dev:2: questions\[0\]: field 'options' must be a list of at least two strings"),
    (article("a", [qq("a_1"), {**qq("a_2"), "question": ""}]),
     r"htmlstripped\.dev:2: questions\[1\]: field 'question' must be a non-empty string"),
    (article("a", [{k: v for k, v in qq("a_1").items() if k != "difficult"}]),
     r"htmlstripped\.dev:2: questions\[0\]: no 'difficult' annotation"),
])
def test_quality_malformed_rows_name_file_line_and_field(tmp_path, row, message):
    f = tmp_path / "QuALITY.v1.0.1.htmlstripped.dev"
    f.write_text(json.dumps(article("ok", [qq("ok_1")])) + "\n" + (row if isinstance(row, str) else json.dumps(row))
                 + "\n")
    with pytest.raises(PipelineError, match=message):
        data.make_quality(quality(f))


def test_quality_bad_paths(tmp_path):
    for name in ("a.dev", "b.dev"):
        write_lines(tmp_path / name, [article("a", [qq("a_1")])])
    with pytest.raises(PipelineError, match=r"several files for QuALITY split 'dev' \['a\.dev', 'b\.dev'\]"):
        data.make_quality(quality(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PipelineError, match=r"^debate\.dataset\.path: .*empty: no QuALITY file"):
        data.make_quality(quality(empty))


# ---------------------------------------------------------------------------------------------
# load_questions
# ---------------------------------------------------------------------------------------------

def row(i: int, **kw) -> dict:
    return {"id": f"q{i}", "story_id": "s", "passage": "A. B.", "question": "Which?", "answers": ["a", "b"],
            "correct_index": i % 2, "source": "test", **kw}


def test_load_questions_reads_rows_in_order_and_caps(tmp_path):
    f = write_lines(tmp_path / "test.jsonl", [row(i) for i in range(5)])
    assert [q.id for q in load_questions(f)] == [f"q{i}" for i in range(5)]
    assert [q.id for q in load_questions(f, max_questions=2)] == ["q0", "q1"]
    assert load_questions(f)[1].correct_index == 1
    f.write_text(f.read_text() + json.dumps(row(5, correct_index=-1)) + "\n")
    with pytest.raises(PipelineError, match=r"test\.jsonl:6: field 'correct_index' must be 0 or 1, got -1"):
        load_questions(f, max_questions=2)  # rows past the cap are checked too


@pytest.mark.parametrize(("bad", "message"), [
    (row(2, correct_index=2), r"test\.jsonl:3: field 'correct_index' must be 0 or 1, got 2"),
    (row(2, correct_index=True), r"test\.jsonl:3: field 'correct_index' must be 0 or 1, got True"),
    (row(2, answers=["a", "b", "c"]), r"test\.jsonl:3: field 'answers' must be a list of two non-empty strings"),
    ({k: v for k, v in row(2).items() if k != "passage"}, r"test\.jsonl:3: missing field\(s\) \['passage'\]"),
    (row(2, question=" "), r"test\.jsonl:3: field 'question' must be a non-empty string"),
    (row(0), r"test\.jsonl:3: duplicate id 'q0' \(first at line 1\)"),
    ("[1, 2]", r"test\.jsonl:3: expected a JSON object, got list"),
    ("{oops", r"test\.jsonl:3: not valid JSON"),
])
def test_load_questions_bad_rows_name_file_line_and_field(tmp_path, bad, message):
    f = tmp_path / "test.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in (row(0), row(1)))
                 + (bad if isinstance(bad, str) else json.dumps(bad)) + "\n")
    with pytest.raises(PipelineError, match=message):
        load_questions(f)


def test_load_questions_missing_and_empty_files(tmp_path):
    with pytest.raises(PipelineError, match=r"nope\.jsonl: file not found"):
        load_questions(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(PipelineError, match=r"empty\.jsonl: no questions"):
        load_questions(tmp_path / "empty.jsonl")
