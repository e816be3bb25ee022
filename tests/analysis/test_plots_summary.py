"""Plots draw under Agg without pyplot at import; latency and cost summaries."""

from __future__ import annotations

import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest

from maquina_nb.analysis import (
    AnalysisError,
    bootstrap_bradley_terry,
    latency_cost_by_model,
    plot_bradley_terry,
    plot_latency_cost,
    plot_win_rates,
    win_rates,
)

matplotlib.use("Agg")


@pytest.fixture
def votes() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    names = np.array(["alpha", "beta", "gamma"])
    a = rng.integers(0, 3, 200)
    b = (a + rng.integers(1, 3, 200)) % 3
    return pd.DataFrame(
        {
            "model_a": names[a],
            "model_b": names[b],
            "winner": rng.choice(["model_a", "model_b", "tie"], 200),
        }
    )


@pytest.fixture
def responses() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_spec": ["a", "a", "a", "b", "b"],
            "status": ["done", "cached", "failed", "done", "done"],
            "latency_s": [1.0, 0.0, 5.0, 2.0, 4.0],
            "ttft_s": [0.5, 0.0, None, 1.0, 1.0],
            "cost_usd": [0.01, 0.01, None, 0.02, None],
            "output_tokens": [10, 10, None, 20, 30],
        }
    )


def test_importing_analysis_does_not_import_pyplot() -> None:
    code = "import sys, maquina_nb.analysis; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == "False"


def test_plot_win_rates_draws_one_interval_per_model(votes: pd.DataFrame) -> None:
    import matplotlib.pyplot as plt

    ax = plot_win_rates(votes)

    labels = [t.get_text() for t in ax.get_yticklabels()]
    top_down = [
        label
        for _, label in sorted(zip(ax.get_yticks(), labels, strict=True), reverse=True)
    ]
    assert top_down == list(win_rates(votes)["model"])
    assert ax.get_xlim() == (0.0, 1.0)
    plt.close(ax.figure)
    with pytest.raises(AnalysisError, match="missing"):
        plot_win_rates(pd.DataFrame({"model": ["x"]}))


def test_plot_bradley_terry_accepts_a_bootstrap_frame_and_an_axes(
    votes: pd.DataFrame,
) -> None:
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    boot = bootstrap_bradley_terry(votes, n_resamples=50, seed=0)

    returned = plot_bradley_terry(boot, ax=ax)

    assert returned is ax
    assert ax.get_xlabel() == "Elo-like rating"
    assert len(ax.get_yticklabels()) == 3
    assert (
        plot_bradley_terry(
            votes, ax=fig.add_subplot(2, 1, 2), scale="strength"
        ).get_xlabel()
        == "log-strength"
    )


def test_plot_latency_cost_has_two_panels(responses: pd.DataFrame) -> None:
    import matplotlib.pyplot as plt

    fig = plot_latency_cost(responses)

    assert [ax.get_title() for ax in fig.axes] == ["Latency by model", "Cost by model"]
    plt.close(fig)


def test_latency_cost_by_model(responses: pd.DataFrame) -> None:
    table = latency_cost_by_model(responses)

    expected = pd.DataFrame(
        {
            "model": ["a", "b"],
            "n_responses": [3, 2],
            "n_failed": [1, 0],
            "latency_median": [1.0, 3.0],
            "latency_p90": [1.0, 3.8],
            "latency_mean": [1.0, 3.0],
            "ttft_median": [0.5, 1.0],
            "output_tokens_mean": [10.0, 25.0],
            "cost_total_usd": [0.02, 0.02],
            "cost_mean_usd": [0.01, 0.02],
            "cost_known": [2 / 3, 0.5],
        }
    )
    pd.testing.assert_frame_equal(table, expected, check_index_type=False)
    with pytest.raises(AnalysisError, match="'latency_s'"):
        latency_cost_by_model(responses.drop(columns="latency_s"))
