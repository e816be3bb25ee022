"""Speed of the analysis statistics, against plain scipy fits measured in the same run.

Targets (issue 6): a Bradley-Terry fit on 100,000 votes among 20 models in under
1 s; 1,000 bootstrap resamples of it in under 10 s.

References:
- the same maximum-likelihood fit done vote by vote with
  ``scipy.optimize.minimize`` (L-BFGS-B, analytic gradient), the way a notebook
  usually does it; the estimates must agree;
- the textbook bootstrap: resample votes with replacement and refit each
  resample vote by vote with that scipy fit (timed on a few resamples and scaled
  to 1,000);
- scipy's ``binomtest(...).proportion_ci(method="wilson")`` in a loop, for the
  vectorized Wilson intervals.

Run with ``python -m benchmarks.bench_analysis`` (or ``python -m benchmarks``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import expit

from maquina_nb.analysis import (
    bootstrap_bradley_terry,
    fit_bradley_terry,
    wilson_interval,
)

N_MODELS = 20
N_VOTES = 100_000
N_RESAMPLES = 1_000
REFERENCE_RESAMPLES = 5


def make_votes(seed: int = 0) -> pd.DataFrame:
    """Arena-like votes: 20 models, Elo spread of a few hundred points, 10% ties."""
    rng = np.random.default_rng(seed)
    strength = rng.normal(0.0, 0.6, N_MODELS)
    a = rng.integers(0, N_MODELS, N_VOTES)
    b = (a + rng.integers(1, N_MODELS, N_VOTES)) % N_MODELS
    p = expit(strength[a] - strength[b] + 0.05)
    tie = rng.random(N_VOTES) < 0.1
    winner = np.where(
        tie, "tie", np.where(rng.random(N_VOTES) < p, "model_a", "model_b")
    )
    names = np.array([f"model-{i:02d}" for i in range(N_MODELS)], dtype=object)
    return pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner})


def scipy_vote_level_fit(votes: pd.DataFrame) -> pd.Series:
    """Reference: MLE vote by vote with scipy (ties half), centred strengths."""
    codes, names = pd.factorize(pd.concat([votes.model_a, votes.model_b]), sort=True)
    a, b = codes[: len(votes)], codes[len(votes) :]
    score = votes.winner.map({"model_a": 1.0, "model_b": 0.0, "tie": 0.5}).to_numpy()
    n = len(names)

    def objective(free: np.ndarray) -> tuple[float, np.ndarray]:
        lam = np.concatenate([[0.0], free])
        d = lam[a] - lam[b]
        loss = np.sum(score * np.logaddexp(0, -d) + (1 - score) * np.logaddexp(0, d))
        resid = score - expit(d)
        grad = np.bincount(a, resid, minlength=n) - np.bincount(b, resid, minlength=n)
        return float(loss), -grad[1:]

    result = optimize.minimize(
        objective,
        np.zeros(n - 1),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-8, "ftol": 1e-15},
    )
    lam = np.concatenate([[0.0], result.x])
    return pd.Series(lam - lam.mean(), index=[str(x) for x in names])


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> dict[str, float]:
    votes = make_votes()
    figures: dict[str, float] = {}

    # 1. One fit: ours (aggregate, then Newton) against scipy vote by vote.
    ours_s, fit = timed(lambda: fit_bradley_terry(votes), repeat=5)
    ref_s, reference = timed(lambda: scipy_vote_level_fit(votes), repeat=3)
    ours = fit.set_index("model")["strength"]
    diff = float(np.abs(ours[reference.index] - reference).max())
    figures.update(fit_s=ours_s, fit_scipy_s=ref_s, fit_max_abs_diff=diff)
    print(f"Bradley-Terry fit, {N_VOTES:,} votes, {N_MODELS} models")
    print(f"  maquina_nb   {ours_s * 1000:8.1f} ms   (target < 1000 ms)")
    print(f"  scipy/votes  {ref_s * 1000:8.1f} ms   -> {ref_s / ours_s:5.1f}x faster")
    print(f"  max |strength difference| = {diff:.2e}")

    # 2. Bootstrap: batched multinomial resamples against row resampling + scipy.
    boot_s, boot = timed(
        lambda: bootstrap_bradley_terry(votes, n_resamples=N_RESAMPLES, seed=1),
        repeat=1,
    )
    rng = np.random.default_rng(2)
    start = time.perf_counter()
    naive = []
    for _ in range(REFERENCE_RESAMPLES):
        rows = rng.integers(0, len(votes), len(votes))
        naive.append(scipy_vote_level_fit(votes.iloc[rows]))
    per_resample = (time.perf_counter() - start) / REFERENCE_RESAMPLES
    naive_s = per_resample * N_RESAMPLES
    spread = pd.concat(naive, axis=1).std(axis=1, ddof=1)
    boot_se = boot.set_index("model")["std_error"][spread.index]
    figures.update(bootstrap_s=boot_s, bootstrap_naive_s=naive_s)
    print(f"Bootstrap, {N_RESAMPLES:,} resamples")
    print(
        f"  maquina_nb   {boot_s:8.2f} s    (target < 10 s), {boot.attrs['n_failed']} failed"
    )
    print(
        f"  scipy/votes  {naive_s:8.2f} s    (scaled from {REFERENCE_RESAMPLES}) "
        f"-> {naive_s / boot_s:5.1f}x faster"
    )
    print(
        f"  median bootstrap SE {float(boot_se.median()):.4f} vs "
        f"{float(spread.median()):.4f} from the {REFERENCE_RESAMPLES} row resamples"
    )

    # 3. Wilson intervals: vectorized against scipy's per-proportion loop.
    rng = np.random.default_rng(3)
    n = rng.integers(1, 5000, 5000)
    k = rng.integers(0, n + 1)
    ours_s, table = timed(lambda: wilson_interval(k, n), repeat=5)
    start = time.perf_counter()
    ref = [
        stats.binomtest(int(x), int(m)).proportion_ci(method="wilson")
        for x, m in zip(k, n, strict=True)
    ]
    ref_s = time.perf_counter() - start
    gap = float(np.abs(table["ci_low"].to_numpy() - [r.low for r in ref]).max())
    figures.update(wilson_s=ours_s, wilson_scipy_s=ref_s)
    print("Wilson intervals, 5,000 proportions")
    print(
        f"  maquina_nb {ours_s * 1000:6.2f} ms, scipy loop {ref_s * 1000:8.1f} ms "
        f"-> {ref_s / ours_s:6.0f}x faster; max |difference| = {gap:.1e}"
    )
    return figures


if __name__ == "__main__":
    main()
