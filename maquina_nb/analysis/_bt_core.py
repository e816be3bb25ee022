"""Newton's method for Bradley-Terry on aggregated counts, batched over resamples.

The model: the model shown first, ``i``, beats the one shown second, ``j``, with
probability ``sigmoid(lambda_i - lambda_j + alpha)``, where ``alpha`` is the
position (first-shown, or "home") effect, fixed at 0 unless asked for. The data
are two ``(n, n)`` arrays per batch element: ``first[i, j]``, the score of ``i``
shown first against ``j``, and ``second[i, j]``, the score of ``j`` in those same
votes; a tie adds 1/2 to each. The log-likelihood is a sum over those cells, so
its cost does not depend on the number of votes.

One strength is pinned to 0 (``ref``) so the rest are identified. The negative
Hessian (the Fisher information, since the model is a logistic regression) is
also returned: its inverse is the covariance of the free parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

_MAX_STEP = 10.0
_MAX_HALVINGS = 40


@dataclass(frozen=True)
class NewtonResult:
    """A batched fit: strengths, position effect, information and convergence.

    ``strengths`` is ``(B, n)`` with ``ref`` at 0, ``alpha`` is ``(B,)`` and
    ``information`` is ``(B, k, k)`` over the free parameters.
    """

    strengths: np.ndarray
    alpha: np.ndarray
    information: np.ndarray
    log_likelihood: np.ndarray
    converged: np.ndarray
    iterations: int


def _unpack(
    theta: np.ndarray, n: int, ref: int, position: bool
) -> tuple[np.ndarray, np.ndarray]:
    batch = theta.shape[0]
    lam = np.zeros((batch, n))
    free = [i for i in range(n) if i != ref]
    lam[:, free] = theta[:, : n - 1]
    alpha = theta[:, n - 1] if position else np.zeros(batch)
    return lam, alpha


def _log_likelihood(
    first: np.ndarray, second: np.ndarray, lam: np.ndarray, alpha: np.ndarray
) -> np.ndarray:
    d = lam[:, :, None] - lam[:, None, :] + alpha[:, None, None]
    # log sigmoid(d) = -log(1 + exp(-d)), computed without overflow.
    terms = first * np.logaddexp(0.0, -d) + second * np.logaddexp(0.0, d)
    return np.asarray(-terms.sum(axis=(1, 2)))


def _gradient_information(
    first: np.ndarray,
    second: np.ndarray,
    lam: np.ndarray,
    alpha: np.ndarray,
    ref: int,
    position: bool,
) -> tuple[np.ndarray, np.ndarray]:
    batch, n = lam.shape
    d = lam[:, :, None] - lam[:, None, :] + alpha[:, None, None]
    p = expit(d)
    total = first + second
    resid = first - total * p
    weight = total * p * (1.0 - p)

    # Strength block: each model gains from the rows it heads, loses from columns.
    grad_lam = resid.sum(axis=2) - resid.sum(axis=1)
    info_lam = -(weight + weight.transpose(0, 2, 1))
    diag = weight.sum(axis=2) + weight.sum(axis=1)
    idx = np.arange(n)
    info_lam[:, idx, idx] = diag - 2.0 * weight[:, idx, idx]
    free = np.array([i for i in range(n) if i != ref], dtype=np.int64)
    grad = grad_lam[:, free]
    info = info_lam[:, free][:, :, free]

    # Position block: one more row and column for alpha.
    if position:
        cross = (weight.sum(axis=2) - weight.sum(axis=1))[:, free]
        k = n
        full = np.empty((batch, k, k))
        full[:, : k - 1, : k - 1] = info
        full[:, : k - 1, k - 1] = cross
        full[:, k - 1, : k - 1] = cross
        full[:, k - 1, k - 1] = weight.sum(axis=(1, 2))
        grad = np.concatenate([grad, resid.sum(axis=(1, 2))[:, None]], axis=1)
        info = full
    return grad, info


def fit_newton(
    first: np.ndarray,
    second: np.ndarray,
    *,
    ref: int = 0,
    position: bool = False,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> NewtonResult:
    """Maximize the Bradley-Terry likelihood for a batch of count arrays.

    Args:
        first: ``(B, n, n)`` scores of the first-shown model.
        second: ``(B, n, n)`` scores of the second-shown model.
        ref: Index of the model whose strength is pinned to 0.
        position: Also fit the first-position effect ``alpha``.
        max_iter: Newton iterations at most.
        tol: Converged once every parameter moves less than this.

    Returns:
        The :class:`NewtonResult`; elements that did not converge (data that do
        not determine the strengths) have ``converged`` False.
    """
    batch, n, _ = first.shape
    k = n - 1 + int(position)
    theta = np.zeros((batch, k))
    lam, alpha = _unpack(theta, n, ref, position)
    loglik = _log_likelihood(first, second, lam, alpha)
    converged = np.zeros(batch, dtype=bool)
    ridge = 1e-12 * np.eye(k)
    iterations = 0

    for iterations in range(1, max_iter + 1):  # noqa: B007 - reported below
        # Newton direction on the elements still moving.
        active = ~converged
        grad, info = _gradient_information(
            first[active], second[active], lam[active], alpha[active], ref, position
        )
        step = np.linalg.solve(info + ridge, grad[:, :, None])[:, :, 0]
        biggest = np.abs(step).max(axis=1, initial=0.0)
        step *= np.minimum(1.0, _MAX_STEP / np.maximum(biggest, 1e-300))[:, None]

        # Halve the step wherever the likelihood would fall (vectorized).
        theta_act, ll_act = theta[active], loglik[active]
        scale = np.ones(len(step))
        pending = np.ones(len(step), dtype=bool)
        new_theta = theta_act.copy()
        new_ll = ll_act.copy()
        for _ in range(_MAX_HALVINGS):
            trial = theta_act[pending] + scale[pending, None] * step[pending]
            t_lam, t_alpha = _unpack(trial, n, ref, position)
            sub = np.flatnonzero(active)[pending]
            t_ll = _log_likelihood(first[sub], second[sub], t_lam, t_alpha)
            ok = t_ll >= ll_act[pending] - 1e-12 * np.maximum(
                1.0, np.abs(ll_act[pending])
            )
            idx = np.flatnonzero(pending)
            new_theta[idx[ok]] = trial[ok]
            new_ll[idx[ok]] = t_ll[ok]
            pending[idx[ok]] = False
            if not pending.any():
                break
            scale[pending] *= 0.5

        # Record the move and which elements have settled.
        moved = np.abs(new_theta - theta_act).max(axis=1, initial=0.0)
        theta[active] = new_theta
        loglik[active] = new_ll
        lam, alpha = _unpack(theta, n, ref, position)
        settled = np.flatnonzero(active)[moved < tol]
        converged[settled] = True
        if converged.all():
            break

    _, info = _gradient_information(first, second, lam, alpha, ref, position)
    return NewtonResult(lam, alpha, info, loglik, converged, iterations)
