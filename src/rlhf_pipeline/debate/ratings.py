"""Tournament statistics: ``rounds.csv``, ``ratings.csv``, ``judge.csv``, ``calibration.csv``,
``win_matrix.png`` and ``calibration.png`` from a tournament's round records.

Everything is computed from the rounds table (:func:`rounds_table`), so the statistics can be
recomputed from ``rounds.csv`` alone (``pandas.read_csv`` of it gives the same numbers).

``rounds.csv`` (one row per round, sorted by ``round_id``, so chunking does not change the order; failed
rounds are kept, never dropped)
    ``tournament, chunk, round_id, question_id, format``: where the round comes from.
    ``debater_a, debater_b``: the debater in each slot; empty where the format has no such slot
    (consultancy has only slot ``a``, the consultant; the empty round has none).
    ``side_a, side_b``: the answer index each slot defends (empty for a missing slot).
    ``correct_index``: the correct answer's index.
    ``p_a, p_b``: the judge's probability for the answer slot a / b defends (empty for a missing
    slot); ``p_correct``: for the correct answer. Probabilities are the judge's, by answer index
    (a judge without probabilities, e.g. ``anthropic``, gives 0/1).
    ``winner``: the slot whose answer got the higher probability, ``a`` or ``b``; ``tie`` at exactly
    0.5. Consultancy (one slot): ``a`` if p_a > 0.5, ``tie`` at 0.5, empty if the undefended answer
    got more. Empty round and failed rounds: empty.
    ``correct_won``: the correct answer got > 0.5 (``True``/``False``; empty when failed).
    ``first_position``: the answer index shown first to the judge ("(A)"); ``p_first``: its probability.
    ``verified_a, unverified_a, verified_b, unverified_b``: quote counts in the slot's speeches
    (the selected speeches; best-of-N alternatives are not counted); empty for a missing slot.
    ``status``: ``ok`` / ``failed``; ``error``: the failure (empty when ok). A failed round's
    probabilities, winner and ``correct_won`` are empty (NaN).
    Floats are written at full precision (shortest round-trip repr), so re-judging with the same judge
    reproduces the file byte for byte.

``ratings.csv`` (one row per debater, strongest first)
    ``debater``.
    ``bt_strength``: Bradley–Terry log-strength (natural log; mean zero over the rated debaters, so
    ``P(i beats j) = 1 / (1 + exp(s_j - s_i))``), fitted by ``choix.ilsr_pairwise_dense`` (iterative
    Luce spectral ranking, which converges to the maximum-likelihood estimate) with regularisation
    ``alpha`` = :data:`BT_ALPHA`: alpha is added to every pairwise rate of the LSR Markov chain, about
    ``2 * alpha`` pseudo-wins each way between every pair of debaters of similar strength, so a
    debater who won every comparison still gets a finite strength. Comparisons are the ok
    debate-format rounds between *different* debaters: the winner gets one win, a tie half a win to
    each. Empty (NaN) for a debater without such rounds (e.g. only self-play).
    ``bt_lo, bt_hi``: 95% bootstrap percentile interval of ``bt_strength``: the questions that have
    comparisons are resampled with replacement (all rounds of a sampled question, so both
    side-swapped rounds stay together) ``bootstrap`` times with ``numpy.random.default_rng(seed)``;
    each resample is re-fitted and centred over the debaters it rates. Empty when ``bootstrap`` = 0.
    ``bt_comparisons``: the debater's comparisons (rounds) in the fit.
    ``win_rate``: wins (ties half) / debate rounds against other debaters (ok rounds);
    ``win_rate_correct`` / ``win_rate_incorrect``: the same over the rounds in which it defended the
    correct / the wrong answer. ``debates, debates_correct, debates_incorrect``: those round counts.
    ``self_play_rounds``: debate rounds against itself (any status; not in win rates or strength).
    ``quote_validity``: verified quotes / all quotes in its speeches, all formats and rounds;
    ``quotes``: that denominator.
    ``rounds``: rounds it played in any format and status (a self-play round counts once);
    ``failed``: how many of those failed.

``judge.csv`` (one row per format, in the order debate, consultancy, double_consultancy, empty)
    ``format``.
    ``accuracy``: mean over questions of the mean ``p_correct`` over that question's ok rounds in the
    format (the two side-swapped rounds; every pairing that debated it); ``accuracy_se``: its
    standard error over questions (sample standard deviation / sqrt(n), empty for n < 2);
    ``n_questions``; ``rounds`` (ok) and ``failed``.
    ``correct_won_rate``: share of ok rounds in which the correct answer got > 0.5 (a tie is not a win).
    ``vs_empty``: ``accuracy`` minus the empty-round baseline's (empty when the tournament has no
    ok empty rounds; 0 on the empty row itself).
    ``first_position_bias``: mean ``p_first`` - 0.5, averaged per question first like accuracy, with
    ``first_position_bias_se`` over questions. Positive: the judge favours the answer shown first.
    ``slot_a_bias``: the speaking-order bias, in the formats with two slots (debate, double_consultancy;
    empty in the others): mean ``p_a`` - 0.5, averaged per question first like accuracy, with
    ``slot_a_bias_se`` over questions. Positive: the judge favours the answer of the speaker it reads
    first (slot a: a's speech before b's in each debate turn; all of a's before b's in double
    consultancy). On each question slot a defends each answer once, so the answers' merit cancels, and
    with the tournament's ``balanced_slots`` (default) every two different debaters take both slot
    orders, so their strength does (with ``balanced_slots: false`` a stronger debater kept in slot a
    shows up here as bias).
    ``ece``: expected calibration error of the format's calibration table (count-weighted mean
    |accuracy - confidence| over the bins of :func:`calibration`).

``calibration.csv`` (:func:`calibration`)
    ``format`` (``all`` = every format together, then each format), ``bin`` (0-based), ``lo, hi``
    (the bin's confidence range), ``confidence`` (mean), ``accuracy``, ``count``. Confidence is the
    judge's probability for the answer it chose, ``max(p_correct, 1 - p_correct)`` in [0.5, 1]; a
    round is accurate when that answer is correct (a 0.5 tie counts half). Only non-empty bins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import PipelineError
from ..io import write_csv
from ..plotting import save_figure
from ..stats import mean_se
from .config import FORMATS
from .types import QUOTE_STATUSES, ROLES, STATUSES, RoundRecord

if TYPE_CHECKING:
    import os

    import pandas as pd

ROUND_COLUMNS = ["tournament", "chunk", "round_id", "question_id", "format", "debater_a", "debater_b", "side_a",
                 "side_b", "correct_index", "p_a", "p_b", "p_correct", "winner", "correct_won", "first_position",
                 "p_first", "verified_a", "unverified_a", "verified_b", "unverified_b", "status", "error"]
RATING_COLUMNS = ["debater", "bt_strength", "bt_lo", "bt_hi", "bt_comparisons", "win_rate", "win_rate_correct",
                  "win_rate_incorrect", "debates", "debates_correct", "debates_incorrect", "self_play_rounds",
                  "quote_validity", "quotes", "rounds", "failed"]
JUDGE_COLUMNS = ["format", "accuracy", "accuracy_se", "n_questions", "rounds", "failed", "correct_won_rate",
                 "vs_empty", "first_position_bias", "first_position_bias_se", "slot_a_bias", "slot_a_bias_se",
                 "ece"]
CALIBRATION_COLUMNS = ["format", "bin", "lo", "hi", "confidence", "accuracy", "count"]

FORMAT_SLOTS: dict[str, tuple[str, ...]] = {"debate": ("a", "b"), "consultancy": ("a",),
                                            "double_consultancy": ("a", "b"), "empty": ()}
"""The debater slots of each format."""
ROLE_SLOT = {"debater_a": "a", "consultant": "a", "consultant_a": "a", "debater_b": "b", "consultant_b": "b"}
"""The slot a speech's role speaks for."""
assert set(FORMAT_SLOTS) == set(FORMATS) and set(ROLE_SLOT) == set(ROLES)

