"""Bradley-Terry against published estimates (Agresti 1987 baseball, Stigler 1994
citations, choix test cases) and against a plain vote-level fit."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from scipy import optimize
from scipy.special import expit

from maquina_nb.analysis import (
    AnalysisError,
    bootstrap_bradley_terry,
    fit_bradley_terry,
    win_matrix,
)

DATA = Path(__file__).parent / "data"
PUBLISHED = json.loads((DATA / "published_estimates.json").read_text())


def baseball_votes() -> pd.DataFrame:
    games = pd.read_csv(DATA / "baseball_agresti1987_AL_east.csv")
    rows = []
    for home, away, home_wins, away_wins in games.itertuples(index=False):
        rows.append((home, away, "model_a", home_wins))
        rows.append((home, away, "model_b", away_wins))
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "n"])


def expand(frame: pd.DataFrame) -> pd.DataFrame:
    return (
        frame.loc[frame.index.repeat(frame["n"])]
        .drop(columns="n")
        .reset_index(drop=True)
    )


def by_model(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("model")


def random_votes(
    n_models: int, n_votes: int, seed: int, tie_rate: float = 0.1
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    strength = rng.normal(0.0, 1.0, n_models)
    a = rng.integers(0, n_models, n_votes)
    b = (a + rng.integers(1, n_models, n_votes)) % n_models
    p = expit(strength[a] - strength[b])
    u = rng.random(n_votes)
    winner = np.where(
        u < tie_rate, "tie", np.where(rng.random(n_votes) < p, "model_a", "model_b")
    )
    names = np.array([f"m{i:02d}" for i in range(n_models)])
    return pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner})


# --- published numbers ----------------------------------------------------------


def test_bradley_terry_reproduces_agresti_baseball_model_1() -> None:
    published = PUBLISHED["baseball_agresti1987_AL_east"]["model_1_standard_BT"]

    fit = by_model(
        fit_bradley_terry(baseball_votes(), weight="n", reference="Baltimore")
    )

    for team, value in published["log_ability"].items():
        assert fit.loc[team, "strength"] == pytest.approx(value, abs=1e-3), team
    for team, value in published["std_error"].items():
        assert fit.loc[team, "std_error"] == pytest.approx(value, abs=1e-3), team
    assert fit.loc["Baltimore", "std_error"] == 0.0
    assert fit.attrs["deviance"] == pytest.approx(
        published["residual_deviance"], abs=1e-3
    )
    assert fit.attrs["null_deviance"] == pytest.approx(
        published["null_deviance"], abs=1e-3
    )
    assert fit.attrs["df_residual"] == published["residual_df"]


def test_bradley_terry_reproduces_agresti_baseball_home_advantage() -> None:
    published = PUBLISHED["baseball_agresti1987_AL_east"][
        "model_2_BT_with_home_advantage"
    ]

    fit = fit_bradley_terry(
        baseball_votes(), weight="n", reference="Baltimore", position_effect=True
    )
    table = by_model(fit)

    for team, value in published["log_ability"].items():
        assert table.loc[team, "strength"] == pytest.approx(value, abs=1e-3), team
    for team, value in published["std_error"].items():
        assert table.loc[team, "std_error"] == pytest.approx(value, abs=1e-3), team
    assert fit.attrs["position_effect"] == pytest.approx(
        published["home_advantage_alpha"], abs=1e-3
    )
    assert fit.attrs["position_effect_se"] == pytest.approx(
        published["home_advantage_se"], abs=1e-3
    )
    assert fit.attrs["deviance"] == pytest.approx(
        published["residual_deviance"], abs=1e-3
    )
    assert fit.attrs["df_residual"] == published["residual_df"]
    assert (
        sorted(fit["normalized_ability"].round(3))
        == published["normalized_abilities_sorted_published"]
    )


def test_bradley_terry_expanded_votes_equal_weighted_counts() -> None:
    weighted = fit_bradley_terry(baseball_votes(), weight="n", reference="Baltimore")
    expanded = fit_bradley_terry(expand(baseball_votes()), reference="Baltimore")

    pd.testing.assert_frame_equal(weighted, expanded, check_exact=False, atol=1e-10)


@pytest.mark.parametrize("reference", ["Biometrika", "JASA"])
def test_bradley_terry_reproduces_stigler_citations(reference: str) -> None:
    published = PUBLISHED["citations_stigler1994"][f"ML_reference_{reference}"]
    pairs = pd.read_csv(DATA / "citations_stigler1994_pairs.csv")
    votes = pd.concat(
        [
            pairs.assign(
                model_a=pairs.journal1,
                model_b=pairs.journal2,
                winner="model_a",
                n=pairs.win1,
            ),
            pairs.assign(
                model_a=pairs.journal1,
                model_b=pairs.journal2,
                winner="model_b",
                n=pairs.win2,
            ),
        ]
    )[["model_a", "model_b", "winner", "n"]]

    fit = fit_bradley_terry(votes, weight="n", reference=reference)

    table = by_model(fit)
    for journal, value in published["log_ability"].items():
        assert table.loc[journal, "strength"] == pytest.approx(value, abs=1e-3), journal
    if "residual_deviance" in published:
        # The pairs file pools both citing directions, as R's countsToBinomial does.
        assert fit.attrs["deviance"] == pytest.approx(
            published["residual_deviance"], abs=1e-3
        )
        assert fit.attrs["df_residual"] == published["residual_df"]


@pytest.mark.parametrize("case", ["testcase-pairwise-1", "testcase-pairwise-2"])
def test_bradley_terry_agrees_with_choix_test_cases(case: str) -> None:
    data = json.loads((DATA / f"choix_{case}.json").read_text())
    names = [str(i) for i in range(data["n_items"])]
    votes = pd.DataFrame(
        {
            "model_a": [str(w) for w, _ in data["data"]],
            "model_b": [str(lo) for _, lo in data["data"]],
            "winner": "model_a",
        }
    )

    fit = by_model(fit_bradley_terry(votes, models=names))

    estimate = fit.loc[names, "strength"].to_numpy()
    np.testing.assert_allclose(estimate, data["ml_est"], atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(
        estimate, PUBLISHED["choix_testcases"]["expected"][case], atol=1e-4
    )


# --- agreement with an independent vote-level fit ----------------------------------


def test_bradley_terry_matches_vote_level_scipy_fit_with_half_ties() -> None:
    votes = random_votes(6, 3000, seed=3, tie_rate=0.15)
    names = sorted(set(votes.model_a) | set(votes.model_b))
    a = votes.model_a.map(names.index).to_numpy()
    b = votes.model_b.map(names.index).to_numpy()
    score = votes.winner.map({"model_a": 1.0, "model_b": 0.0, "tie": 0.5}).to_numpy()

    # Vote by vote: a tie is half a win and half a loss; strength 0 pinned at names[0].
    def negative_log_likelihood(free: np.ndarray) -> float:
        lam = np.concatenate([[0.0], free])
        d = lam[a] - lam[b]
        return float(
            np.sum(score * np.logaddexp(0, -d) + (1 - score) * np.logaddexp(0, d))
        )

    solution = optimize.minimize(
        negative_log_likelihood, np.zeros(5), method="BFGS", options={"gtol": 1e-9}
    )
    step = 1e-4
    hessian = np.zeros((5, 5))
    for i in range(5):
        for j in range(5):
            ei, ej = np.eye(5)[i] * step, np.eye(5)[j] * step
            x = solution.x
            hessian[i, j] = (
                negative_log_likelihood(x + ei + ej)
                - negative_log_likelihood(x + ei - ej)
                - negative_log_likelihood(x - ei + ej)
                + negative_log_likelihood(x - ei - ej)
            ) / (4 * step * step)
    reference_se = np.sqrt(np.diag(np.linalg.inv(hessian)))

    fit = by_model(fit_bradley_terry(votes, reference=names[0]))

    np.testing.assert_allclose(fit.loc[names[1:], "strength"], solution.x, atol=1e-5)
    np.testing.assert_allclose(fit.loc[names[1:], "std_error"], reference_se, rtol=1e-3)


def test_bradley_terry_tie_counts_half_to_each_side() -> None:
    votes = random_votes(4, 400, seed=5, tie_rate=0.3)
    ties = votes[votes.winner == "tie"]
    split = pd.concat(
        [
            votes[votes.winner != "tie"].assign(w=1.0),
            ties.assign(winner="model_a", w=0.5),
            ties.assign(winner="model_b", w=0.5),
        ]
    )

    with_ties = fit_bradley_terry(votes)
    halves = fit_bradley_terry(split, weight="w")

    pd.testing.assert_frame_equal(with_ties, halves, check_exact=False, atol=1e-10)


def test_bradley_terry_centred_and_reference_agree_on_differences() -> None:
    votes = random_votes(5, 2000, seed=11)

    centred = by_model(fit_bradley_terry(votes))
    pinned = by_model(fit_bradley_terry(votes, reference="m02"))

    assert centred["strength"].sum() == pytest.approx(0.0, abs=1e-12)
    assert pinned.loc["m02", "strength"] == 0.0
    diff_c = centred["strength"] - centred.loc["m02", "strength"]
    np.testing.assert_allclose(
        diff_c.sort_index(), pinned["strength"].sort_index(), atol=1e-9
    )
    assert centred.attrs["log_likelihood"] == pytest.approx(
        pinned.attrs["log_likelihood"]
    )


def test_bradley_terry_elo_scale_gives_ten_to_one_odds_per_400_points() -> None:
    votes = pd.DataFrame(
        {
            "model_a": ["x"] * 11,
            "model_b": ["y"] * 11,
            "winner": ["model_a"] * 10 + ["model_b"],
        }
    )

    fit = by_model(fit_bradley_terry(votes, reference="y", elo_base=1500))

    assert fit.loc["x", "strength"] == pytest.approx(math.log(10.0))
    assert fit.loc["x", "elo"] == pytest.approx(1900.0)
    assert fit.loc["y", "elo"] == pytest.approx(1500.0)
    assert list(fit["rank"]) == [1, 2]
    assert fit.loc["x", "elo_ci_high"] - fit.loc["x", "elo"] == pytest.approx(
        1.959964 * fit.loc["x", "elo_std_error"], rel=1e-6
    )


def test_bradley_terry_refuses_a_model_that_never_lost() -> None:
    votes = pd.DataFrame(
        {
            "model_a": ["champ", "champ", "b", "c"],
            "model_b": ["b", "c", "c", "b"],
            "winner": ["model_a", "model_a", "model_a", "model_a"],
        }
    )

    with pytest.raises(AnalysisError, match=r"never lost: \['champ'\].*prior=1\.0"):
        fit_bradley_terry(votes)
    regularized = by_model(fit_bradley_terry(votes, prior=1.0))
    assert regularized["strength"].idxmax() == "champ"
    assert np.isfinite(regularized["std_error"]).all()


@pytest.mark.parametrize(
    "winners",
    [
        pytest.param(["model_a"] * 6 + ["model_b"] * 4, id="always-same-order"),
        pytest.param(["model_a"] * 10, id="first-always-wins"),
    ],
)
def test_bradley_terry_refuses_an_unidentified_position_effect(
    winners: list[str],
) -> None:
    same_order = winners.count("model_b") > 0
    votes = pd.DataFrame(
        {
            "model_a": ["x"] * 10 if same_order else ["x", "y"] * 5,
            "model_b": ["y"] * 10 if same_order else ["y", "x"] * 5,
            "winner": winners,
        }
    )

    with pytest.raises(
        AnalysisError, match="no finite, identified maximum: the position"
    ):
        fit_bradley_terry(votes, position_effect=True)
    regularized = fit_bradley_terry(votes, position_effect=True, prior=1.0)
    assert np.isfinite(regularized.attrs["position_effect_se"])


def test_bradley_terry_rejects_bad_votes() -> None:
    with pytest.raises(AnalysisError, match="lacks the column"):
        fit_bradley_terry(pd.DataFrame({"model_a": ["x"], "model_b": ["y"]}))
    with pytest.raises(AnalysisError, match="other than 'model_a'"):
        fit_bradley_terry(
            pd.DataFrame({"model_a": ["x"], "model_b": ["y"], "winner": ["left"]})
        )
    with pytest.raises(AnalysisError, match="compare a model with itself"):
        fit_bradley_terry(
            pd.DataFrame({"model_a": ["x"], "model_b": ["x"], "winner": ["tie"]})
        )
    with pytest.raises(AnalysisError, match="reference model 'nope'"):
        fit_bradley_terry(baseball_votes(), weight="n", reference="nope")


def test_win_matrix_counts_ties_half_and_pools_positions() -> None:
    votes = pd.DataFrame(
        {
            "model_a": ["x", "y", "x", "x"],
            "model_b": ["y", "x", "y", "y"],
            "winner": ["model_a", "model_a", "tie", "tie (bothbad)"],
        }
    )

    matrix = win_matrix(votes)

    expected = pd.DataFrame(
        [[0.0, 2.0], [2.0, 0.0]], index=["x", "y"], columns=["x", "y"]
    )
    pd.testing.assert_frame_equal(matrix, expected)


# --- bootstrap ----------------------------------------------------------------------


def test_bootstrap_is_reproducible_and_brackets_the_estimate() -> None:
    votes = random_votes(5, 5000, seed=2)

    first = bootstrap_bradley_terry(votes, n_resamples=300, seed=7)
    second = bootstrap_bradley_terry(votes, n_resamples=300, seed=7)
    point = fit_bradley_terry(votes)

    pd.testing.assert_frame_equal(first, second)
    assert first.attrs["n_failed"] == 0
    assert (first["ci_low"] <= first["strength"]).all()
    assert (first["strength"] <= first["ci_high"]).all()
    assert (first["rank_low"] <= first["rank"]).all()
    assert (first["rank"] <= first["rank_high"]).all()
    # The bootstrap SD estimates the same sampling spread as the Wald SE.
    wald = by_model(point)["std_error"]
    boot = by_model(first)["std_error"]
    np.testing.assert_allclose(boot[wald.index], wald, rtol=0.2)


def test_bootstrap_position_effect_interval_covers_the_estimate() -> None:
    boot = bootstrap_bradley_terry(
        baseball_votes(), weight="n", n_resamples=400, seed=1, position_effect=True
    )

    low, high = boot.attrs["position_effect_ci"]
    assert low < boot.attrs["position_effect"] < high
    assert low > -0.2
    assert high < 0.8


def test_bootstrap_reports_resamples_without_an_estimate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Four votes in a cycle: most resamples leave some model unbeaten.
    votes = pd.DataFrame(
        {
            "model_a": ["a", "b", "c", "a"],
            "model_b": ["b", "c", "a", "c"],
            "winner": ["model_a", "model_a", "model_a", "model_b"],
        }
    )

    with caplog.at_level(logging.WARNING, logger="maquina_nb.analysis.bradley_terry"):
        boot = bootstrap_bradley_terry(votes, n_resamples=200, seed=0)

    assert 0 < boot.attrs["n_failed"] < 200
    assert any(
        "bootstrap resamples had no finite" in r.getMessage() for r in caplog.records
    )
    with_prior = bootstrap_bradley_terry(votes, n_resamples=200, seed=0, prior=1.0)
    assert with_prior.attrs["n_failed"] == 0


# --- properties ---------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 4),
            st.integers(1, 4),
            st.sampled_from(["model_a", "model_b", "tie"]),
        ),
        min_size=4,
        max_size=60,
    )
)
def test_bradley_terry_fit_matches_observed_scores(
    draws: list[tuple[int, int, str]],
) -> None:
    # At the maximum, each model's expected score equals its observed score.
    names = [f"m{i}" for i in range(5)]
    votes = pd.DataFrame(
        [(names[a], names[(a + step) % 5], w) for a, step, w in draws],
        columns=["model_a", "model_b", "winner"],
    )
    try:
        fit = by_model(fit_bradley_terry(votes, prior=0.5))
    except AnalysisError:
        return  # too few votes to involve two models, say
    models = list(fit.index)
    lam = fit["strength"]
    expected = dict.fromkeys(models, 0.0)
    observed = dict.fromkeys(models, 0.0)
    pairs = [(a, b) for a in models for b in models if a != b]
    for a, b in pairs:
        # prior=0.5 adds 0.25 pseudo-votes to each order of a pair, as ties.
        games = ((votes.model_a == a) & (votes.model_b == b)).sum() + 0.25
        expected[a] += games * expit(lam[a] - lam[b])
        expected[b] += games * expit(lam[b] - lam[a])
        sub = votes[(votes.model_a == a) & (votes.model_b == b)]
        score_a = (
            (sub.winner == "model_a").sum() + 0.5 * (sub.winner == "tie").sum() + 0.125
        )
        observed[a] += score_a
        observed[b] += len(sub) + 0.25 - score_a
    for m in models:
        assert expected[m] == pytest.approx(observed[m], abs=1e-6), m
