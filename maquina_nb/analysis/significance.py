"""Exact binomial, paired sign and McNemar tests for comparing two models.

- :func:`binomial_test` is the exact binomial test, vectorized over many
  ``(k, n)`` pairs. Its two-sided p-value sums the probabilities of every outcome
  no more likely than the one observed (the convention of R's ``binom.test`` and
  ``scipy.stats.binomtest``).
- :func:`sign_test` asks, for each pair of models, whether one wins more often
  than the other in pairwise votes. With ``item=`` the votes on one item are
  first reduced to a single item-level outcome, so several raters on one item
  do not count as independent evidence.
- :func:`paired_sign_test` does the same from per-item scores (a judge's 1-10
  grade, say), on the items both models answered.
- :func:`mcnemar_test` compares two models' accuracy on the same items.

Every function returns a DataFrame; with several pairs a Holm-adjusted p-value
is included so a whole table can be read at one family-wise error rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import stats

from maquina_nb.analysis._votes import AnalysisError, encode_votes

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import ArrayLike

__all__ = [
    "binomial_test",
    "holm_adjust",
    "mcnemar_test",
    "paired_sign_test",
    "sign_test",
]

Alternative = Literal["two-sided", "greater", "less"]

# Relative tolerance when comparing probabilities for the two-sided exact test,
# so outcomes equally likely up to rounding are counted together (as in R).
_RELATIVE_TOLERANCE = 1e-7


def _binomial_p(k: int, n: int, p: float, alternative: str) -> float:
    if n == 0:
        return 1.0
    if alternative == "greater":
        return float(stats.binom.sf(k - 1, n, p))
    if alternative == "less":
        return float(stats.binom.cdf(k, n, p))
    pmf = stats.binom.pmf(np.arange(n + 1), n, p)
    threshold = pmf[k] * (1.0 + _RELATIVE_TOLERANCE)
    return float(min(1.0, pmf[pmf <= threshold].sum()))


def _check_alternative(alternative: str) -> None:
    if alternative not in ("two-sided", "greater", "less"):
        raise AnalysisError(
            f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}."
        )


def holm_adjust(p_values: ArrayLike) -> np.ndarray:
    """Return Holm's step-down adjusted p-values (NaNs pass through)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted


def binomial_test(
    successes: ArrayLike,
    n: ArrayLike,
    *,
    p: float = 0.5,
    alternative: Alternative = "two-sided",
) -> pd.DataFrame:
    """Run exact binomial tests of ``successes`` out of ``n`` against rate ``p``.

    Args:
        successes: Integer success counts.
        n: Integer trial counts, same shape.
        p: Success probability under the null hypothesis.
        alternative: ``"two-sided"``, ``"greater"`` or ``"less"``.

    Returns:
        One row per test with ``successes``, ``n``, ``proportion``, ``p_value``.

    Raises:
        AnalysisError: Counts are not whole numbers with ``0 <= k <= n``.
    """
    import pandas as pd

    _check_alternative(alternative)
    k = np.atleast_1d(np.asarray(successes, dtype=float))
    total = np.atleast_1d(np.asarray(n, dtype=float))
    k, total = np.broadcast_arrays(k, total)
    if (
        np.any(k != np.round(k))
        or np.any(total != np.round(total))
        or np.any((k < 0) | (k > total))
    ):
        raise AnalysisError(
            "binomial_test needs whole-number counts with 0 <= successes <= n; "
            f"got successes={k.tolist()[:5]!r}, n={total.tolist()[:5]!r}."
        )
    if not 0.0 < p < 1.0:
        raise AnalysisError(f"p must lie strictly between 0 and 1, got {p!r}.")
    p_values = [
        _binomial_p(int(a), int(b), p, alternative)
        for a, b in zip(k, total, strict=True)
    ]
    with np.errstate(divide="ignore", invalid="ignore"):
        proportion = np.where(total > 0, k / total, np.nan)
    return pd.DataFrame(
        {
            "successes": k.astype(np.int64),
            "n": total.astype(np.int64),
            "proportion": proportion,
            "p_value": p_values,
        }
    )


def _pair_table(
    first: np.ndarray, second: np.ndarray, ties: np.ndarray, names: list[str]
) -> pd.DataFrame:
    import pandas as pd

    rows = []
    n = len(names)
    for i, j in combinations(range(n), 2):
        a, b, t = first[i, j], second[i, j], ties[i, j]
        if a + b + t == 0:
            continue
        rows.append((names[i], names[j], int(a), int(b), int(t)))
    return pd.DataFrame(
        rows, columns=["model_a", "model_b", "wins_a", "wins_b", "ties"]
    )