BT_ALPHA = 0.1
"""Bradley–Terry regularisation (see the module docstring)."""

_INT_COLUMNS = ["side_a", "side_b", "first_position", "verified_a", "unverified_a", "verified_b", "unverified_b"]
_FLOAT_COLUMNS = ["p_a", "p_b", "p_correct", "p_first"]
_STR_COLUMNS = ["tournament", "round_id", "question_id", "format", "debater_a", "debater_b", "winner", "status",
                "error"]


# ----------------------------------------------------------------------------------------------- rounds


def _bad(rec: RoundRecord, what: str) -> PipelineError:
    return PipelineError(f"round {rec.round_id!r} (tournament {rec.tournament!r}, chunk {rec.chunk}): {what}")


def check_record(rec: RoundRecord) -> None:
    """PipelineError naming the round when a record breaks the transcript contract (types.py)."""
    if rec.format not in FORMAT_SLOTS:
        raise _bad(rec, f"format {rec.format!r} is not one of {list(FORMATS)}")
    if rec.status not in STATUSES:
        raise _bad(rec, f"status {rec.status!r} is not one of {list(STATUSES)}")
    if rec.correct_index not in (0, 1) or isinstance(rec.correct_index, bool):
        raise _bad(rec, f"correct_index must be 0 or 1, got {rec.correct_index!r}")
    if rec.answer_order and sorted(rec.answer_order) != [0, 1]:
        raise _bad(rec, f"answer_order must be [0, 1] or [1, 0], got {rec.answer_order!r}")
    slots = FORMAT_SLOTS[rec.format]
    if sorted(rec.debaters) != sorted(slots) or sorted(rec.sides) != sorted(slots):
        raise _bad(rec, f"format {rec.format} needs debaters and sides for slots {list(slots)}, got debaters "
                   f"{rec.debaters!r} and sides {rec.sides!r}")
    if any(s not in (0, 1) or isinstance(s, bool) for s in rec.sides.values()):
        raise _bad(rec, f"sides must be answer indices 0 or 1, got {rec.sides!r}")
    if len(slots) == 2 and rec.sides["a"] == rec.sides["b"]:
        raise _bad(rec, f"slots a and b must defend different answers in {rec.format}, got sides {rec.sides!r}")
    for s in rec.speeches:
        if ROLE_SLOT.get(s.role) not in slots:
            raise _bad(rec, f"speech role {s.role!r} has no slot in format {rec.format} (slots {list(slots)})")
    if rec.status == "ok":
        p = rec.probs
        if (not isinstance(p, list | tuple) or len(p) != 2 or not all(isinstance(x, int | float) for x in p)
                or not all(math.isfinite(x) and 0 <= x <= 1 for x in p)):
            raise _bad(rec, f"status ok needs probs [p0, p1] (the judge's probability per answer index, each in "
                       f"[0, 1]), got {p!r}")
        if not rec.answer_order:
            raise _bad(rec, "status ok needs answer_order (the answer indices in shown order)")


