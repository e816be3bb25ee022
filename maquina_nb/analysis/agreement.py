"""Agreement between raters: Cohen's kappa, plain or weighted.

Kappa is ``(p_o - p_e) / (1 - p_e)``: observed agreement corrected for the
agreement two raters would reach by chance with their own label frequencies.
Its standard error is the large-sample one of Fleiss, Cohen and Everitt (1969),
valid whatever the true kappa; the interval is Wald's.

:func:`rater_agreement` applies it to pairwise votes: each vote becomes a label
(the winning model's name, or ``"tie"``), so the two display orders of one pair
compare equal, and every two raters are compared on the (item, pair) they both
judged. Passing ``reference="judge:gpt-4o"`` keeps only the comparisons of each
person against that judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Literal

import numpy as np

from maquina_nb.analysis._votes import AnalysisError, check_votes, z_value

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import ArrayLike

__all__ = ["cohen_kappa", "rater_agreement"]

Weights = Literal["linear", "quadratic"] | None


def _agreement_weights(k: int, weights: Weights) -> np.ndarray:
    if weights is None:
        return np.eye(k)
    if k < 2:
        return np.ones((k, k))
    distance = np.abs(np.subtract.outer(np.arange(k), np.arange(k))) / (k - 1)
    if weights == "linear":
        return 1.0 - distance
    if weights == "quadratic":
        return 1.0 - distance**2
    raise AnalysisError(
        f"weights must be None, 'linear' or 'quadratic', got {weights!r}."
    )


def _kappa_from_table(
    table: np.ndarray, weights: Weights, confidence: float
) -> dict[str, float]:
    n = table.sum()
    if n == 0:
        return {
            "n": 0,
            "observed_agreement": np.nan,
            "expected_agreement": np.nan,
            "kappa": np.nan,
            "std_error": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
        }
    w = _agreement_weights(table.shape[0], weights)
    p = table / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    p_o = float((w * p).sum())
    p_e = float((w * np.outer(rows, cols)).sum())
    if np.isclose(p_e, 1.0):
        # Both raters used one label only: kappa is undefined.
        kappa = se = np.nan
    else:
        kappa = (p_o - p_e) / (1.0 - p_e)

        # Fleiss, Cohen & Everitt (1969), non-null variance, any agreement weights.
        w_row = w @ cols  # mean weight of row category i against rater B's labels
        w_col = rows @ w  # mean weight of column category j against rater A's labels
        inner = w * (1.0 - p_e) - (w_row[:, None] + w_col[None, :]) * (1.0 - p_o)
        variance = ((p * inner**2).sum() - (p_o * p_e - 2.0 * p_e + p_o) ** 2) / (
            n * (1.0 - p_e) ** 4
        )
        se = float(np.sqrt(max(variance, 0.0)))
    z = z_value(confidence)
    return {
        "n": int(n),
        "observed_agreement": p_o,
        "expected_agreement": p_e,
        "kappa": kappa,
        "std_error": se,
        "ci_low": kappa - z * se,
        "ci_high": kappa + z * se,
    }


def cohen_kappa(
    labels_a: ArrayLike,
    labels_b: ArrayLike,
    *,
    categories: Sequence[object] | None = None,
    weights: Weights = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Return Cohen's kappa between two raters' labels of the same items.

    Args:
        labels_a: One label per item from the first rater.
        labels_b: The second rater's labels, same items in the same order.
        categories: The label order; needed for ``weights``, where it must be the
            ordinal order (e.g. ``[1, 2, 3, 4, 5]``). Defaults to sorted labels.
        weights: ``None`` (exact agreement only), ``"linear"`` or
            ``"quadratic"`` partial credit for near misses.
        confidence: Two-sided level of the interval.

    Returns:
        One row: ``n``, ``observed_agreement``, ``expected_agreement``,
        ``kappa``, ``std_error``, ``ci_low``, ``ci_high``.
    """
    import pandas as pd

    a = pd.Series(np.asarray(labels_a, dtype=object))
    b = pd.Series(np.asarray(labels_b, dtype=object))
    if len(a) != len(b):
        raise AnalysisError(
            f"The two raters labelled different numbers of items ({len(a)} and "
            f"{len(b)}); pass labels for the same items in the same order."
        )
    keep = a.notna() & b.notna()
    a, b = a[keep], b[keep]
    if categories is None:
        categories = sorted(set(a) | set(b), key=lambda v: (str(type(v)), v))
    index = pd.Index(list(categories))
    ia, ib = index.get_indexer(a), index.get_indexer(b)
    if (ia < 0).any() or (ib < 0).any():
        unknown = sorted({str(v) for v in (*a[ia < 0], *b[ib < 0])})[:5]
        raise AnalysisError(f"Labels {unknown!r} are not among categories=; add them.")
    k = len(index)
    table = np.zeros((k, k))
    np.add.at(table, (ia, ib), 1)
    return pd.DataFrame([_kappa_from_table(table, weights, confidence)])


def _vote_labels(votes: pd.DataFrame, item: str, rater: str) -> pd.DataFrame:
    import pandas as pd

    a = votes["model_a"].astype(str)
    b = votes["model_b"].astype(str)
    winner = votes["winner"].astype(str).str.strip().str.lower()
    label = np.where(winner == "model_a", a, np.where(winner == "model_b", b, "tie"))
    frame = pd.DataFrame(
        {
            "rater": votes[rater].to_numpy(),
            "item": votes[item].to_numpy(),
            "pair": np.where(a < b, a + "\x1f" + b, b + "\x1f" + a),
            "label": label,
        }
    )
    # A rater's latest vote on an (item, pair) is the one that counts.
    return frame.drop_duplicates(["rater", "item", "pair"], keep="last")


def rater_agreement(
    votes: pd.DataFrame,
    *,
    rater: str = "rater",
    item: str = "item_index",
    reference: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Cohen's kappa between every two raters on the pairwise votes both cast.

    Use it for human against judge (``reference=`` the judge's rater name),
    judge against judge, or person against person.

    Args:
        votes: Frame with ``model_a``, ``model_b``, ``winner``, ``rater``, ``item``.
        rater: Column naming who voted.
        item: Column identifying the item.
        reference: Only compare each other rater with this one.
        confidence: Two-sided level of the interval.

    Returns:
        One row per pair of raters with ``rater_a``, ``rater_b`` and the columns
        of :func:`cohen_kappa` (``n`` = shared judgments). Pairs with nothing in
        common are left out.
    """
    import pandas as pd

    check_votes(votes, (rater, item))
    labels = _vote_labels(votes, item, rater)
    raters = sorted(labels["rater"].unique(), key=str)
    if reference is not None and reference not in raters:
        raise AnalysisError(
            f"No votes from the reference rater {reference!r}; raters are {raters[:10]!r}."
        )
    wide = labels.pivot(index=["item", "pair"], columns="rater", values="label")

    rows = []
    for ra, rb in combinations(raters, 2):
        if reference is not None and reference not in (ra, rb):
            continue
        if reference is not None and rb == reference:
            ra, rb = rb, ra
        shared = wide[[ra, rb]].dropna()
        if shared.empty:
            continue
        stats = cohen_kappa(shared[ra], shared[rb], confidence=confidence).iloc[0]
        rows.append({"rater_a": ra, "rater_b": rb, **stats.to_dict()})
    columns = [
        "rater_a",
        "rater_b",
        "n",
        "observed_agreement",
        "expected_agreement",
        "kappa",
        "std_error",
        "ci_low",
        "ci_high",
    ]
    frame = pd.DataFrame(rows, columns=columns)
    frame["n"] = frame["n"].astype(int)
    return frame
