"""Quote verification (rlhf_pipeline.debate.quotes), with real rapidfuzz: a verified quote is shown to the judge as
the passage's own text, so a quote that changes a name, a number or a day is never shown verified with the altered
words; ``Speech.raw`` stays the speaker's text."""

import re

import pytest
from debate_helpers import clock, tcfg

from rlhf_pipeline.debate.quotes import check_quote, verify_quotes
from rlhf_pipeline.debate.rounds import Match, play_round
from rlhf_pipeline.debate.types import Question, Verdict

# a passage of the synthetic data set (debate/data.py), the one of the tournament where the bug was found
PASSAGE = ("Lena Sorensen painted the bicycle on Thursday. Ada Albrecht found the bicycle on Thursday. Felix Castell "
           "painted the telescope on Sunday. Ada Albrecht painted the telescope on Sunday. Ada Albrecht found the "
           "telescope on Thursday. Felix Castell lives in Riga. Lena Sorensen visited Riga on Saturday. The mayor "
           "counted 412 sheep that spring. Tam later sailed to Lima with a cargo of wool. The mill was painted blue "
           "every summer. Bo was unhappy.")
V_QUOTE = re.compile(r"<v_quote>(.*?)</v_quote>", re.DOTALL)


def shown_verified(shown: str) -> list[str]:
    """The texts the judge sees as verified; each must be the passage's own text."""
    found = V_QUOTE.findall(shown)
    assert all(v.strip() in PASSAGE for v in found), found
    return found


@pytest.mark.parametrize("quote, passage_text, altered", [
    # found in a tournament: marked verified (93.6) with the speaker's "saturday" shown
    ("felix castell painted the telescope on saturday", "Felix Castell painted the telescope on Sunday", "saturday"),
    ("anton albrecht painted the telescope on sunday.", "Ada Albrecht painted the telescope on Sunday", "anton"),
    ("felix castell lives in graz.", "Felix Castell lives in Riga", "graz"),
])
def test_a_quote_changing_the_fact_under_debate_is_shown_with_the_passages_words(quote, passage_text, altered):
    check = check_quote(quote, PASSAGE, 90.0)
    assert (check.status, check.method, check.text) == ("verified", "fuzzy", quote) and check.score >= 90
    assert check.match == passage_text
    shown, checks = verify_quotes(f"The passage says <quote>{quote}</quote>, so I win.", PASSAGE, 90.0)
    assert shown == f"The passage says <v_quote>{passage_text}</v_quote>, so I win." and checks == [check]
    assert altered not in shown.lower()


@pytest.mark.parametrize("quote, passage_text", [
    ("The mayor counted 413 sheep", "The mayor counted 412 sheep"),                          # a number
    ("Tim later sailed to Lima", "Tam later sailed to Lima"),                                # a name
    ("Tam later sailed to Rome with a cargo", "Tam later sailed to Lima with a cargo"),      # a place
    ("The mill was painted red every summer", "The mill was painted blue every summer"),    # any content word
])
def test_a_short_quote_with_one_word_substituted_is_shown_as_the_passage_text(quote, passage_text):
    shown, [check] = verify_quotes(f"<quote>{quote}</quote>", PASSAGE, 90.0)
    assert (check.status, check.method) == ("verified", "fuzzy") and 90 <= check.score < 100
    assert shown == f"<v_quote>{passage_text}</v_quote>" and shown_verified(shown) == [passage_text]


@pytest.mark.parametrize("quote, method, passage_text", [
    ("the mayor countd 412 sheep that spring", "fuzzy", "The mayor counted 412 sheep that spring"),  # a typo
    ("felix castel painted the telescope", "fuzzy", "Felix Castell painted the telescope"),  # a typo in a name
    ("Tam Later sailed to Lima, with a cargo of wool", "normalized", "Tam later sailed to Lima with a cargo of wool"),
    ("felix castell painted the telescope on sunday", "normalized", "Felix Castell painted the telescope on Sunday"),
    ("THE MILL WAS PAINTED BLUE", "normalized", "The mill was painted blue"),
])
def test_a_legitimate_near_quote_is_shown_as_the_passages_own_text(quote, method, passage_text):
    raw = f"A <quote>{quote}</quote> B"
    shown, [check] = verify_quotes(raw, PASSAGE, 90.0)
    assert (check.status, check.method, check.text, check.match) == ("verified", method, quote, passage_text)
    assert shown == f"A <v_quote>{passage_text}</v_quote> B" and shown_verified(shown) == [passage_text]