def round_winner(slots: Sequence[str], p_a: float, p_b: float) -> str:
    """``a``/``b``: the slot whose answer got more probability; ``tie`` at exactly 0.5; a lone
    consultant (slot a) wins above 0.5; empty when no slot's answer won or there is no verdict."""
    if not slots or math.isnan(p_a):
        return ""
    if len(slots) == 1:
        return "a" if p_a > 0.5 else "tie" if p_a == 0.5 else ""
    return "a" if p_a > p_b else "b" if p_b > p_a else "tie"


def round_row(rec: RoundRecord) -> dict[str, Any]:
    """One row of ``rounds.csv`` (see the module docstring) from a checked round record."""
    check_record(rec)
    slots = FORMAT_SLOTS[rec.format]
    probs = [float(x) for x in rec.probs] if rec.status == "ok" else None
    nan = float("nan")

    def prob(i: int | None) -> float:
        return nan if probs is None or i is None else probs[i]

    side = {slot: rec.sides.get(slot) for slot in ("a", "b")}
    p = {slot: prob(side[slot]) for slot in ("a", "b")}
    first = rec.answer_order[0] if rec.answer_order else None
    row: dict[str, Any] = {
        "tournament": rec.tournament, "chunk": rec.chunk, "round_id": rec.round_id,
        "question_id": rec.question_id, "format": rec.format,
        "debater_a": rec.debaters.get("a", ""), "debater_b": rec.debaters.get("b", ""),
        "side_a": side["a"], "side_b": side["b"], "correct_index": rec.correct_index,
        "p_a": p["a"], "p_b": p["b"], "p_correct": prob(rec.correct_index),
        "winner": round_winner(slots, p["a"], p["b"]),
        "correct_won": None if probs is None else probs[rec.correct_index] > 0.5,
        "first_position": first, "p_first": prob(first),
    }
    for slot in ("a", "b"):
        checks = [q for s in rec.speeches if ROLE_SLOT[s.role] == slot for q in s.quotes]
        verified = sum(q.status == "verified" for q in checks)
        present = slot in slots
        row[f"verified_{slot}"] = verified if present else None
        row[f"unverified_{slot}"] = len(checks) - verified if present else None
    row["status"] = rec.status
    row["error"] = rec.error or ""
    return row


