"""Exact binomial, sign and McNemar tests, checked against scipy and Agresti (2002)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from maquina_nb.analysis import (
    AnalysisError,
    binomial_test,
    holm_adjust,
    mcnemar_test,
    paired_sign_test,
    sign_test,
)


@pytest.mark.parametrize("p", [0.5, 0.3, 0.77])
@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_binomial_test_agrees_with_scipy(p: float, alternative: str) -> None:
    cases = [
        (k, n) for n in (1, 5, 12, 40, 133) for k in range(0, n + 1, max(1, n // 9))
    ]

    ours = binomial_test(
        [k for k, _ in cases], [n for _, n in cases], p=p, alternative=alternative
    )

    expected = [
        stats.binomtest(k, n, p, alternative=alternative).pvalue for k, n in cases
    ]
    np.testing.assert_allclose(ours["p_value"], expected, rtol=1e-10, atol=1e-15)


def test_binomial_test_rejects_fractional_counts() -> None:
    with pytest.raises(AnalysisError, match="whole-number counts"):
        binomial_test(2.5, 10)
    with pytest.raises(AnalysisError, match="whole-number counts"):
        binomial_test(11, 10)


def test_holm_adjust_matches_hand_computation() -> None:
    adjusted = holm_adjust([0.01, 0.04, np.nan, 0.03, 0.2])

    np.testing.assert_allclose(adjusted, [0.04, 0.09, np.nan, 0.09, 0.2])


def test_sign_test_counts_votes_and_drops_ties() -> None:
    votes = pd.DataFrame(
        {
            "model_a": ["b", "a", "a", "b", "a", "a"],
            "model_b": ["a", "b", "b", "a", "b", "b"],
            "winner": ["model_b", "model_a", "model_a", "model_a", "tie", "model_a"],
        }
    )

    table = sign_test(votes)

    expected = pd.DataFrame(
        {
            "model_a": ["a"],
            "model_b": ["b"],
            "wins_a": [4],
            "wins_b": [1],
            "ties": [1],
            "n_decided": [5],
            "win_rate_a": [0.8],
            "p_value": [stats.binomtest(4, 5).pvalue],
            "p_holm": [stats.binomtest(4, 5).pvalue],
        }
    )
    pd.testing.assert_frame_equal(table, expected)


def test_sign_test_nets_votes_per_item() -> None:
    # Item 1: three raters, 2-1 for a -> a wins the item. Item 2: 1-1 -> tie.
    votes = pd.DataFrame(
        {
            "item_index": [1, 1, 1, 2, 2, 3],
            "model_a": ["a", "b", "a", "a", "b", "b"],
            "model_b": ["b", "a", "b", "b", "a", "a"],
            "winner": [
                "model_a",
                "model_a",
                "model_a",
                "model_a",
                "model_a",
                "model_a",
            ],
        }
    )

    row = sign_test(votes, item="item_index").iloc[0]

    assert (row.wins_a, row.wins_b, row.ties, row.n_decided) == (1, 1, 1, 2)
    with pytest.raises(AnalysisError, match="no item column 'question_id'"):
        sign_test(votes, item="question_id")


def test_paired_sign_test_uses_shared_items_only() -> None:
    scores = pd.DataFrame(
        {
            "item_index": [0, 0, 1, 1, 2, 2, 3, 4, 4],
            "model_spec": ["x", "y", "x", "y", "x", "y", "x", "x", "y"],
            "score": [9, 3, 8, 8, 7, 2, 10, 6, 5],
        }
    )

    row = paired_sign_test(scores).iloc[0]

    assert (row.model_a, row.model_b, row.wins_a, row.wins_b, row.ties) == (
        "x",
        "y",
        3,
        0,
        1,
    )
    assert row.p_value == pytest.approx(stats.binomtest(3, 3).pvalue)


def test_mcnemar_reproduces_agresti_presidential_approval() -> None:
    # Agresti (2002), Categorical Data Analysis, Table 10.1: 1600 people rated the
    # President twice; 794 approve/approve, 150 approve/disapprove,
    # 86 disapprove/approve, 570 disapprove/disapprove. z = -4.17 (z**2 = 17.36).
    first = [True] * 794 + [True] * 150 + [False] * 86 + [False] * 570
    second = [True] * 794 + [False] * 150 + [True] * 86 + [False] * 570
    items = list(range(1600))
    results = pd.DataFrame(
        {
            "item_index": items * 2,
            "model_spec": ["survey1"] * 1600 + ["survey2"] * 1600,
            "correct": first + second,
        }
    )

    chi2 = mcnemar_test(results, method="chi2", correction=False).iloc[0]
    exact = mcnemar_test(results, method="exact").iloc[0]

    assert (chi2.only_a, chi2.only_b, chi2.both_correct, chi2.neither) == (
        150,
        86,
        794,
        570,
    )
    assert chi2.statistic == pytest.approx(17.36, abs=0.005)
    assert chi2.p_value == pytest.approx(
        2 * stats.norm.sf(np.sqrt(4096 / 236)), rel=1e-9
    )
    assert exact.p_value == pytest.approx(stats.binomtest(150, 236).pvalue, rel=1e-12)
    assert chi2.accuracy_a == pytest.approx(944 / 1600)


def test_mcnemar_auto_uses_exact_for_few_discordant_items_and_corrects_chi2() -> None:
    results = pd.DataFrame(
        {
            "item_index": [0, 0, 1, 1, 2, 2, 3, 3],
            "model_spec": ["a", "b"] * 4,
            "correct": [1, 0, 1, 0, 1, 1, 0, 1],
        }
    )

    auto = mcnemar_test(results).iloc[0]
    corrected = mcnemar_test(results, method="chi2").iloc[0]

    assert auto.method == "exact"
    assert auto.p_value == pytest.approx(stats.binomtest(2, 3).pvalue)
    assert corrected.statistic == pytest.approx(0.0)  # (|2 - 1| - 1)**2 / 3
    with pytest.raises(AnalysisError, match="several rows"):
        mcnemar_test(pd.concat([results, results]))


def test_tests_accept_nullable_columns_and_missing_items() -> None:
    scores = pd.DataFrame(
        {
            "item_index": pd.array([0, 0, 1, 1], dtype="Int64"),
            "model_spec": ["x", "y", "x", "y"],
            "score": pd.array([3, 1, pd.NA, 2], dtype="Int64"),
            "correct": pd.array([True, False, pd.NA, True], dtype="boolean"),
        }
    )
    votes = pd.DataFrame(
        {
            "item_index": pd.array([pd.NA, pd.NA], dtype="Int64"),
            "model_a": ["x", "x"],
            "model_b": ["y", "y"],
            "winner": ["model_a", "model_a"],
        }
    )

    assert paired_sign_test(scores).loc[0, "wins_a"] == 1
    assert mcnemar_test(scores).loc[0, "n_items"] == 1
    # Votes without an item are netted together rather than dropped.
    assert sign_test(votes, item="item_index").loc[0, "wins_a"] == 1
