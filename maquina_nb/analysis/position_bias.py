"""How much does being shown first help an answer?

Two views, both assuming ``model_a`` is the answer shown first (left):

- :func:`position_bias` — the first-shown answer's win rate (ties half) with a
  Wilson interval and an exact binomial test of "first wins as often as second"
  on the decided votes; and the Bradley-Terry position effect, which corrects
  for stronger models having been shown first more often.
- :func:`swap_consistency` — for a rater (a judge model, typically) who saw the
  same pair on the same item in both orders: how often the verdict survived the
  swap, and how often it followed the position instead of the answer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import ndtr

from maquina_nb._redact import get_logger
from maquina_nb.analysis._votes import AnalysisError, check_votes, count_votes, z_value
from maquina_nb.analysis.bradley_terry import fit_bradley_terry
from maquina_nb.analysis.significance import binomial_test
from maquina_nb.analysis.winrate import wilson_interval

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["position_bias", "swap_consistency"]

logger = get_logger(__name__)


def _one_report(
    votes: pd.DataFrame, confidence: float, weight: str | None
) -> dict[str, float]:
    counts = count_votes(votes, weight=weight)
    first, second, ties = counts.a_wins.sum(), counts.b_wins.sum(), counts.ties.sum()
    n = first + second + ties
    interval = wilson_interval(first + 0.5 * ties, n, confidence=confidence).iloc[0]
    decided = first + second
    if decided == round(decided) and first == round(first):
        p_value = float(binomial_test(first, decided)["p_value"].iloc[0])
    else:
        p_value = math.nan

    # The position effect adjusted for model strength (NaN if BT cannot be fit).
    alpha = alpha_se = math.nan
    try:
        fit = fit_bradley_terry(votes, position_effect=True, weight=weight)
        alpha, alpha_se = fit.attrs["position_effect"], fit.attrs["position_effect_se"]
    except AnalysisError as exc:
        logger.debug("no Bradley-Terry position effect: %s", exc)
    z = z_value(confidence)
    return {
        "n_votes": n,
        "first_wins": first,
        "second_wins": second,
        "ties": ties,
        "first_win_rate": interval["proportion"],
        "ci_low": interval["ci_low"],
        "ci_high": interval["ci_high"],
        "p_value": p_value,
        "position_effect": alpha,
        "position_effect_se": alpha_se,
        "position_odds_ratio": math.exp(alpha) if not math.isnan(alpha) else math.nan,
        "odds_ratio_ci_low": math.exp(alpha - z * alpha_se),
        "odds_ratio_ci_high": math.exp(alpha + z * alpha_se),
        "position_effect_p_value": float(2.0 * ndtr(-abs(alpha / alpha_se)))
        if alpha_se and not math.isnan(alpha_se)
        else math.nan,
    }


def position_bias(
    votes: pd.DataFrame,
    *,
    by: str | None = None,
    confidence: float = 0.95,
    weight: str | None = None,
) -> pd.DataFrame:
    """Report how often the first-shown answer (``model_a``) wins.

    Args:
        votes: Frame with ``model_a`` (shown first), ``model_b``, ``winner``.
        by: Optional column to report per group (``"rater"``, say).
        confidence: Two-sided level of the intervals.
        weight: Optional column counting each row as several votes.

    Returns:
        One row (or one per group, with the group column first) with
        ``n_votes``, ``first_wins``, ``second_wins``, ``ties``, ``first_win_rate``
        (ties half; 0.5 means no bias), ``ci_low``, ``ci_high``, ``p_value``
        (exact binomial on decided votes), and the Bradley-Terry adjusted
        ``position_effect`` (log-odds), ``position_effect_se``,
        ``position_odds_ratio`` with ``odds_ratio_ci_low``/``odds_ratio_ci_high``
        and ``position_effect_p_value`` (Wald).
    """
    import pandas as pd

    check_votes(votes, (by,) if by else ())
    if by is None:
        return pd.DataFrame([_one_report(votes, confidence, weight)])
    rows = []
    for key, group in votes.groupby(by, sort=True):
        rows.append({by: key, **_one_report(group, confidence, weight)})
    return pd.DataFrame(rows)


def swap_consistency(
    votes: pd.DataFrame,
    *,
    item: str = "item_index",
    rater: str | None = None,
) -> pd.DataFrame:
    """Check verdicts on the same item and pair given in both display orders.

    A pair judged in both orders is *consistent* when the same model wins both
    times (or both are ties), *first-biased* when whichever answer was shown first
    won both times, *second-biased* likewise for the second, and otherwise
    *mixed* (a tie in one order only). If a rater judged one order several
    times, the last vote in frame order counts.

    Args:
        votes: Frame with ``model_a``, ``model_b``, ``winner`` and ``item``.
        item: Column identifying the item.
        rater: Optional column to report per rater.

    Returns:
        One row (or one per rater) with ``n_pairs`` (pairs seen in both orders),
        ``consistent``, ``first_biased``, ``second_biased``, ``mixed`` and
        ``consistency_rate``.
    """
    import pandas as pd

    check_votes(votes, (item,) + ((rater,) if rater else ()))
    frame = pd.DataFrame(
        {
            "a": votes["model_a"].astype(str).to_numpy(),
            "b": votes["model_b"].astype(str).to_numpy(),
            "winner": votes["winner"].astype(str).str.strip().str.lower().to_numpy(),
            "item": votes[item].to_numpy(),
            "rater": votes[rater].to_numpy() if rater else "all",
        }
    )
    frame["winner"] = np.where(
        frame["winner"].str.startswith("tie"), "tie", frame["winner"]
    )
    frame = frame.drop_duplicates(["rater", "item", "a", "b"], keep="last")

    # Join each vote with its mirror image (same item and rater, swapped order).
    mirror = frame.rename(columns={"a": "b", "b": "a", "winner": "winner_swapped"})
    both = frame.merge(mirror, on=["rater", "item", "a", "b"])
    both = both[both["a"] < both["b"]]
    w1, w2 = both["winner"], both["winner_swapped"]
    both["consistent"] = (
        ((w1 == "model_a") & (w2 == "model_b"))
        | ((w1 == "model_b") & (w2 == "model_a"))
        | ((w1 == "tie") & (w2 == "tie"))
    )
    both["first_biased"] = (w1 == "model_a") & (w2 == "model_a")
    both["second_biased"] = (w1 == "model_b") & (w2 == "model_b")
    both["mixed"] = ~(both["consistent"] | both["first_biased"] | both["second_biased"])

    summary = both.groupby("rater", sort=True)[
        ["consistent", "first_biased", "second_biased", "mixed"]
    ].sum()
    summary.insert(0, "n_pairs", both.groupby("rater", sort=True).size())
    summary = summary.reindex(sorted(frame["rater"].unique()), fill_value=0)
    summary = summary.astype(int)
    with np.errstate(divide="ignore", invalid="ignore"):
        summary["consistency_rate"] = np.where(
            summary["n_pairs"] > 0,
            summary["consistent"] / summary["n_pairs"].clip(lower=1),
            np.nan,
        )
    summary = summary.reset_index().rename(columns={"index": "rater"})
    if rater is None:
        return summary.drop(columns="rater")
    return summary.rename(columns={"rater": rater})