def rounds_table(records: Iterable[RoundRecord]) -> pd.DataFrame:
    """One row per round (columns :data:`ROUND_COLUMNS`, documented in the module docstring), sorted
    by ``(tournament, round_id)``; failed rounds kept. PipelineError for a record that breaks the contract or a
    round recorded twice."""
    import pandas as pd

    records = list(records)
    seen: dict[tuple[str, str], list[int]] = {}
    for r in records:
        seen.setdefault((r.tournament, r.round_id), []).append(r.chunk)
    dup = {k: v for k, v in seen.items() if len(v) > 1}
    if dup:
        (tournament, rid), chunks = min(dup.items())
        raise PipelineError(f"round {rid!r} of tournament {tournament!r} is recorded {len(chunks)} times (chunks "
                            f"{sorted(chunks)}); {len(dup)} round id(s) repeat; each round must be recorded once")
    rows = [round_row(r) for r in sorted(records, key=lambda r: (r.tournament, r.round_id))]
    df = pd.DataFrame(rows, columns=ROUND_COLUMNS)
    return df.astype({**dict.fromkeys(_INT_COLUMNS, "Int64"), **dict.fromkeys(_FLOAT_COLUMNS, "float64"),
                      "chunk": "int64", "correct_index": "int64", "correct_won": "boolean",
                      **dict.fromkeys(_STR_COLUMNS, "object")})


def _clean(df: pd.DataFrame) -> pd.DataFrame:
    """The rounds table as the statistics read it, whether built in memory or read from rounds.csv
    (where empty strings come back as NaN)."""
    missing = [c for c in ROUND_COLUMNS if c not in df.columns]
    if missing:
        raise PipelineError(f"rounds table: missing column(s) {missing}; rounds.csv has {ROUND_COLUMNS}")
    df = df.copy()
    for c in ("debater_a", "debater_b", "winner", "error"):
        df[c] = df[c].astype("object").where(df[c].notna(), "").astype(str)
    for c in _FLOAT_COLUMNS:
        df[c] = df[c].astype("float64")
    df["question_id"] = df["question_id"].astype(str)
    return df


# ------------------------------------------------------------------------------------- Bradley–Terry


