"""Validate vote frames and aggregate them into count matrices.

A votes frame has one row per pairwise judgment, in the layout of public arena
data: ``model_a`` (the answer shown first, on the left), ``model_b`` (shown
second) and ``winner`` — ``"model_a"``, ``"model_b"`` or ``"tie"``. Any winner
label that starts with ``"tie"`` (arena data also has ``"tie (bothbad)"``) is a
tie. An optional weight column counts one row as several identical votes.

Every statistic in :mod:`maquina_nb.analysis` starts from the ordered count
arrays built here, so 100,000 votes among 20 models cost no more than a 20x20
matrix once aggregated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import ndtri

from maquina_nb.errors import MaquinaError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AnalysisError", "VoteCounts", "count_votes", "z_value"]

_REQUIRED = ("model_a", "model_b", "winner")

#: Outcome codes used inside the package.
A_WINS, B_WINS, TIE = 0, 1, 2


class AnalysisError(MaquinaError, ValueError):
    """The data cannot support the statistic asked for (bad columns, too few votes)."""


@dataclass(frozen=True)
class VoteCounts:
    """Votes aggregated by ordered pair of models and outcome.

    ``a_wins[i, j]`` counts votes with model ``i`` shown first and ``j`` second
    that model ``i`` won; ``b_wins[i, j]`` those that ``j`` won; ``ties[i, j]``
    the ties. All three are ``(n, n)`` float arrays (weights may be fractional).
    """

    models: list[str]
    a_wins: np.ndarray
    b_wins: np.ndarray
    ties: np.ndarray

    @property
    def n_votes(self) -> float:
        """Total number of votes (sum of weights)."""
        return float(self.a_wins.sum() + self.b_wins.sum() + self.ties.sum())

    def scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ordered win counts with each tie counted half to each side.

        Returns:
            ``(first, second)``: ``first[i, j]`` is the score of ``i`` shown first
            against ``j``; ``second[i, j]`` the score of ``j`` in the same votes.
        """
        return self.a_wins + 0.5 * self.ties, self.b_wins + 0.5 * self.ties

    def win_matrix(self) -> np.ndarray:
        """Return ``W`` with ``W[i, j]`` = score of ``i`` against ``j``, any position."""
        first, second = self.scores()
        return np.asarray(first + second.T)


def z_value(confidence: float) -> float:
    """Return the two-sided standard normal quantile for ``confidence``."""
    if not 0.0 < confidence < 1.0:
        raise AnalysisError(
            f"confidence must lie strictly between 0 and 1, got {confidence!r}; "
            "pass, say, confidence=0.95."
        )
    return float(ndtri(0.5 + confidence / 2.0))


def _outcome_code(label: object) -> int:
    text = str(label).strip().lower()
    if text == "model_a":
        return A_WINS
    if text == "model_b":
        return B_WINS
    if text.startswith("tie"):
        return TIE
    return -1


def _outcome_codes(winner: pd.Series) -> np.ndarray:
    import pandas as pd

    # Map the few distinct labels, not every row: 100k votes hold ~3 labels.
    codes, labels = pd.factorize(winner, use_na_sentinel=True)
    mapping = np.array([_outcome_code(label) for label in labels] + [-1], dtype=np.int8)
    outcomes = mapping[codes]  # code -1 (missing) picks the trailing -1
    if (outcomes < 0).any():
        bad = sorted({str(v) for v in winner[outcomes < 0].unique()})[:5]
        raise AnalysisError(
            f"The winner column holds values other than 'model_a', 'model_b' or "
            f"'tie': {bad!r}. Map them to those three labels first."
        )
    return np.asarray(outcomes, dtype=np.int8)


