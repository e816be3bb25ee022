"""Items needed for an A/B comparison: exact power checked against scipy's test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from maquina_nb.analysis import AnalysisError, items_for_win_rate, power_for_items


def power_by_enumeration(n: int, win_rate: float, alpha: float = 0.05) -> float:
    # Power = P(scipy's exact test rejects), summing over every possible outcome.
    return sum(
        stats.binom.pmf(k, n, win_rate)
        for k in range(n + 1)
        if stats.binomtest(k, n, 0.5).pvalue <= alpha
    )


@pytest.mark.parametrize("n", [10, 37, 60])
@pytest.mark.parametrize("win_rate", [0.6, 0.75])
def test_power_for_items_matches_scipy_exact_test(n: int, win_rate: float) -> None:
    ours = power_for_items(n, win_rate).iloc[0]

    assert ours.power == pytest.approx(power_by_enumeration(n, win_rate), abs=1e-12)


def test_items_for_win_rate_is_the_first_count_reaching_the_power() -> None:
    row = items_for_win_rate(0.7, power=0.8).iloc[0]

    n = int(row.n_decided)
    assert row.power == pytest.approx(power_by_enumeration(n, 0.7))
    assert row.power >= 0.8
    assert all(power_by_enumeration(m, 0.7) < 0.8 for m in range(1, n))


def test_items_for_win_rate_normal_formula_textbook_value() -> None:
    # n = ((z_.975 * 0.5 + z_.8 * sqrt(0.6 * 0.4)) / 0.1) ** 2 = 193.8 -> 194.
    expected = math.ceil(((1.959964 * 0.5 + 0.841621 * math.sqrt(0.24)) / 0.1) ** 2)

    row = items_for_win_rate(0.6, power=0.8).iloc[0]

    assert row.n_items_normal == expected == 194
    assert abs(row.n_decided - expected) < 0.1 * expected


def test_items_for_win_rate_table_and_ties() -> None:
    table = items_for_win_rate([0.55, 0.6], power=[0.8, 0.9], tie_rate=0.25)

    assert list(table.win_rate) == [0.55, 0.55, 0.6, 0.6]
    assert list(table.power_target) == [0.8, 0.9, 0.8, 0.9]
    np.testing.assert_array_equal(
        table.n_items, np.ceil(table.n_decided / 0.75).astype(int)
    )
    assert (table.n_decided.diff().iloc[[1, 3]] > 0).all()
    assert table.n_decided.iloc[0] > table.n_decided.iloc[2]


def test_items_for_win_rate_one_sided_needs_fewer_items() -> None:
    two = items_for_win_rate(0.65).iloc[0].n_decided
    one = items_for_win_rate(0.65, alternative="greater").iloc[0].n_decided

    assert one < two


def test_items_for_win_rate_rejects_no_effect() -> None:
    with pytest.raises(AnalysisError, match="no effect to detect"):
        items_for_win_rate(0.5)
    with pytest.raises(AnalysisError, match="power must lie"):
        items_for_win_rate(0.6, power=1.0)
