"""Position bias: the first-shown answer's edge, raw and adjusted for strength."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from maquina_nb.analysis import position_bias, swap_consistency, wilson_interval

DATA = Path(__file__).parent / "data"
PUBLISHED = json.loads((DATA / "published_estimates.json").read_text())


def baseball_votes() -> pd.DataFrame:
    games = pd.read_csv(DATA / "baseball_agresti1987_AL_east.csv")
    rows = []
    for home, away, home_wins, away_wins in games.itertuples(index=False):
        rows.append((home, away, "model_a", home_wins))
        rows.append((home, away, "model_b", away_wins))
    return pd.DataFrame(rows, columns=["model_a", "model_b", "winner", "n"])


def test_position_bias_reproduces_agresti_home_advantage() -> None:
    published = PUBLISHED["baseball_agresti1987_AL_east"][
        "model_2_BT_with_home_advantage"
    ]

    row = position_bias(baseball_votes(), weight="n").iloc[0]

    home_wins = baseball_votes().query("winner == 'model_a'")["n"].sum()
    assert (row.n_votes, row.first_wins, row.second_wins, row.ties) == (
        273,
        home_wins,
        273 - home_wins,
        0,
    )
    assert row.first_win_rate == pytest.approx(home_wins / 273)
    assert row.ci_low == pytest.approx(wilson_interval(home_wins, 273).ci_low[0])
    assert row.p_value == pytest.approx(stats.binomtest(int(home_wins), 273).pvalue)
    assert row.position_effect == pytest.approx(
        published["home_advantage_alpha"], abs=1e-3
    )
    assert row.position_effect_se == pytest.approx(
        published["home_advantage_se"], abs=1e-3
    )
    assert row.position_odds_ratio == pytest.approx(
        1.35, abs=0.005
    )  # "exp(0.3023) = 1.35"
    assert row.odds_ratio_ci_low < row.position_odds_ratio < row.odds_ratio_ci_high


def test_position_bias_adjusts_for_strong_models_shown_first() -> None:
    # A strong model is nearly always shown first but there is no position bias:
    # the raw first-win rate is high, the adjusted effect is about zero.
    rng = np.random.default_rng(8)
    n = 6000
    strong_first = rng.random(n) < 0.9
    model_a = np.where(strong_first, "strong", "weak")
    model_b = np.where(strong_first, "weak", "strong")
    p_first = np.where(strong_first, 0.8, 0.2)
    winner = np.where(rng.random(n) < p_first, "model_a", "model_b")
    votes = pd.DataFrame(
        {"model_a": model_a, "model_b": model_b, "winner": winner, "rater": "r"}
    )

    row = position_bias(votes).iloc[0]

    assert row.first_win_rate > 0.7
    assert row.p_value < 1e-6
    assert abs(row.position_effect) < 3 * row.position_effect_se
    assert row.position_effect_p_value > 0.001
    by_rater = position_bias(votes, by="rater")
    assert list(by_rater.columns[:2]) == ["rater", "n_votes"]


def test_position_bias_without_a_fit_reports_nan_effect() -> None:
    votes = pd.DataFrame(
        {"model_a": ["x", "x"], "model_b": ["y", "y"], "winner": ["model_a", "model_a"]}
    )

    row = position_bias(votes).iloc[0]

    assert row.first_wins == 2
    assert np.isnan(row.position_effect)


def test_swap_consistency_classifies_each_pair() -> None:
    rows = [
        # item 0: x wins in both orders -> consistent
        (0, "x", "y", "model_a"), (0, "y", "x", "model_b"),
        # item 1: first shown wins both times -> first-biased
        (1, "x", "y", "model_a"), (1, "y", "x", "model_a"),
        # item 2: second shown wins both times -> second-biased
        (2, "x", "y", "model_b"), (2, "y", "x", "model_b"),
        # item 3: tie once -> mixed
        (3, "x", "y", "tie"), (3, "y", "x", "model_a"),
        # item 4: seen in one order only -> not counted
        (4, "x", "y", "model_a"),
    ]  # fmt: skip
    votes = pd.DataFrame(rows, columns=["item_index", "model_a", "model_b", "winner"])

    table = swap_consistency(votes)

    expected = pd.DataFrame(
        {
            "n_pairs": [4],
            "consistent": [1],
            "first_biased": [1],
            "second_biased": [1],
            "mixed": [1],
            "consistency_rate": [0.25],
        }
    )
    pd.testing.assert_frame_equal(table, expected)
    per_rater = swap_consistency(votes.assign(judge="j1"), rater="judge")
    assert list(per_rater.columns) == ["judge", *expected.columns]


def test_position_bias_flags_a_judge_that_always_picks_the_first_answer() -> None:
    # Every pair shown in both orders; the first-shown answer always wins.
    votes = pd.DataFrame(
        {
            "model_a": ["x", "y"] * 5,
            "model_b": ["y", "x"] * 5,
            "winner": ["model_a"] * 10,
        }
    )

    row = position_bias(votes).iloc[0]

    assert row.first_win_rate == 1.0
    assert row.p_value == pytest.approx(stats.binomtest(10, 10).pvalue)
    assert np.isnan(row.position_effect)  # no finite maximum likelihood estimate
