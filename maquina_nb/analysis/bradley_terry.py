"""Bradley-Terry strengths by maximum likelihood, with standard errors and bootstrap.

Model: model ``i`` beats model ``j`` with probability
``1 / (1 + exp(-(lambda_i - lambda_j)))``; ``lambda`` is the log-strength. With
``position_effect=True`` the model shown first (``model_a``) gets an extra
``alpha`` on the log-odds, exactly like a home advantage in sports data.

Ties count half a win to each side. This keeps the estimate on the win/loss
scale researchers read from arena leaderboards; it is the maximum of the
likelihood in which each tie is half a win and half a loss (a quasi-likelihood,
so standard errors treat a tie as one full game).

The votes are aggregated into count matrices first, and Newton's method runs on
those, so 100,000 votes cost the same as a 20x20 table. The bootstrap resamples
the aggregated counts from a multinomial (equivalent to resampling votes with
replacement) and fits all resamples at once.

Strengths are identified either by centring (mean 0, the default) or by pinning
a ``reference`` model at 0, the parametrization of R's BradleyTerry2. The Elo-like
scale is ``elo_base + elo_scale * lambda / ln(10)``: a 400-point gap means
10-to-1 odds, as in chess and in Chatbot Arena.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.sparse.csgraph import connected_components

from maquina_nb._redact import get_logger
from maquina_nb.analysis._bt_core import NewtonResult, fit_newton
from maquina_nb.analysis._votes import AnalysisError, VoteCounts, count_votes, z_value

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["bootstrap_bradley_terry", "fit_bradley_terry", "win_matrix"]

logger = get_logger(__name__)

# A resample whose strengths run past this is one where a model won (or lost)
# everything: the MLE does not exist there.
_DIVERGED = 30.0
# An information matrix this ill-conditioned means a direction the votes do not
# determine (standard errors would be meaningless).
_MAX_CONDITION = 1e12


def win_matrix(
    votes: pd.DataFrame,
    *,
    weight: str | None = None,
    models: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Return the matrix of wins: row model's score against column model.

    Ties count half to each side; positions are pooled.

    Args:
        votes: Frame with ``model_a``, ``model_b``, ``winner``.
        weight: Optional column counting each row as several votes.
        models: Fix the model order.

    Returns:
        A square frame indexed and labelled by model.
    """
    import pandas as pd

    counts = count_votes(votes, models=models, weight=weight)
    return pd.DataFrame(counts.win_matrix(), index=counts.models, columns=counts.models)


def _scores_with_prior(
    counts: VoteCounts, prior: float
) -> tuple[np.ndarray, np.ndarray]:
    if prior < 0:
        raise AnalysisError(f"prior must be >= 0, got {prior!r}.")
    first, second = counts.scores()
    if prior:
        # prior pseudo-ties per pair: prior/2 in each order, each half a win per side.
        off = 1.0 - np.eye(len(counts.models))
        first = first + 0.25 * prior * off
        second = second + 0.25 * prior * off
    return first, second


def _check_identifiable(
    models: list[str], first: np.ndarray, second: np.ndarray
) -> None:
    wins = first + second.T
    graph = (wins > 0).astype(np.int8)
    n_parts, labels = connected_components(graph, directed=True, connection="strong")
    if n_parts == 1:
        return
    games = wins.sum(axis=1) + wins.sum(axis=0)
    unbeaten = [
        m
        for m, w, g in zip(models, wins.sum(axis=0), games, strict=True)
        if w == 0 and g > 0
    ]
    winless = [
        m
        for m, w, g in zip(models, wins.sum(axis=1), games, strict=True)
        if w == 0 and g > 0
    ]
    unplayed = [m for m, g in zip(models, games, strict=True) if g == 0]
    detail = (
        (f"never lost: {unbeaten!r}; " if unbeaten else "")
        + (f"never won: {winless!r}; " if winless else "")
        + (f"no votes: {unplayed!r}; " if unplayed else "")
    )
    if not detail:
        groups = [
            sorted(m for m, g in zip(models, labels, strict=True) if g == lab)
            for lab in range(n_parts)
        ]
        detail = f"groups that never beat each other: {groups!r}; "
    raise AnalysisError(
        "The votes do not determine Bradley-Terry strengths ("
        + detail.rstrip("; ")
        + "). Collect more votes, or pass prior=1.0 to add one pseudo-tie per pair."
    )


