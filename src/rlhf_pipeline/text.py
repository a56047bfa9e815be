"""Plain-text helpers shared by the synthetic worlds and the red-teaming rewards."""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W\d_]+")


def words(text: str) -> list[str]:
    """The words of ``text``, lower-cased: runs of letters (any alphabet). Digits, underscores,
    punctuation and spaces separate words and are no part of one: ``"Wolf2, cafés!"`` ->
    ``["wolf", "cafés"]``; a text of digits and punctuation only has no word."""
    return _WORD.findall(text.lower())