def _add_sign_p_values(table: pd.DataFrame, alternative: str) -> pd.DataFrame:
    decided = table["wins_a"] + table["wins_b"]
    table["n_decided"] = decided
    with np.errstate(divide="ignore", invalid="ignore"):
        table["win_rate_a"] = np.where(
            decided > 0, table["wins_a"] / decided.where(decided > 0, 1), np.nan
        )
    table["p_value"] = [
        _binomial_p(int(a), int(d), 0.5, alternative)
        for a, d in zip(table["wins_a"], decided, strict=True)
    ]
    table["p_holm"] = holm_adjust(table["p_value"].to_numpy())
    return table


def sign_test(
    votes: pd.DataFrame,
    *,
    item: str | None = None,
    alternative: Alternative = "two-sided",
) -> pd.DataFrame:
    """Test, for every pair of models, whether one wins more often than the other.

    Ties are dropped (the sign test's usual rule); the test is exact binomial on
    the decided comparisons. Within a pair, ``model_a`` is the name that sorts
    first, whatever position it was shown in.

    Args:
        votes: Frame with ``model_a``, ``model_b``, ``winner``.
        item: Column identifying the shared item. When given, all votes on one
            item and pair are netted into one outcome (more wins for one side, or
            a tie), so the test counts items, not votes.
        alternative: ``"greater"`` tests whether ``model_a`` wins more often.

    Returns:
        Columns ``model_a``, ``model_b``, ``wins_a``, ``wins_b``, ``ties``,
        ``n_decided``, ``win_rate_a`` (among decided), ``p_value``, ``p_holm``.
    """
    import pandas as pd

    _check_alternative(alternative)
    if item is not None and item not in votes.columns:
        raise AnalysisError(
            f"The votes frame has no item column {item!r}; name the column that "
            "identifies the shared item, or pass item=None to count votes."
        )
    names, a_codes, b_codes, outcomes, _ = encode_votes(votes)

    # Orient every vote as (low code, high code) with +1 when the low code won.
    low = np.minimum(a_codes, b_codes)
    high = np.maximum(a_codes, b_codes)
    a_is_low = a_codes == low
    sign = np.zeros(len(outcomes))
    sign[(outcomes == 0) & a_is_low] = 1
    sign[(outcomes == 1) & ~a_is_low] = 1
    sign[(outcomes == 0) & ~a_is_low] = -1
    sign[(outcomes == 1) & a_is_low] = -1

    # Net the votes on one item and pair into one item-level outcome.
    if item is not None:
        frame = pd.DataFrame({"low": low, "high": high, "sign": sign})
        frame["item"] = votes[item].to_numpy()
        netted = frame.groupby(["low", "high", "item"], sort=False, dropna=False)[
            "sign"
        ].sum()
        index = netted.index.to_frame(index=False)
        low = index["low"].to_numpy(np.int64)
        high = index["high"].to_numpy(np.int64)
        sign = np.sign(netted.to_numpy())

    n = len(names)
    first = np.zeros((n, n))
    second = np.zeros((n, n))
    ties = np.zeros((n, n))
    np.add.at(first, (low[sign > 0], high[sign > 0]), 1)
    np.add.at(second, (low[sign < 0], high[sign < 0]), 1)
    np.add.at(ties, (low[sign == 0], high[sign == 0]), 1)
    table = _pair_table(first, second, ties, names)
    return _add_sign_p_values(table, alternative)


def _wide(
    frame: pd.DataFrame, item: str, model: str, value: str, what: str
) -> pd.DataFrame:
    missing = [c for c in (item, model, value) if c not in frame.columns]
    if missing:
        raise AnalysisError(
            f"The {what} frame lacks the column(s) {missing!r}; pass item=, model= "
            "and value= to name them."
        )
    if frame.duplicated([item, model]).any():
        raise AnalysisError(
            f"The {what} frame has several rows for one ({item}, {model}); "
            "aggregate samples first (e.g. mean per item and model)."
        )
    return frame.pivot(index=item, columns=model, values=value)