def _check_finite_fit(result: NewtonResult, position_effect: bool) -> None:
    """Raise if the maximum lies at infinity or the fit is not identified."""
    theta = np.append(result.strengths[0], result.alpha[0])
    runaway = not result.converged[0] or np.abs(theta).max() > _DIVERGED
    singular = np.linalg.cond(result.information[0]) > _MAX_CONDITION
    if not (runaway or singular):
        return
    if position_effect:
        cause = (
            "the position effect cannot be told apart from the strengths (e.g. the "
            "first-shown answer won every decided vote, or each pair was always "
            "shown in the same order)"
        )
    else:
        cause = "the votes nearly separate the models"
    raise AnalysisError(
        f"The Bradley-Terry fit has no finite, identified maximum: {cause}. "
        "Collect more varied votes, or pass prior=1.0 to regularize."
    )


def _reference_index(models: list[str], reference: str | None) -> int:
    if reference is None:
        return 0
    if reference not in models:
        raise AnalysisError(
            f"The reference model {reference!r} has no votes; pick one of {models[:10]!r}."
        )
    return models.index(reference)


def _to_parametrization(
    lam: np.ndarray, cov_free: np.ndarray | None, ref: int, centred: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Map strengths pinned at ``ref`` (and their covariance) to the output scale."""
    n = lam.shape[-1]
    embed = np.delete(np.eye(n), ref, axis=1)  # n x (n-1): free params -> full vector
    transform = embed
    if centred:
        transform = (np.eye(n) - 1.0 / n) @ embed
        lam = lam - lam.mean(axis=-1, keepdims=True)
    cov = None
    if cov_free is not None:
        cov = transform @ cov_free[: n - 1, : n - 1] @ transform.T
    return lam, cov


def _deviance(
    first: np.ndarray, second: np.ndarray, lam: np.ndarray, alpha: float
) -> float:
    d = lam[:, None] - lam[None, :] + alpha
    p = 1.0 / (1.0 + np.exp(-d))
    total = first + second
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(first > 0, first * np.log(first / (total * p)), 0.0)
        b = np.where(second > 0, second * np.log(second / (total * (1.0 - p))), 0.0)
    return float(2.0 * (a.sum() + b.sum()))


def fit_bradley_terry(
    votes: pd.DataFrame,
    *,
    reference: str | None = None,
    position_effect: bool = False,
    prior: float = 0.0,
    confidence: float = 0.95,
    weight: str | None = None,
    models: Sequence[str] | None = None,
    elo_scale: float = 400.0,
    elo_base: float = 1000.0,
) -> pd.DataFrame:
    """Fit Bradley-Terry strengths by maximum likelihood.

    Args:
        votes: Frame with ``model_a``, ``model_b``, ``winner``.
        reference: Pin this model's strength at 0 (and its Elo at ``elo_base``);
            by default strengths are centred to mean 0.
        position_effect: Also estimate the first-position (``model_a``) effect;
            it is in ``frame.attrs["position_effect"]`` with its standard error.
        prior: Pseudo-ties added to every pair of models (half in each order).
            0 gives the plain MLE; a small value such as 1 keeps the estimate
            finite when a model won or lost every comparison.
        confidence: Two-sided level of the Wald intervals.
        weight: Optional column counting each row as several votes.
        models: Fix the model set and order.
        elo_scale: Elo points per factor of 10 in the odds.
        elo_base: Elo of the mean (or of ``reference``).

    Returns:
        One row per model, strongest first, with columns ``model``, ``strength``
        (log-strength), ``std_error``, ``ci_low``, ``ci_high``, ``elo``,
        ``elo_std_error``, ``elo_ci_low``, ``elo_ci_high``, ``normalized_ability``
        (``exp(strength)`` scaled to sum to 1), ``rank``, ``score`` (wins + ties/2)
        and ``games``. ``frame.attrs`` holds ``log_likelihood``, ``deviance``,
        ``null_deviance``, ``df_residual``, ``position_effect`` and
        ``position_effect_se`` (NaN when not fitted), ``reference``,
        ``n_votes``, ``iterations`` and ``prior``.

    Raises:
        AnalysisError: The votes do not determine the strengths (a model won or
            lost everything, or groups never met) and ``prior`` is 0.
    """
    counts = count_votes(votes, models=models, weight=weight)
    if len(counts.models) < 2:
        raise AnalysisError(
            f"Bradley-Terry needs votes among at least two models; got {counts.models!r}."
        )
    first, second = _scores_with_prior(counts, prior)
    _check_identifiable(counts.models, first, second)
    ref = _reference_index(counts.models, reference)

    # Fit, then move to the requested parametrization.
    result = fit_newton(first[None], second[None], ref=ref, position=position_effect)
    _check_finite_fit(result, position_effect)
    try:
        cov_free = np.linalg.inv(result.information[0])
    except np.linalg.LinAlgError as exc:
        raise AnalysisError(
            "Bradley-Terry standard errors do not exist for these votes (the "
            "information matrix is singular); pass prior=1.0 to regularize."
        ) from exc
    lam, cov = _to_parametrization(
        result.strengths[0], cov_free, ref, reference is None
    )
    alpha = float(result.alpha[0])
    alpha_se = math.sqrt(cov_free[-1, -1]) if position_effect else math.nan

    # Fit statistics on the observed counts (not the pseudo-ties).
    obs_first, obs_second = counts.scores()
    cells = int(np.count_nonzero(obs_first + obs_second))
    attrs = {
        "reference": reference,
        "log_likelihood": float(result.log_likelihood[0]),
        "deviance": _deviance(obs_first, obs_second, result.strengths[0], alpha),
        "null_deviance": _deviance(obs_first, obs_second, np.zeros(len(lam)), 0.0),
        "df_residual": cells - (len(lam) - 1) - int(position_effect),
        "position_effect": alpha if position_effect else math.nan,
        "position_effect_se": alpha_se,
        "n_votes": counts.n_votes,
        "iterations": result.iterations,
        "prior": prior,
        "confidence": confidence,
    }
    assert cov is not None
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    return _strength_frame(counts, lam, se, confidence, elo_scale, elo_base, attrs)


def _strength_frame(
    counts: VoteCounts,
    lam: np.ndarray,
    se: np.ndarray,
    confidence: float,
    elo_scale: float,
    elo_base: float,
    attrs: dict[str, Any],
) -> pd.DataFrame:
    import pandas as pd

    z = z_value(confidence)
    to_elo = elo_scale / math.log(10.0)
    wins = counts.win_matrix()
    ability = np.exp(lam - lam.max())
    frame = pd.DataFrame(
        {
            "model": counts.models,
            "strength": lam,
            "std_error": se,
            "ci_low": lam - z * se,
            "ci_high": lam + z * se,
            "elo": elo_base + to_elo * lam,
            "elo_std_error": to_elo * se,
            "elo_ci_low": elo_base + to_elo * (lam - z * se),
            "elo_ci_high": elo_base + to_elo * (lam + z * se),
            "normalized_ability": ability / ability.sum(),
            "score": wins.sum(axis=1),
            "games": wins.sum(axis=1) + wins.sum(axis=0),
        }
    )
    frame["rank"] = frame["strength"].rank(ascending=False, method="min").astype(int)
    frame = frame.sort_values(
        ["strength", "model"], ascending=[False, True], kind="stable"
    )
    frame = frame[[*frame.columns[:10], "rank", "score", "games"]].reset_index(
        drop=True
    )
    frame.attrs.update(attrs)
    return frame


def _percentile_ranks(samples: np.ndarray) -> np.ndarray:
    # Rank 1 is the strongest; ties share the best rank.
    order = (-samples).argsort(axis=1).argsort(axis=1)
    return order + 1


def bootstrap_bradley_terry(
    votes: pd.DataFrame,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int | np.random.Generator | None = None,
    reference: str | None = None,
    position_effect: bool = False,
    prior: float = 0.0,
    weight: str | None = None,
    models: Sequence[str] | None = None,
    elo_scale: float = 400.0,
    elo_base: float = 1000.0,
) -> pd.DataFrame:
    """Bootstrap Bradley-Terry strengths: percentile intervals for strength, Elo, rank.

    Each resample draws as many votes as the data hold from the observed
    ordered-pair-and-outcome frequencies (a multinomial draw, the same
    distribution as resampling votes with replacement) and is fitted in one
    batched Newton run with all the others.

    Args:
        votes: Frame with ``model_a``, ``model_b``, ``winner``.
        n_resamples: Number of bootstrap resamples.
        confidence: Two-sided level of the percentile intervals.
        seed: Seed or ``numpy.random.Generator`` for reproducible resamples.
        reference: As in :func:`fit_bradley_terry`.
        position_effect: As in :func:`fit_bradley_terry`.
        prior: As in :func:`fit_bradley_terry`; applied to every resample.
        weight: Optional column counting each row as several votes (rounded to
            whole votes for resampling).
        models: Fix the model set and order.
        elo_scale: Elo points per factor of 10 in the odds.
        elo_base: Elo of the mean (or of ``reference``).

    Returns:
        One row per model, strongest first: ``model``, ``strength`` (full-data
        MLE), ``std_error`` (bootstrap SD), ``ci_low``, ``ci_high``, ``elo``,
        ``elo_ci_low``, ``elo_ci_high``, ``rank``, ``rank_low``, ``rank_high``.
        ``frame.attrs`` holds ``n_resamples``, ``n_failed`` (resamples in which
        the MLE does not exist, left out), ``position_effect`` with its interval
        (``position_effect_ci``) and ``seed``.
    """
    import pandas as pd

    if n_resamples < 2:
        raise AnalysisError(f"n_resamples must be at least 2, got {n_resamples!r}.")
    point = fit_bradley_terry(
        votes,
        reference=reference,
        position_effect=position_effect,
        prior=prior,
        confidence=confidence,
        weight=weight,
        models=models,
        elo_scale=elo_scale,
        elo_base=elo_base,
    )
    counts = count_votes(votes, models=models, weight=weight)
    names = counts.models
    n = len(names)
    ref = _reference_index(names, reference)

    # Multinomial resamples of the (outcome, first, second) cells, in chunks.
    cells = np.stack([counts.a_wins, counts.b_wins, counts.ties]).reshape(-1)
    total = round(float(cells.sum()))
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, 4_000_000 // max(3 * n * n, 1)))
    strengths, alphas, ok = [], [], []
    off = prior * 0.25 * (1.0 - np.eye(n))
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        draws = rng.multinomial(total, cells / cells.sum(), size=size).reshape(
            size, 3, n, n
        )
        first = draws[:, 0] + 0.5 * draws[:, 2] + off
        second = draws[:, 1] + 0.5 * draws[:, 2] + off
        fit = fit_newton(first, second, ref=ref, position=position_effect, max_iter=60)
        lam = fit.strengths
        if reference is None:
            lam = lam - lam.mean(axis=1, keepdims=True)
        strengths.append(lam)
        alphas.append(fit.alpha)
        finite = np.abs(fit.strengths).max(axis=1) < _DIVERGED
        ok.append(fit.converged & finite & (np.abs(fit.alpha) < _DIVERGED))
    samples = np.concatenate(strengths)
    alpha_samples = np.concatenate(alphas)
    good = np.concatenate(ok)
    n_failed = int((~good).sum())
    if n_failed:
        logger.warning(
            "%d of %d bootstrap resamples had no finite Bradley-Terry estimate and "
            "were left out; pass prior=1.0 to keep them",
            n_failed,
            n_resamples,
        )
    if good.sum() < 2:
        raise AnalysisError(
            "Almost no bootstrap resample has finite Bradley-Terry strengths; "
            "collect more votes or pass prior=1.0."
        )
    samples, alpha_samples = samples[good], alpha_samples[good]

    # Percentile intervals on strengths, Elo and ranks.
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(samples, [tail, 100.0 - tail], axis=0)
    ranks = _percentile_ranks(samples)
    rank_low, rank_high = np.percentile(ranks, [tail, 100.0 - tail], axis=0)
    to_elo = elo_scale / math.log(10.0)
    table = pd.DataFrame(
        {
            "model": names,
            "std_error": samples.std(axis=0, ddof=1),
            "ci_low": low,
            "ci_high": high,
            "elo_ci_low": elo_base + to_elo * low,
            "elo_ci_high": elo_base + to_elo * high,
            "rank_low": np.floor(rank_low).astype(int),
            "rank_high": np.ceil(rank_high).astype(int),
        }
    )
    merged = point[["model", "strength", "elo", "rank"]].merge(table, on="model")
    merged = merged[
        [
            "model",
            "strength",
            "std_error",
            "ci_low",
            "ci_high",
            "elo",
            "elo_ci_low",
            "elo_ci_high",
            "rank",
            "rank_low",
            "rank_high",
        ]
    ]
    merged.attrs.update(
        {
            "n_resamples": n_resamples,
            "n_failed": n_failed,
            "confidence": confidence,
            "seed": seed if not isinstance(seed, np.random.Generator) else None,
            "reference": reference,
            "position_effect": point.attrs["position_effect"],
            "position_effect_ci": (
                tuple(np.percentile(alpha_samples, [tail, 100.0 - tail]))
                if position_effect
                else (math.nan, math.nan)
            ),
        }
    )
    return merged
