"""rlhf_pipeline.text.words: the one definition of a word (synthetic worlds, red-team gibberish share)."""

import pytest

from rlhf_pipeline.text import words


@pytest.mark.parametrize(("text", "expected"), [
    ("I like Apples, pears and KIWI.", ["i", "like", "apples", "pears", "and", "kiwi"]),
    ("wolf wolf", ["wolf", "wolf"]),
    ("Wolf2, cafés!", ["wolf", "cafés"]),      # digits separate words; any alphabet's letters count
    ("snake_case  answer:", ["snake", "case", "answer"]),
    ("123 !! 4.5", []),                          # digits and punctuation only: no word
    ("", []),
])
def test_words(text, expected):
    assert words(text) == expected
