"""Win rates with Wilson score intervals.

A model's win rate is its score divided by its games, where a win scores 1, a
tie 1/2 and a loss 0 ("ties count half"). The interval is Wilson's score
interval evaluated at that score; with no ties it is exactly the textbook
Wilson interval (and agrees with ``scipy.stats.binomtest(...).proportion_ci(
method="wilson")``). With ties the per-game variance is smaller than a coin's,
so the interval is slightly conservative.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from maquina_nb.analysis._votes import count_votes, z_value

if TYPE_CHECKING:
    import pandas as pd
    from numpy.typing import ArrayLike

__all__ = ["pairwise_win_rates", "wilson_interval", "win_rates"]


def _wilson(
    successes: np.ndarray, n: np.ndarray, z: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        p = successes / n
        z2n = z * z / n
        centre = (p + z2n / 2.0) / (1.0 + z2n)
        half = z / (1.0 + z2n) * np.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    low = np.clip(centre - half, 0.0, 1.0)
    high = np.clip(centre + half, 0.0, 1.0)
    empty = n <= 0
    for arr in (p, low, high):
        arr[empty] = np.nan
    return p, low, high


def wilson_interval(
    successes: ArrayLike, n: ArrayLike, *, confidence: float = 0.95
) -> pd.DataFrame:
    """Return Wilson score intervals for proportions, vectorized.

    Args:
        successes: Number of successes (may be fractional, e.g. ties as halves).
        n: Number of trials, same shape as ``successes``.
        confidence: Two-sided confidence level.

    Returns:
        One row per input with columns ``successes``, ``n``, ``proportion``,
        ``ci_low``, ``ci_high``. A row with ``n == 0`` has NaN proportion and bounds.
    """
    import pandas as pd

    k = np.atleast_1d(np.asarray(successes, dtype=float))
    total = np.atleast_1d(np.asarray(n, dtype=float))
    k, total = np.broadcast_arrays(k, total)
    p, low, high = _wilson(k.copy(), total.copy(), z_value(confidence))
    return pd.DataFrame(
        {"successes": k, "n": total, "proportion": p, "ci_low": low, "ci_high": high}
    )


def win_rates(
    votes: pd.DataFrame,
    *,
    confidence: float = 0.95,
    weight: str | None = None,
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Return each model's overall win rate against all opponents.

    Args:
        votes: Frame with ``model_a``, ``model_b``, ``winner``.
        confidence: Two-sided level of the Wilson interval.
        weight: Optional column counting each row as several votes.
        models: Fix which models appear (and in which order before sorting).

    Returns:
        One row per model, best first, with columns ``model``, ``wins``,
        ``losses``, ``ties``, ``games``, ``score`` (wins + ties/2), ``win_rate``
        (score / games), ``ci_low``, ``ci_high``.
    """
    import pandas as pd

    counts = count_votes(votes, models=models, weight=weight)

    # A model's wins are its first-position wins plus its second-position wins.
    wins = counts.a_wins.sum(axis=1) + counts.b_wins.sum(axis=0)
    losses = counts.b_wins.sum(axis=1) + counts.a_wins.sum(axis=0)
    ties = counts.ties.sum(axis=1) + counts.ties.sum(axis=0)
    games = wins + losses + ties
    score = wins + 0.5 * ties
    rate, low, high = _wilson(score.copy(), games.copy(), z_value(confidence))

    frame = pd.DataFrame(
        {
            "model": counts.models,
            "wins": wins,
            "losses": losses,
            "ties": ties,
            "games": games,
            "score": score,
            "win_rate": rate,
            "ci_low": low,
            "ci_high": high,
        }
    )
    return frame.sort_values(
        ["win_rate", "model"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)


def pairwise_win_rates(
    votes: pd.DataFrame,
    *,
    confidence: float = 0.95,
    weight: str | None = None,
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Return the win rate of every model against every opponent it met.

    Both directions are listed (``A`` vs ``B`` and ``B`` vs ``A``), so pivoting
    ``win_rate`` on ``model``/``opponent`` gives the familiar win-rate matrix.

    Args:
        votes: Frame with ``model_a``, ``model_b``, ``winner``.
        confidence: Two-sided level of the Wilson interval.
        weight: Optional column counting each row as several votes.
        models: Fix the model order.

    Returns:
        Columns ``model``, ``opponent``, ``wins``, ``losses``, ``ties``, ``games``,
        ``win_rate``, ``ci_low``, ``ci_high``; pairs that never met are left out.
    """
    import pandas as pd

    counts = count_votes(votes, models=models, weight=weight)

    # Orientation-free counts: wins[i, j] = times i beat j in either position.
    wins = counts.a_wins + counts.b_wins.T
    ties = counts.ties + counts.ties.T
    games = wins + wins.T + ties
    i, j = np.nonzero(games > 0)
    score = wins[i, j] + 0.5 * ties[i, j]
    rate, low, high = _wilson(score, games[i, j].copy(), z_value(confidence))

    names = np.asarray(counts.models, dtype=object)
    return pd.DataFrame(
        {
            "model": names[i],
            "opponent": names[j],
            "wins": wins[i, j],
            "losses": wins[j, i],
            "ties": ties[i, j],
            "games": games[i, j],
            "win_rate": rate,
            "ci_low": low,
            "ci_high": high,
        }
    )