def check_votes(votes: pd.DataFrame, extra: Sequence[str] = ()) -> None:
    """Raise :class:`AnalysisError` if ``votes`` lacks a needed column."""
    missing = [c for c in (*_REQUIRED, *extra) if c not in votes.columns]
    if missing:
        raise AnalysisError(
            f"The votes frame lacks the column(s) {missing!r}; it needs model_a, "
            "model_b and winner ('model_a', 'model_b' or 'tie'), as in arena data."
        )


def encode_votes(
    votes: pd.DataFrame,
    *,
    models: Sequence[str] | None = None,
    weight: str | None = None,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(models, a_codes, b_codes, outcomes, weights)`` for a votes frame.

    Models are sorted by name unless ``models`` fixes the order (it may also add
    models with no votes). Rows comparing a model with itself are rejected.
    """
    import pandas as pd

    # Validate the columns and the labels.
    check_votes(votes, (weight,) if weight else ())
    if votes[["model_a", "model_b"]].isna().any().any():
        raise AnalysisError(
            "Some votes have no model name in model_a or model_b; drop those rows "
            "(votes.dropna(subset=['model_a', 'model_b']))."
        )
    outcomes = _outcome_codes(votes["winner"])

    # Factorize each column, then map its few distinct names onto one shared,
    # ordered model list (cheaper than concatenating 2n strings).
    a_local, a_names = pd.factorize(votes["model_a"])
    b_local, b_names = pd.factorize(votes["model_b"])
    a_names = [str(m) for m in a_names]
    b_names = [str(m) for m in b_names]
    if models is None:
        model_list = sorted(set(a_names) | set(b_names))
    else:
        model_list = [str(m) for m in models]
        if len(set(model_list)) != len(model_list):
            raise AnalysisError(f"models= lists a model twice: {model_list!r}.")
        unknown = sorted((set(a_names) | set(b_names)) - set(model_list))
        if unknown:
            raise AnalysisError(
                f"Votes name models not in models=: {unknown[:5]!r}; add them or "
                "filter the votes first."
            )
    position = {name: i for i, name in enumerate(model_list)}
    a_codes = np.array([position[m] for m in a_names], dtype=np.int64)[a_local]
    b_codes = np.array([position[m] for m in b_names], dtype=np.int64)[b_local]

    # Self-comparisons carry no information and usually mean a data bug.
    same = a_codes == b_codes
    if same.any():
        example = model_list[int(a_codes[same][0])]
        raise AnalysisError(
            f"{int(same.sum())} vote(s) compare a model with itself (e.g. "
            f"{example!r}); remove them before the analysis."
        )

    # Weights: one vote per row unless a weight column is named.
    if weight is None:
        weights = np.ones(len(votes))
    else:
        weights = pd.to_numeric(votes[weight], errors="coerce").to_numpy(float)
        if not np.all(np.isfinite(weights)) or (weights < 0).any():
            raise AnalysisError(
                f"The weight column {weight!r} must hold finite non-negative "
                "numbers; fix or drop the other rows."
            )
    return model_list, a_codes, b_codes, outcomes, weights


def count_votes(
    votes: pd.DataFrame,
    *,
    models: Sequence[str] | None = None,
    weight: str | None = None,
) -> VoteCounts:
    """Aggregate a votes frame into ordered counts by outcome.

    Args:
        votes: Frame with ``model_a``, ``model_b`` and ``winner``.
        models: Fix the model order (and include models without votes).
        weight: Optional column giving each row's number of votes.

    Returns:
        The :class:`VoteCounts` of the frame.

    Raises:
        AnalysisError: A column is missing, a winner label is unknown, or a vote
            compares a model with itself.
    """
    model_list, a_codes, b_codes, outcomes, weights = encode_votes(
        votes, models=models, weight=weight
    )
    n = len(model_list)
    flat = (outcomes.astype(np.int64) * n + a_codes) * n + b_codes
    counts = np.bincount(flat, weights=weights, minlength=3 * n * n)
    counts = counts.reshape(3, n, n)
    return VoteCounts(model_list, counts[A_WINS], counts[B_WINS], counts[TIE])
