"""Quotes: ``<quote>...</quote>`` spans of a speech, verified against the passage.

A quote is verified when it occurs in the passage

1. exactly (``exact``), else
2. after normalising both (lower case, punctuation removed, whitespace collapsed; ``normalized``),
   else
3. approximately: rapidfuzz's ``partial_ratio`` of the normalised quote against the normalised
   passage (the best-matching passage window of the quote's length) is at least the configured
   threshold, 0-100 (``fuzzy``).

The judge sees every quote marked: ``<quote>`` becomes ``<v_quote>`` (verified) or ``<u_quote>``
(unverified), the convention of the debate research code. A verified quote is shown as the passage's
own text, whole words in the passage's casing and punctuation (``QuoteCheck.match``), never as the
speaker wrote it: a fuzzy match scores about 91 for a short quote with one word substituted ("painted
the telescope on Saturday" against the passage's "... on Sunday"), so the judge reads the passage's
"Sunday" inside ``<v_quote>``, as in the research code, which rewrites a fuzzily matched quote to the
passage's text. A quote that cuts a passage word (``happy`` of ``unhappy``) is shown with the whole
word; an exact quote of whole words is shown unchanged. The fuzzy span is the run of whole passage
words around rapidfuzz's window that is most similar to the quote (``fuzz.ratio``). A fuzzy match is
not rejected for its differing words: they are never shown, and a debater who altered them argues
against its own verified quote; ``debate.quote_fuzzy_threshold: 100`` verifies exact and normalised
quotes only. An unverified quote is shown as the speaker wrote it, inside ``<u_quote>``. The speech is
otherwise unchanged (``Speech.raw``, the training text, is the speaker's exact text). An empty quote is
unverified. An unclosed ``<quote>`` is left as text (not a quote).
"""

from __future__ import annotations

import functools
import re

from .types import QuoteCheck

QUOTE = re.compile(r"<quote>(.*?)</quote>", re.DOTALL)
_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w")


def normalize(text: str) -> str:
    """Lower case, punctuation removed, runs of whitespace as one space, stripped."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


@functools.lru_cache(maxsize=16)
def _normalized_with_offsets(passage: str) -> tuple[str, tuple[int, ...]]:
    """The passage normalised as :func:`normalize` does, lowering one character at a time, and for each
    of its characters the offset of the passage character it came from (a space: the separator's first)."""
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(passage):
        for c in ch.lower():
            if _WORD.match(c):
                chars.append(c)
                origin.append(i)
            elif chars and chars[-1] != " ":
                chars.append(" ")
                origin.append(i)
    if chars and chars[-1] == " ":
        chars.pop()
        origin.pop()
    return "".join(chars), tuple(origin)


def _is_word(text: str, i: int) -> bool:
    return 0 <= i < len(text) and _WORD.match(text[i]) is not None


def _whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    """``[start, end)`` widened so that it cuts no word of ``text``."""
    while start > 0 and _is_word(text, start) and _is_word(text, start - 1):
        start -= 1
    while end < len(text) and _is_word(text, end - 1) and _is_word(text, end):
        end += 1
    return start, end


def _find(text: str, sub: str) -> int:
    """The first occurrence of ``sub`` in ``text`` that cuts no word, else its first occurrence; -1 if none."""
    first = i = text.find(sub)
    while i >= 0:
        if (not (_is_word(sub, 0) and _is_word(text, i - 1))
                and not (_is_word(sub, len(sub) - 1) and _is_word(text, i + len(sub)))):
            return i
        i = text.find(sub, i + 1)
    return first


def _fuzzy_span(nq: str, npass: str, start: int, end: int) -> tuple[int, int]:
    """The whole-word span of ``npass`` near rapidfuzz's window ``[start, end)`` most similar to ``nq``:
    starting at one of the two word starts at or before ``start`` or the two after it, ending at one of
    the two word ends at or after ``end`` or the two before it (the first best, by ``fuzz.ratio``)."""
    from rapidfuzz import fuzz

    while start < end and npass[start] == " ":
        start += 1
    while end > start and npass[end - 1] == " ":
        end -= 1
    words = [(m.start(), m.end()) for m in re.finditer(r"[^ ]+", npass)]
    starts = [s for s, _ in words if s <= start][-2:] + [s for s, _ in words if start < s < end][:2]
    ends = [e for _, e in words if start < e < end][-2:] + [e for _, e in words if e >= end][:2]
    spans = [(s, e) for s in starts for e in ends if s < e]
    return max(spans, key=lambda se: fuzz.ratio(nq, npass[se[0]:se[1]]))


def _original(passage: str, origin: tuple[int, ...], start: int, end: int) -> str:
    """The passage text of the normalised span ``[start, end)`` (whole words, ``end > start``)."""
    s, e = _whole_words(passage, origin[start], origin[end - 1] + 1)
    return passage[s:e]


def check_quote(quote: str, passage: str, threshold: float) -> QuoteCheck:
    """Verify one quote against the passage; ``match`` is the passage text shown for it (see the module
    docstring)."""
    from rapidfuzz import fuzz

    q = quote.strip()
    if q and q in passage:
        i = _find(passage, q)
        s, e = _whole_words(passage, i, i + len(q))
        return QuoteCheck(quote, "verified", "exact", 100.0, passage[s:e])
    nq = normalize(quote)
    if not nq:
        return QuoteCheck(quote, "unverified", None, 0.0, None)
    npass, origin = _normalized_with_offsets(passage)
    if nq in npass:
        i = _find(npass, nq)
        return QuoteCheck(quote, "verified", "normalized", 100.0, _original(passage, origin, i, i + len(nq)))
    found = fuzz.partial_ratio_alignment(nq, npass)
    score = float(found.score) if found is not None else 0.0
    if found is not None and score >= threshold:
        s, e = _fuzzy_span(nq, npass, found.dest_start, found.dest_end)
        return QuoteCheck(quote, "verified", "fuzzy", score, _original(passage, origin, s, e))
    return QuoteCheck(quote, "unverified", None, score, None)


def verify_quotes(speech: str, passage: str, threshold: float) -> tuple[str, list[QuoteCheck]]:
    """``(shown, checks)``: the speech with each quote marked for the judge (a verified one as the passage's
    text, ``check.match``), and one check per quote in order of appearance."""
    checks: list[QuoteCheck] = []

    def mark(m: re.Match) -> str:
        check = check_quote(m.group(1), passage, threshold)
        checks.append(check)
        if check.status != "verified":
            return f"<u_quote>{m.group(1)}</u_quote>"
        shown = m.group(1) if check.match == m.group(1).strip() else check.match
        return f"<v_quote>{shown}</v_quote>"

    return QUOTE.sub(mark, speech), checks
