"""How many items does an A/B comparison need?

The test planned for is the one :func:`~maquina_nb.analysis.significance.sign_test`
runs: an exact binomial test, on the items that are not ties, of "A wins as
often as B" (win rate ``baseline``, 1/2). ``win_rate`` is the rate you want to
be able to detect, among decided items. If a share ``tie_rate`` of items ends in
a tie, more items are needed: ``n_decided / (1 - tie_rate)``.

Two answers are given. ``n_items_normal`` is the usual normal-approximation
formula. ``n_items`` is the smallest count at which the exact test reaches the
power asked for, found by computing the exact power: because the binomial is
discrete, power is a saw-tooth in ``n``, so a few larger counts may fall just
short again (``power`` reports the exact value at ``n_items``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import stats
from scipy.special import ndtri

from maquina_nb.analysis._votes import AnalysisError

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import ArrayLike

__all__ = ["items_for_win_rate", "power_for_items"]

Alternative = Literal["two-sided", "greater"]

# Above this many decided items the exact search is skipped (the normal
# approximation is then accurate to well under one percent).
_EXACT_LIMIT = 200_000


def _rejection_mask(
    n: int, baseline: float, alpha: float, alternative: str
) -> np.ndarray:
    k = np.arange(n + 1)
    if alternative == "greater":
        return np.asarray(stats.binom.sf(k - 1, n, baseline) <= alpha)
    pmf = stats.binom.pmf(k, n, baseline)

    # Two-sided p-value of k: total probability of outcomes no likelier than k.
    order = np.sort(pmf)
    cumulative = np.cumsum(order)
    position = np.searchsorted(order, pmf * (1.0 + 1e-7), side="right")
    p_values = cumulative[position - 1]
    return np.asarray(p_values <= alpha)


def _exact_power(
    n: int, win_rate: float, baseline: float, alpha: float, alternative: str
) -> float:
    if n <= 0:
        return 0.0
    reject = _rejection_mask(n, baseline, alpha, alternative)
    return float(stats.binom.pmf(np.arange(n + 1), n, win_rate)[reject].sum())


def _normal_n(
    win_rate: float, baseline: float, alpha: float, power: float, alternative: str
) -> float:
    z_alpha = (
        ndtri(1.0 - alpha / 2.0) if alternative == "two-sided" else ndtri(1.0 - alpha)
    )
    z_beta = ndtri(power)
    spread = z_alpha * math.sqrt(baseline * (1 - baseline)) + z_beta * math.sqrt(
        win_rate * (1 - win_rate)
    )
    return float((spread / (win_rate - baseline)) ** 2)


def _validate(
    win_rate: float,
    baseline: float,
    alpha: float,
    power: float | None,
    tie_rate: float,
    alternative: str,
) -> None:
    if alternative not in ("two-sided", "greater"):
        raise AnalysisError(
            f"alternative must be 'two-sided' or 'greater', got {alternative!r}."
        )
    for name, value in (
        ("win_rate", win_rate),
        ("baseline", baseline),
        ("alpha", alpha),
    ):
        if not 0.0 < value < 1.0:
            raise AnalysisError(
                f"{name} must lie strictly between 0 and 1, got {value!r}."
            )
    if power is not None and not 0.0 < power < 1.0:
        raise AnalysisError(f"power must lie strictly between 0 and 1, got {power!r}.")
    if not 0.0 <= tie_rate < 1.0:
        raise AnalysisError(f"tie_rate must be in [0, 1), got {tie_rate!r}.")
    if win_rate == baseline or (alternative == "greater" and win_rate < baseline):
        raise AnalysisError(
            f"win_rate {win_rate!r} must differ from the baseline {baseline!r} (and "
            "exceed it for alternative='greater'); there is no effect to detect."
        )


def _smallest_exact_n(
    win_rate: float,
    baseline: float,
    alpha: float,
    power: float,
    alternative: str,
    guess: float,
) -> tuple[int, float]:
    # Scan upward from well below the normal answer, since with a saw-tooth the
    # first n that reaches the power is the answer. Large counts are scanned on
    # a grid first and then item by item inside the grid cell that crossed.
    start = max(1, int(guess * 0.6) - 5)
    stop = int(guess * 2.0) + 50
    stride = 1 if guess < 3000 else math.ceil(guess / 300)
    for n in range(start, stop + stride, stride):
        achieved = _exact_power(n, win_rate, baseline, alpha, alternative)
        if achieved < power:
            continue
        for m in range(max(start, n - stride + 1), n + 1):
            achieved = _exact_power(m, win_rate, baseline, alpha, alternative)
            if achieved >= power:
                return m, achieved
    return -1, math.nan


def items_for_win_rate(
    win_rate: ArrayLike,
    *,
    power: ArrayLike = 0.8,
    alpha: float = 0.05,
    baseline: float = 0.5,
    tie_rate: float = 0.0,
    alternative: Alternative = "two-sided",
) -> pd.DataFrame:
    """Return the number of items needed to detect a win rate at a given power.

    Args:
        win_rate: The win rate(s) of A over B, among decided items, to detect.
        power: The probability(ies) of detecting it.
        alpha: Significance level of the test.
        baseline: Win rate under the null hypothesis.
        tie_rate: Expected share of items that end in a tie.
        alternative: ``"two-sided"`` or ``"greater"`` (one-sided, A better).

    Returns:
        One row per combination of ``win_rate`` and ``power``: ``win_rate``,
        ``difference`` (from the baseline), ``power_target``, ``alpha``,
        ``tie_rate``, ``n_decided`` (exact test), ``n_items`` (including ties),
        ``power`` (exact, at ``n_decided``), ``n_items_normal``.
    """
    import pandas as pd

    rows = []
    for rate in np.atleast_1d(np.asarray(win_rate, dtype=float)):
        for target in np.atleast_1d(np.asarray(power, dtype=float)):
            rate, target = float(rate), float(target)
            _validate(rate, baseline, alpha, target, tie_rate, alternative)
            guess = _normal_n(rate, baseline, alpha, target, alternative)
            if guess <= _EXACT_LIMIT:
                n_decided, achieved = _smallest_exact_n(
                    rate, baseline, alpha, target, alternative, guess
                )
            else:
                n_decided, achieved = math.ceil(guess), math.nan
            rows.append(
                {
                    "win_rate": rate,
                    "difference": rate - baseline,
                    "power_target": target,
                    "alpha": alpha,
                    "tie_rate": tie_rate,
                    "n_decided": n_decided,
                    "n_items": math.ceil(n_decided / (1.0 - tie_rate)),
                    "power": achieved,
                    "n_items_normal": math.ceil(math.ceil(guess) / (1.0 - tie_rate)),
                }
            )
    return pd.DataFrame(rows)


def power_for_items(
    n_items: ArrayLike,
    win_rate: ArrayLike,
    *,
    alpha: float = 0.05,
    baseline: float = 0.5,
    tie_rate: float = 0.0,
    alternative: Alternative = "two-sided",
) -> pd.DataFrame:
    """Return the exact power of the sign test with ``n_items`` items.

    Args:
        n_items: Item count(s), ties included.
        win_rate: True win rate(s) of A over B among decided items.
        alpha: Significance level.
        baseline: Win rate under the null hypothesis.
        tie_rate: Expected share of ties (the decided count is rounded down).
        alternative: ``"two-sided"`` or ``"greater"``.

    Returns:
        One row per combination: ``n_items``, ``n_decided``, ``win_rate``,
        ``alpha``, ``power``.
    """
    import pandas as pd

    rows = []
    for n in np.atleast_1d(np.asarray(n_items)):
        for rate in np.atleast_1d(np.asarray(win_rate, dtype=float)):
            _validate(float(rate), baseline, alpha, None, tie_rate, alternative)
            if int(n) != n or n < 0:
                raise AnalysisError(f"n_items must be whole and >= 0, got {n!r}.")
            decided = math.floor(int(n) * (1.0 - tie_rate))
            rows.append(
                {
                    "n_items": int(n),
                    "n_decided": decided,
                    "win_rate": float(rate),
                    "alpha": alpha,
                    "power": _exact_power(
                        decided, float(rate), baseline, alpha, alternative
                    ),
                }
            )
    return pd.DataFrame(rows)
