"""Quotes: ``<quote>...</quote>`` spans of a speech, verified against the passage.

A quote is verified when it occurs in the passage

1. exactly (``exact``), else
2. after normalising both (lower case, punctuation removed, whitespace collapsed; ``normalized``),
   else
3. approximately: rapidfuzz's ``partial_ratio`` of the normalised quote against the normalised
   passage (the best-matching passage window of the quote's length) is at least the configured
   threshold, 0-100 (``fuzzy``).

The judge sees every quote marked: ``<quote>`` becomes ``<v_quote>`` (verified) or ``<u_quote>``
(unverified), the convention of the debate research code; the speech is otherwise unchanged. An
empty quote is unverified. An unclosed ``<quote>`` is left as text (not a quote).
"""

from __future__ import annotations

import re

from .types import QuoteCheck

QUOTE = re.compile(r"<quote>(.*?)</quote>", re.DOTALL)
_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower case, punctuation removed, runs of whitespace as one space, stripped."""
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


def check_quote(quote: str, passage: str, threshold: float, norm_passage: str | None = None) -> QuoteCheck:
    """Verify one quote against the passage (see the module docstring)."""
    from rapidfuzz import fuzz

    if quote.strip() and quote.strip() in passage:
        return QuoteCheck(quote, "verified", "exact", 100.0, quote.strip())
    nq = normalize(quote)
    npass = normalize(passage) if norm_passage is None else norm_passage
    if not nq:
        return QuoteCheck(quote, "unverified", None, 0.0, None)
    if nq in npass:
        return QuoteCheck(quote, "verified", "normalized", 100.0, nq)
    found = fuzz.partial_ratio_alignment(nq, npass)
    score = float(found.score) if found is not None else 0.0
    if found is not None and score >= threshold:
        return QuoteCheck(quote, "verified", "fuzzy", score, npass[found.dest_start:found.dest_end])
    return QuoteCheck(quote, "unverified", None, score, None)


def verify_quotes(speech: str, passage: str, threshold: float) -> tuple[str, list[QuoteCheck]]:
    """``(shown, checks)``: the speech with each quote marked for the judge, and one check per quote
    in order of appearance."""
    norm_passage = normalize(passage)
    checks: list[QuoteCheck] = []

    def mark(m: re.Match) -> str:
        check = check_quote(m.group(1), passage, threshold, norm_passage)
        checks.append(check)
        tag = "v_quote" if check.status == "verified" else "u_quote"
        return f"<{tag}>{m.group(1)}</{tag}>"

    return QUOTE.sub(mark, speech), checks
