"""The head-to-head table of an A/B test, built from the statistics modules.

Kept apart from ``ab.py`` so that the test's bookkeeping (runs, pairs, votes)
and its reporting each read on their own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from maquina_nb.analysis.significance import sign_test
from maquina_nb.analysis.winrate import pairwise_win_rates

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SUMMARY_COLUMNS", "summarize"]

SUMMARY_COLUMNS = (
    "contestant_a",
    "contestant_b",
    "votes",
    "wins_a",
    "wins_b",
    "ties",
    "win_rate_a",
    "ci_low",
    "ci_high",
    "items",
    "items_a",
    "items_b",
    "p_value",
    "p_holm",
    "conclusion",
)


def summarize(
    votes: pd.DataFrame, order: Sequence[str], *, confidence: float = 0.95
) -> pd.DataFrame:
    """Return one row per pair of contestants that met (see ``ABTest.summary``).

    Args:
        votes: arena-style votes with contestant names and ``item_index``.
        order: the contestants, in the order their pairs are listed.
        confidence: level of the Wilson intervals; a difference is called
            significant when the Holm-adjusted p-value is below ``1 - confidence``.
    """
    import pandas as pd

    if votes.empty:
        return pd.DataFrame(columns=list(SUMMARY_COLUMNS))

    # Votes give the win rate; items, netted per pair, give the sign test.
    rates = pairwise_win_rates(votes, confidence=confidence, models=list(order))
    signs = sign_test(votes, item="item_index")
    rows = []
    for i, first in enumerate(order):
        for second in order[i + 1 :]:
            rate = rates[(rates["model"] == first) & (rates["opponent"] == second)]
            if rate.empty:
                continue
            r = rate.iloc[0]
            test = _oriented_sign_test(signs, first, second)
            rows.append(
                {
                    "contestant_a": first,
                    "contestant_b": second,
                    "votes": int(r["games"]),
                    "wins_a": int(r["wins"]),
                    "wins_b": int(r["losses"]),
                    "ties": int(r["ties"]),
                    "win_rate_a": float(r["win_rate"]),
                    "ci_low": float(r["ci_low"]),
                    "ci_high": float(r["ci_high"]),
                    **test,
                    "conclusion": _conclusion(first, second, test, confidence),
                }
            )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _oriented_sign_test(signs: pd.DataFrame, first: str, second: str) -> dict[str, Any]:
    # sign_test lists each pair once, in name order; turn it to (first, second).
    row = signs[(signs["model_a"] == first) & (signs["model_b"] == second)]
    swapped = row.empty
    if swapped:
        row = signs[(signs["model_a"] == second) & (signs["model_b"] == first)]
    if row.empty:
        return {
            "items": 0,
            "items_a": 0,
            "items_b": 0,
            "p_value": math.nan,
            "p_holm": math.nan,
        }
    r = row.iloc[0]
    wins_first, wins_second = int(r["wins_a"]), int(r["wins_b"])
    if swapped:
        wins_first, wins_second = wins_second, wins_first
    return {
        "items": wins_first + wins_second + int(r["ties"]),
        "items_a": wins_first,
        "items_b": wins_second,
        "p_value": float(r["p_value"]),
        "p_holm": float(r["p_holm"]),
    }


def _conclusion(
    first: str, second: str, test: Mapping[str, Any], confidence: float
) -> str:
    p = test["p_holm"]
    if not test["items"] or math.isnan(p):
        return "no decided items yet"
    if p < 1.0 - confidence:
        better = first if test["items_a"] > test["items_b"] else second
        return f"{better} better (p={p:.3g})"
    return f"no significant difference (p={p:.3g})"