def debate_results(rounds_df: pd.DataFrame) -> pd.DataFrame:
    """Long form of the ok debate-format rounds between different debaters: two rows per round, one
    per debater: ``debater, opponent, question_id, score`` (1 win, 0.5 tie, 0 loss) and
    ``defended_correct``."""
    import pandas as pd

    df = _clean(rounds_df)
    df = df[(df["format"] == "debate") & (df["status"] == "ok") & (df["debater_a"] != df["debater_b"])]
    parts = []
    for me, other in (("a", "b"), ("b", "a")):
        score = np.where(df["winner"] == me, 1.0, np.where(df["winner"] == "tie", 0.5, 0.0))
        parts.append(pd.DataFrame({"debater": df[f"debater_{me}"].to_numpy(),
                                   "opponent": df[f"debater_{other}"].to_numpy(),
                                   "question_id": df["question_id"].to_numpy(), "score": score,
                                   "defended_correct": (df[f"side_{me}"].astype("float64")
                                                        == df["correct_index"].astype("float64")).to_numpy()}))
    return pd.concat(parts, ignore_index=True)


def comparison_matrix(results: pd.DataFrame, debaters: Sequence[str]) -> np.ndarray:
    """``wins[i, j]``: wins of ``debaters[i]`` over ``debaters[j]`` in :func:`debate_results` rows
    (a tie is half a win to each)."""
    index = {d: i for i, d in enumerate(debaters)}
    wins = np.zeros((len(debaters), len(debaters)))
    for d, o, s in zip(results["debater"], results["opponent"], results["score"]):
        wins[index[d], index[o]] += s
    return wins


def bradley_terry(wins: np.ndarray, alpha: float = BT_ALPHA) -> np.ndarray:
    """Bradley–Terry log-strengths (mean zero) from a win matrix (``wins[i, j]`` = wins of i over j,
    fractional allowed) with ``choix.ilsr_pairwise_dense`` and regularisation ``alpha`` > 0."""
    import choix

    wins = np.asarray(wins, dtype=float)
    if wins.ndim != 2 or wins.shape[0] != wins.shape[1] or wins.shape[0] < 2:
        raise PipelineError(f"Bradley–Terry: need a square win matrix of at least 2 debaters, got shape {wins.shape}")
    if not np.all(np.isfinite(wins)) or np.any(wins < 0):
        raise PipelineError("Bradley–Terry: win counts must be finite and non-negative")
    if not alpha > 0:
        raise PipelineError(f"Bradley–Terry: alpha must be > 0 (regularisation), got {alpha}")
    params = choix.ilsr_pairwise_dense(wins, alpha=alpha, max_iter=10_000, tol=1e-10)
    return params - params.mean()


def bootstrap_strengths(results: pd.DataFrame, debaters: Sequence[str], n: int, seed: int,
                        alpha: float = BT_ALPHA) -> np.ndarray:
    """``(n, len(debaters))`` Bradley–Terry log-strengths of ``n`` resamples of the questions (with
    replacement; all of a question's rounds together), each centred over the debaters it rates; NaN
    for a debater without comparisons in a resample."""
    from tqdm.auto import tqdm

    out = np.full((n, len(debaters)), np.nan)
    questions = sorted(set(results["question_id"]))
    if n == 0 or not questions or len(debaters) < 2:
        return out
    qi = {q: i for i, q in enumerate(questions)}
    di = {d: i for i, d in enumerate(debaters)}
    per_q = np.zeros((len(questions), len(debaters), len(debaters)))  # per_q[q] = comparison_matrix of question q
    np.add.at(per_q, ([qi[q] for q in results["question_id"]], [di[d] for d in results["debater"]],
                      [di[o] for o in results["opponent"]]), results["score"].to_numpy(float))
    rng = np.random.default_rng(seed)
    for b in tqdm(range(n), desc="bootstrap ratings", unit="resample", disable=n < 20):
        counts = np.bincount(rng.integers(0, len(questions), len(questions)), minlength=len(questions))
        wins = np.tensordot(counts.astype(float), per_q, axes=1)
        present = (wins + wins.T).sum(axis=1) > 0
        if present.sum() >= 2:
            out[b, present] = bradley_terry(wins[np.ix_(present, present)], alpha)
    return out


# -------------------------------------------------------------------------------------------- ratings


def _rate(scores: np.ndarray) -> float:
    return float(scores.mean()) if len(scores) else float("nan")


