"""Cohen's kappa: a worked example, its standard error by simulation, rater votes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from maquina_nb.analysis import AnalysisError, cohen_kappa, rater_agreement
from maquina_nb.analysis.agreement import _kappa_from_table


def labels_from_table(
    table: list[list[int]], categories: list[str]
) -> tuple[list[str], list[str]]:
    a, b = [], []
    for i, row in enumerate(table):
        for j, count in enumerate(row):
            a += [categories[i]] * count
            b += [categories[j]] * count
    return a, b


def test_cohen_kappa_worked_example() -> None:
    # 50 proposals read by two readers: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no.
    # p_o = 0.7, p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5, kappa = 0.4.
    a, b = labels_from_table([[20, 5], [10, 15]], ["yes", "no"])

    row = cohen_kappa(a, b).iloc[0]

    assert row.n == 50
    assert row.observed_agreement == pytest.approx(0.7)
    assert row.expected_agreement == pytest.approx(0.5)
    assert row.kappa == pytest.approx(0.4)
    assert row.ci_low < 0.4 < row.ci_high


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_standard_error_matches_simulation(weights: str | None) -> None:
    # Draw many tables from one joint distribution; the spread of kappa across
    # them should match the asymptotic standard error.
    joint = np.array([[0.30, 0.06, 0.02], [0.05, 0.25, 0.05], [0.01, 0.06, 0.20]])
    rng = np.random.default_rng(42)
    n = 400
    cells = rng.choice(9, size=(1500, n), p=joint.ravel())
    kappas, errors = [], []
    for draw in cells:
        # The table path of cohen_kappa, without re-labelling 400 strings each time.
        table = np.bincount(draw, minlength=9).reshape(3, 3).astype(float)
        stats = _kappa_from_table(table, weights, 0.95)
        kappas.append(stats["kappa"])
        errors.append(stats["std_error"])
    a, b = np.divmod(cells[0], 3)
    first = cohen_kappa(a, b, categories=[0, 1, 2], weights=weights).iloc[0]
    assert first.kappa == pytest.approx(kappas[0])
    assert first.std_error == pytest.approx(errors[0])

    assert np.std(kappas, ddof=1) == pytest.approx(np.mean(errors), rel=0.05)


def test_weighted_kappa_with_two_categories_equals_plain_kappa() -> None:
    a, b = labels_from_table([[12, 3], [7, 9]], ["bad", "good"])

    plain = cohen_kappa(a, b).iloc[0]
    for weights in ("linear", "quadratic"):
        weighted = cohen_kappa(a, b, categories=["bad", "good"], weights=weights).iloc[
            0
        ]
        assert weighted.kappa == pytest.approx(plain.kappa)
        assert weighted.std_error == pytest.approx(plain.std_error)


def test_weighted_kappa_gives_partial_credit_for_near_misses() -> None:
    a = [1, 2, 3, 4, 5, 1, 2, 3, 4, 5]
    near = [2, 3, 4, 5, 4, 1, 2, 3, 4, 5]

    plain = cohen_kappa(a, near).iloc[0].kappa
    linear = (
        cohen_kappa(a, near, categories=[1, 2, 3, 4, 5], weights="linear").iloc[0].kappa
    )

    assert linear > plain
    assert cohen_kappa(a, a, weights="quadratic").iloc[0].kappa == pytest.approx(1.0)


def test_cohen_kappa_rejects_mismatched_input() -> None:
    with pytest.raises(AnalysisError, match="different numbers of items"):
        cohen_kappa([1, 2], [1])
    with pytest.raises(AnalysisError, match=r"\['9'\]"):
        cohen_kappa([1, 9], [1, 2], categories=[1, 2])
    with pytest.raises(AnalysisError, match="weights must be"):
        cohen_kappa([1, 2], [1, 2], weights="cubic")  # type: ignore[arg-type]


def test_rater_agreement_compares_votes_across_display_orders() -> None:
    # The judge saw each pair in the opposite order from the person.
    votes = pd.DataFrame(
        {
            "rater": ["ann"] * 4 + ["judge:gpt"] * 4 + ["bob"] * 2,
            "item_index": [0, 1, 2, 3] * 2 + [0, 1],
            "model_a": ["x", "x", "x", "x", "y", "y", "y", "y", "x", "x"],
            "model_b": ["y", "y", "y", "y", "x", "x", "x", "x", "y", "y"],
            "winner": [
                "model_a",
                "model_b",
                "tie",
                "model_a",
                "model_b",
                "model_a",
                "tie",
                "model_a",
                "model_a",
                "model_a",
            ],
        }
    )

    table = rater_agreement(votes)
    against_judge = rater_agreement(votes, reference="judge:gpt")

    ann_judge = table[(table.rater_a == "ann") & (table.rater_b == "judge:gpt")].iloc[0]
    assert ann_judge.n == 4
    assert ann_judge.observed_agreement == pytest.approx(0.75)
    assert list(zip(against_judge.rater_a, against_judge.rater_b, strict=True)) == [
        ("judge:gpt", "ann"),
        ("judge:gpt", "bob"),
    ]
    assert list(against_judge.n) == [4, 2]
    with pytest.raises(AnalysisError, match="reference rater 'judge:x'"):
        rater_agreement(votes, reference="judge:x")