def test_the_fuzzy_span_is_whole_passage_words_in_the_passages_spelling():
    # the passage's line breaks, dashes and double spaces are kept; no word is cut at either end
    passage = "Before that,  Felix Castell —\npainted the telescope on Sunday; afterwards nothing."
    check = check_quote("felix castell painted the telescope on saturday", passage, 90.0)
    assert check.method == "fuzzy" and check.match == "Felix Castell —\npainted the telescope on Sunday"
    check = check_quote("FELIX CASTELL PAINTED", passage, 90.0)
    assert check.method == "normalized" and check.match == "Felix Castell —\npainted"


def test_exact_and_unverified_quotes_are_shown_as_written():
    raw = ("<quote> Felix Castell lives in Riga. </quote> and <quote>Zed Quorn flew to Mars</quote> and "
           "<quote></quote> and <quote>unclosed")
    shown, checks = verify_quotes(raw, PASSAGE, 90.0)
    assert shown == ("<v_quote> Felix Castell lives in Riga. </v_quote> and <u_quote>Zed Quorn flew to Mars</u_quote>"
                     " and <u_quote></u_quote> and <quote>unclosed")
    assert [(c.status, c.method, c.match) for c in checks] == [
        ("verified", "exact", "Felix Castell lives in Riga."), ("unverified", None, None), ("unverified", None, None)]


def test_a_quote_cutting_a_passage_word_is_shown_with_the_whole_word():
    shown, [check] = verify_quotes("Bo was <quote>happy</quote>.", PASSAGE, 90.0)
    assert (check.method, check.match) == ("exact", "unhappy") and shown == "Bo was <v_quote>unhappy</v_quote>."
    # a whole-word occurrence is preferred to an earlier one inside a word
    assert check_quote("Riga", "Rigamarole in Riga.", 90.0).match == "Riga"


def test_threshold_100_verifies_exact_and_normalised_quotes_only():
    assert check_quote("the mayor countd 412 sheep", PASSAGE, 100.0).status == "unverified"
    assert check_quote("the mayor counted 412 sheep", PASSAGE, 100.0).method == "normalized"
    below = check_quote("The mill was painted red every summer", PASSAGE, 95.0)
    assert below.status == "unverified" and below.match is None and 90 <= below.score < 95


class Says:
    def __init__(self, name, text):
        self.name, self.text = name, text

    def speak(self, ctx):
        return self.text

    def provenance(self):
        return {"backend": "test"}


class Judge:
    name = "j"

    def __init__(self):
        self.calls = []

    def judge(self, ctx):
        self.calls.append(ctx)
        return Verdict([0.5, 0.5], True, "test")

    def provenance(self):
        return {"backend": "test-judge"}


def test_a_round_keeps_the_speakers_raw_text_and_shows_the_judge_the_passage_text():
    q = Question("q0", "s0", PASSAGE, "On which day did Felix Castell paint the telescope?", ["Sunday", "Saturday"],
                 0, "test")
    lie = "Saturday: <quote>felix castell painted the telescope on saturday</quote>"
    truth = "Sunday: <quote>Felix Castell painted the telescope on Sunday.</quote>"
    judge = Judge()
    rec = play_round(Match("debate/r", "debate", q, {"a": "x", "b": "y"}, {"a": 1, "b": 0}, 7),
                     tcfg(rounds=1), {"x": Says("x", lie), "y": Says("y", truth)}, judge, tournament="t", clock=clock)
    a, b = rec.speeches
    assert a.raw == lie and b.raw == truth  # the training text is the speaker's own
    assert a.shown == "Saturday: <v_quote>Felix Castell painted the telescope on Sunday</v_quote>"
    assert b.shown == "Sunday: <v_quote>Felix Castell painted the telescope on Sunday.</v_quote>"
    assert a.quotes[0].text == "felix castell painted the telescope on saturday"
    assert a.quotes[0].match == "Felix Castell painted the telescope on Sunday"
    assert [s.shown for s in judge.calls[0].speeches] == [a.shown, b.shown]
    assert all("saturday" not in v.lower() for s in rec.speeches for v in shown_verified(s.shown))