def ratings_table(rounds_df: pd.DataFrame, bootstrap: int, seed: int, alpha: float = BT_ALPHA) -> pd.DataFrame:
    """One row per debater (columns :data:`RATING_COLUMNS`, documented in the module docstring),
    strongest first (unrated debaters last, by name)."""
    import pandas as pd

    if bootstrap < 0:
        raise PipelineError(f"ratings: bootstrap must be >= 0 resamples, got {bootstrap}")
    df = _clean(rounds_df)
    names = sorted((set(df["debater_a"]) | set(df["debater_b"])) - {""})
    results = debate_results(df)
    rated = sorted(set(results["debater"]))
    strength = bradley_terry(comparison_matrix(results, rated), alpha) if len(rated) >= 2 else np.full(len(rated),
                                                                                                     np.nan)
    boot = bootstrap_strengths(results, rated, bootstrap, seed, alpha)
    rows = []
    for name in names:
        mine = df[(df["debater_a"] == name) | (df["debater_b"] == name)]
        res = results[results["debater"] == name]
        correct = res["defended_correct"].to_numpy(dtype=bool)
        scores = res["score"].to_numpy()
        quotes = {kind: sum(int(df.loc[df[f"debater_{s}"] == name, f"{kind}_{s}"].fillna(0).sum()) for s in "ab")
                  for kind in QUOTE_STATUSES}
        n_quotes = quotes["verified"] + quotes["unverified"]
        k = rated.index(name) if name in rated else None
        column = boot[:, k] if k is not None else np.array([])
        column = column[np.isfinite(column)]
        lo, hi = np.percentile(column, [2.5, 97.5]) if len(column) else (np.nan, np.nan)
        rows.append({
            "debater": name, "bt_strength": float(strength[k]) if k is not None else np.nan,
            "bt_lo": float(lo), "bt_hi": float(hi), "bt_comparisons": len(res),
            "win_rate": _rate(scores), "win_rate_correct": _rate(scores[correct]),
            "win_rate_incorrect": _rate(scores[~correct]), "debates": len(res), "debates_correct": int(correct.sum()),
            "debates_incorrect": int((~correct).sum()),
            "self_play_rounds": int(((mine["format"] == "debate") & (mine["debater_a"] == mine["debater_b"])).sum()),
            "quote_validity": quotes["verified"] / n_quotes if n_quotes else np.nan, "quotes": n_quotes,
            "rounds": len(mine), "failed": int((mine["status"] == "failed").sum()),
        })
    out = pd.DataFrame(rows, columns=RATING_COLUMNS)
    return out.sort_values(["bt_strength", "debater"], ascending=[False, True], na_position="last",
                           ignore_index=True)


# ---------------------------------------------------------------------------------------------- judge


def _judged(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["status"] == "ok") & df["p_correct"].notna()]


