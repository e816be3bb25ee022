"""Win rates with Wilson intervals, checked against scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from maquina_nb.analysis import (
    AnalysisError,
    pairwise_win_rates,
    wilson_interval,
    win_rates,
)


@pytest.mark.parametrize("confidence", [0.8, 0.95, 0.99])
def test_wilson_interval_agrees_with_scipy(confidence: float) -> None:
    cases = [
        (k, n)
        for n in (1, 2, 7, 30, 101, 1000)
        for k in sorted({0, 1, n // 3, n // 2, n - 1, n})
        if k >= 0
    ]

    ours = wilson_interval(
        [k for k, _ in cases], [n for _, n in cases], confidence=confidence
    )

    for (k, n), row in zip(cases, ours.itertuples(index=False), strict=True):
        reference = stats.binomtest(k, n).proportion_ci(
            confidence_level=confidence, method="wilson"
        )
        assert row.ci_low == pytest.approx(reference.low, abs=1e-12), (k, n)
        assert row.ci_high == pytest.approx(reference.high, abs=1e-12), (k, n)
        assert row.proportion == pytest.approx(k / n)


def test_wilson_interval_with_no_trials_is_nan() -> None:
    frame = wilson_interval(0, 0)

    assert frame[["proportion", "ci_low", "ci_high"]].isna().all(axis=None)


def test_win_rates_count_ties_half() -> None:
    votes = pd.DataFrame(
        {
            "model_a": ["x", "x", "y", "z", "x"],
            "model_b": ["y", "z", "x", "x", "y"],
            "winner": ["model_a", "tie", "model_a", "model_b", "tie (bothbad)"],
        }
    )

    table = win_rates(votes)

    expected = pd.DataFrame(
        {
            "model": ["z", "x", "y"],
            "wins": [0.0, 2.0, 1.0],
            "losses": [1.0, 1.0, 1.0],
            "ties": [1.0, 2.0, 1.0],
            "games": [2.0, 5.0, 3.0],
            "score": [0.5, 3.0, 1.5],
            "win_rate": [0.25, 0.6, 0.5],
        }
    )
    # x: beat y once, lost to y once, tied z and y -> 3 / 5; y: 1.5 / 3; z: 0.5 / 2.
    expected = expected.sort_values("win_rate", ascending=False, ignore_index=True)
    intervals = wilson_interval(expected["score"], expected["games"])
    expected["ci_low"] = intervals["ci_low"]
    expected["ci_high"] = intervals["ci_high"]
    pd.testing.assert_frame_equal(table, expected)


def test_pairwise_win_rates_are_complementary() -> None:
    rng = np.random.default_rng(0)
    names = np.array(["a", "b", "c"])
    a = rng.integers(0, 3, 300)
    b = (a + rng.integers(1, 3, 300)) % 3
    votes = pd.DataFrame(
        {
            "model_a": names[a],
            "model_b": names[b],
            "winner": rng.choice(["model_a", "model_b", "tie"], 300),
        }
    )

    table = pairwise_win_rates(votes).set_index(["model", "opponent"])

    for x in names:
        for y in names:
            if x == y:
                continue
            assert table.loc[(x, y), "win_rate"] + table.loc[
                (y, x), "win_rate"
            ] == pytest.approx(1.0)
            assert table.loc[(x, y), "games"] == table.loc[(y, x), "games"]
    assert table["games"].sum() == 2 * 300


def test_win_rates_with_models_keeps_unplayed_models_and_rejects_unknown_ones() -> None:
    votes = pd.DataFrame({"model_a": ["x"], "model_b": ["y"], "winner": ["model_a"]})

    table = win_rates(votes, models=["x", "y", "idle"]).set_index("model")

    assert table.loc["idle", "games"] == 0
    assert np.isnan(table.loc["idle", "win_rate"])
    with pytest.raises(AnalysisError, match=r"not in models=: \['y'\]"):
        win_rates(votes, models=["x"])


def test_win_rates_accept_arena_labels_and_reject_others() -> None:
    votes = pd.DataFrame(
        {
            "model_a": ["x", "x"],
            "model_b": ["y", "y"],
            "winner": [" Model_A ", "tie (bothbad)"],
        }
    )

    assert win_rates(votes).set_index("model").loc["x", "score"] == 1.5
    with pytest.raises(AnalysisError, match=r"\['left'\]"):
        win_rates(votes.assign(winner=["left", "tie"]))
    with pytest.raises(AnalysisError, match="no model name"):
        win_rates(
            pd.DataFrame(
                {
                    "model_a": ["x", None],
                    "model_b": ["y", "y"],
                    "winner": ["tie", "tie"],
                }
            )
        )