def paired_sign_test(
    scores: pd.DataFrame,
    *,
    item: str = "item_index",
    model: str = "model_spec",
    value: str = "score",
    models: Sequence[str] | None = None,
    alternative: Alternative = "two-sided",
) -> pd.DataFrame:
    """Sign test on per-item scores, for every pair of models, on shared items.

    An item counts for a pair only if both models have a score for it; equal
    scores are ties and are dropped from the test.

    Args:
        scores: Long frame with one row per item and model.
        item: Item column.
        model: Model column.
        value: Score column (higher is better).
        models: Restrict to (and order) these models.
        alternative: ``"greater"`` tests whether ``model_a`` scores higher.

    Returns:
        Same columns as :func:`sign_test`, with counts in items.
    """
    _check_alternative(alternative)
    wide = _wide(scores, item, model, value, "scores")
    names = [str(c) for c in (models if models is not None else sorted(wide.columns))]
    values = wide.reindex(columns=names).to_numpy(dtype=float, na_value=np.nan)

    n = len(names)
    first = np.zeros((n, n))
    second = np.zeros((n, n))
    ties = np.zeros((n, n))
    for i, j in combinations(range(n), 2):
        x, y = values[:, i], values[:, j]
        shared = ~np.isnan(x) & ~np.isnan(y)
        first[i, j] = np.sum(x[shared] > y[shared])
        second[i, j] = np.sum(x[shared] < y[shared])
        ties[i, j] = np.sum(x[shared] == y[shared])
    table = _pair_table(first, second, ties, names)
    return _add_sign_p_values(table, alternative)


def mcnemar_test(
    results: pd.DataFrame,
    *,
    item: str = "item_index",
    model: str = "model_spec",
    value: str = "correct",
    models: Sequence[str] | None = None,
    method: Literal["auto", "exact", "chi2"] = "auto",
    correction: bool = True,
) -> pd.DataFrame:
    """McNemar's test of equal accuracy for every pair of models on shared items.

    Only the discordant items matter: ``only_a`` (A right, B wrong) and
    ``only_b``. The exact version is a two-sided binomial test of ``only_a``
    out of ``only_a + only_b`` at 1/2; the chi-square version uses
    ``(|only_a - only_b| - 1)**2 / (only_a + only_b)`` (without the ``- 1`` when
    ``correction=False``) on one degree of freedom.

    Args:
        results: Long frame with one row per item and model and a boolean (or
            0/1) ``value`` column saying whether the answer was right.
        item: Item column.
        model: Model column.
        value: Correctness column.
        models: Restrict to (and order) these models.
        method: ``"exact"``, ``"chi2"``, or ``"auto"`` (exact when fewer than 25
            discordant items).
        correction: Apply the continuity correction to the chi-square version.

    Returns:
        Columns ``model_a``, ``model_b``, ``n_items``, ``both_correct``,
        ``only_a``, ``only_b``, ``neither``, ``accuracy_a``, ``accuracy_b``,
        ``method``, ``statistic`` (chi-square, or ``only_a`` for exact),
        ``p_value``, ``p_holm``.
    """
    import pandas as pd

    if method not in ("auto", "exact", "chi2"):
        raise AnalysisError(
            f"method must be 'auto', 'exact' or 'chi2', got {method!r}."
        )
    wide = _wide(results, item, model, value, "results")
    names = [str(c) for c in (models if models is not None else sorted(wide.columns))]
    values = wide.reindex(columns=names).to_numpy(dtype=float, na_value=np.nan)

    rows = []
    for i, j in combinations(range(len(names)), 2):
        x, y = values[:, i], values[:, j]
        shared = ~np.isnan(x) & ~np.isnan(y)
        x, y = x[shared] > 0.5, y[shared] > 0.5
        both, only_a = int(np.sum(x & y)), int(np.sum(x & ~y))
        only_b, neither = int(np.sum(~x & y)), int(np.sum(~x & ~y))
        discordant = only_a + only_b
        chosen = (
            method if method != "auto" else ("exact" if discordant < 25 else "chi2")
        )
        if chosen == "exact":
            statistic = float(only_a)
            p_value = _binomial_p(only_a, discordant, 0.5, "two-sided")
        elif discordant == 0:
            statistic, p_value = 0.0, 1.0
        else:
            shift = 1.0 if correction else 0.0
            statistic = max(abs(only_a - only_b) - shift, 0.0) ** 2 / discordant
            p_value = float(stats.chi2.sf(statistic, 1))
        n_items = int(shared.sum())
        rows.append(
            (
                names[i],
                names[j],
                n_items,
                both,
                only_a,
                only_b,
                neither,
                (both + only_a) / n_items if n_items else np.nan,
                (both + only_b) / n_items if n_items else np.nan,
                chosen,
                statistic,
                p_value,
            )
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "model_a",
            "model_b",
            "n_items",
            "both_correct",
            "only_a",
            "only_b",
            "neither",
            "accuracy_a",
            "accuracy_b",
            "method",
            "statistic",
            "p_value",
        ],
    )
    table["p_holm"] = holm_adjust(table["p_value"].to_numpy())
    return table