def calibration(rounds_df: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Reliability table (columns :data:`CALIBRATION_COLUMNS`): the ok rounds binned by the judge's
    confidence in its chosen answer over [0.5, 1] in ``bins`` equal bins (0.5 falls in the first,
    1.0 in the last); ``format`` ``all`` first, then each format present. Only non-empty bins."""
    import pandas as pd

    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise PipelineError(f"calibration: bins must be an integer >= 1, got {bins!r}")
    df = _judged(_clean(rounds_df))
    pc = df["p_correct"].to_numpy()
    conf = np.maximum(pc, 1 - pc)
    acc = np.where(pc > 0.5, 1.0, np.where(pc == 0.5, 0.5, 0.0))
    edges = np.round(np.linspace(0.5, 1.0, bins + 1), 12)  # 0.85, not 0.8500000000000001
    idx = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    fmts = df["format"].to_numpy()
    rows = []
    for group in ["all"] + [f for f in FORMATS if f in set(fmts)]:
        in_group = np.ones(len(df), bool) if group == "all" else fmts == group
        for b in range(bins):
            m = in_group & (idx == b)
            if m.any():
                rows.append({"format": group, "bin": b, "lo": float(edges[b]), "hi": float(edges[b + 1]),
                             "confidence": float(conf[m].mean()), "accuracy": float(acc[m].mean()),
                             "count": int(m.sum())})
    return pd.DataFrame(rows, columns=CALIBRATION_COLUMNS)


def expected_calibration_error(calib: pd.DataFrame) -> float:
    """Count-weighted mean |accuracy - confidence| over a calibration table's bins (NaN if empty)."""
    n = calib["count"].sum()
    if not n:
        return float("nan")
    return float((calib["count"] * (calib["accuracy"] - calib["confidence"]).abs()).sum() / n)


def _over_questions(rounds: pd.DataFrame, values: pd.Series) -> tuple[float, float, int]:
    """:func:`~rlhf_pipeline.stats.mean_se` over questions of the per-question mean of ``values`` (one
    per row of ``rounds``): every question weighs the same however many rounds it has."""
    return mean_se(values.groupby(rounds["question_id"]).mean())


def judge_table(rounds_df: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """One row per format (columns :data:`JUDGE_COLUMNS`, documented in the module docstring)."""
    import pandas as pd

    df = _clean(rounds_df)
    calib = calibration(df, bins)
    nan = float("nan")
    rows = []
    for fmt in [f for f in FORMATS if f in set(df["format"])]:
        sub = df[df["format"] == fmt]
        ok = _judged(sub)
        acc, acc_se, _ = _over_questions(ok, ok["p_correct"])
        bias, bias_se, _ = _over_questions(ok, ok["p_first"] - 0.5)
        slot_a, slot_a_se, _ = _over_questions(ok, ok["p_a"] - 0.5) if len(FORMAT_SLOTS[fmt]) == 2 else (nan, nan, 0)
        rows.append({"format": fmt, "accuracy": acc, "accuracy_se": acc_se,
                     "n_questions": int(ok["question_id"].nunique()), "rounds": len(ok),
                     "failed": int((sub["status"] == "failed").sum()),
                     "correct_won_rate": float((ok["p_correct"] > 0.5).mean()) if len(ok) else nan,
                     "vs_empty": nan, "first_position_bias": bias, "first_position_bias_se": bias_se,
                     "slot_a_bias": slot_a, "slot_a_bias_se": slot_a_se,
                     "ece": expected_calibration_error(calib[calib["format"] == fmt])})
    out = pd.DataFrame(rows, columns=JUDGE_COLUMNS)
    empty = out.loc[out["format"] == "empty", "accuracy"]
    if len(empty) and not math.isnan(empty.iloc[0]):
        out["vs_empty"] = out["accuracy"] - empty.iloc[0]
    return out


# ---------------------------------------------------------------------------------------------- plots


def win_matrix(rounds_df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rates, counts)``: debater x debater mean score (wins, ties half) of the row debater against
    the column debater in ok debate rounds, and the number of those rounds; NaN / 0 on the diagonal
    (self-play is not a comparison) and for pairs that never met. Rows and columns ordered by overall
    win rate (highest first), then name."""
    import pandas as pd

    res = debate_results(rounds_df)
    overall = res.groupby("debater")["score"].mean()
    names = sorted(overall.index, key=lambda d: (-overall[d], d))
    rates = pd.DataFrame(np.nan, index=names, columns=names)
    counts = pd.DataFrame(0, index=names, columns=names)
    for (d, o), g in res.groupby(["debater", "opponent"]):
        rates.loc[d, o] = g["score"].mean()
        counts.loc[d, o] = len(g)
    return rates, counts


def plot_win_matrix(rounds_df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Heat map of :func:`win_matrix` with each cell annotated (win rate and rounds), written
    atomically as PNG (matplotlib Agg); a labelled empty figure when there are no debate rounds."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    rates, counts = win_matrix(rounds_df)
    k = len(rates)
    fig = Figure(figsize=(1.6 + 1.1 * max(k, 2), 1.2 + 0.9 * max(k, 2)))
    ax = fig.add_subplot()
    if k == 0:
        ax.text(0.5, 0.5, "no debate rounds between different debaters", ha="center", va="center")
        ax.set_axis_off()
    else:
        cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="0.85")
        im = ax.imshow(np.ma.masked_invalid(rates.to_numpy(float)), cmap=cmap, vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                v, n = rates.iat[i, j], counts.iat[i, j]
                text = "self" if i == j else "–" if n == 0 else f"{v:.2f}\n(n={n})"
                ax.text(j, i, text, ha="center", va="center", fontsize=9,
                        color="white" if n and abs(v - 0.5) > 0.3 else "black")
        ax.set_xticks(range(k), rates.columns, rotation=30, ha="right")
        ax.set_yticks(range(k), rates.index)
        ax.set_xlabel("opponent")
        ax.set_ylabel("debater")
        fig.colorbar(im, ax=ax, label="win rate of the row debater")
    ax.set_title("Debate win rates (ties count half)")
    save_figure(fig, path)


def plot_calibration(calib_df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Reliability diagram of a :func:`calibration` table (one line per format, the diagonal of
    perfect calibration dashed), written atomically as PNG (matplotlib Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2, 4.6))
    ax = fig.add_subplot()
    ax.plot([0.5, 1.0], [0.5, 1.0], "--", color="0.5", label="perfect calibration")
    for fmt, g in calib_df.groupby("format", sort=False):
        style = dict(color="black", lw=2) if fmt == "all" else dict(lw=1)
        ax.plot(g["confidence"], g["accuracy"], marker="o", ms=4, label=f"{fmt} (n={int(g['count'].sum())})",
                **style)
    if calib_df.empty:
        ax.text(0.75, 0.5, "no judged rounds", ha="center", va="center")
    ax.set_xlim(0.48, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("judge confidence in its chosen answer")
    ax.set_ylabel("accuracy of the chosen answer")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Judge calibration")
    save_figure(fig, path)


# ------------------------------------------------------------------------------------------ summarize


def _py(x: Any) -> Any:
    """A JSON-friendly copy: numpy scalars as Python numbers, NaN as None."""
    if isinstance(x, dict):
        return {str(k): _py(v) for k, v in x.items()}
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def headline(rounds: pd.DataFrame, ratings: pd.DataFrame, judge: pd.DataFrame) -> dict[str, Any]:
    """The numbers a README or a log line quotes, JSON-friendly (NaN as None)."""
    by_fmt = judge.set_index("format")
    return _py({
        "rounds": len(rounds), "failed": int((rounds["status"] == "failed").sum()),
        "judge_accuracy": by_fmt["accuracy"].to_dict(), "judge_accuracy_se": by_fmt["accuracy_se"].to_dict(),
        "vs_empty": by_fmt["vs_empty"].to_dict(), "first_position_bias": by_fmt["first_position_bias"].to_dict(),
        "slot_a_bias": by_fmt["slot_a_bias"].to_dict(),
        "bt_strength": ratings.set_index("debater")["bt_strength"].to_dict(),
        "win_rate": ratings.set_index("debater")["win_rate"].to_dict(),
    })


def summarize(records: Iterable[RoundRecord], out_dir: str | os.PathLike, bootstrap: int, seed: int) -> dict[str, Any]:
    """Write ``rounds.csv``, ``ratings.csv``, ``judge.csv``, ``calibration.csv``, ``win_matrix.png``
    and ``calibration.png`` into ``out_dir`` (each atomically) and return :func:`headline`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rounds = rounds_table(records)
    ratings = ratings_table(rounds, bootstrap, seed)
    judge = judge_table(rounds)
    calib = calibration(rounds)
    write_csv(rounds, out / "rounds.csv")
    write_csv(ratings, out / "ratings.csv")
    write_csv(judge, out / "judge.csv")
    write_csv(calib, out / "calibration.csv")
    plot_win_matrix(rounds, out / "win_matrix.png")
    plot_calibration(calib, out / "calibration.png")
    return headline(rounds, ratings, judge)
