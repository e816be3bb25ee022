"""Plots a researcher would rather look at than read.

matplotlib is imported only when a plot is drawn, and only through its
object-oriented API when an ``ax`` is passed, so the module works under the Agg
backend (CI, nbconvert) as well as inline in JupyterLab. Each function returns
the matplotlib ``Axes`` it drew on (``Figure`` for the two-panel latency/cost
plot), like ``DataFrame.plot``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from maquina_nb.analysis._votes import AnalysisError
from maquina_nb.analysis.bradley_terry import fit_bradley_terry
from maquina_nb.analysis.summary import latency_cost_by_model
from maquina_nb.analysis.winrate import win_rates

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["plot_bradley_terry", "plot_latency_cost", "plot_win_rates"]


def _axes(ax: Any, n_rows: int) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(7.0, max(2.0, 0.45 * n_rows + 1.2)))
    return ax


def _matplotlib_at_least(major: int, minor: int) -> bool:
    import matplotlib

    parts = matplotlib.__version__.split(".")
    return (int(parts[0]), int(parts[1])) >= (major, minor)


def _is_votes(frame: pd.DataFrame) -> bool:
    return {"model_a", "model_b", "winner"} <= set(frame.columns)


def _forest(
    ax: Any,
    labels: list[str],
    centre: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    color: str,
) -> None:
    y = np.arange(len(labels))[::-1]
    ax.errorbar(
        centre,
        y,
        xerr=[centre - low, high - centre],
        fmt="o",
        color=color,
        ecolor=color,
        elinewidth=1.5,
        capsize=3,
    )
    ax.set_yticks(y)
    ax.set_yticklabels(labels)
    ax.grid(axis="x", alpha=0.3)


def plot_win_rates(
    data: pd.DataFrame, *, ax: Any = None, confidence: float = 0.95
) -> Any:
    """Plot each model's win rate with its Wilson interval, best at the top.

    Args:
        data: A votes frame, or the output of :func:`~maquina_nb.analysis.win_rates`.
        ax: Axes to draw on; a new figure when omitted.
        confidence: Interval level when ``data`` are votes.

    Returns:
        The matplotlib Axes.
    """
    table = win_rates(data, confidence=confidence) if _is_votes(data) else data
    missing = {"model", "win_rate", "ci_low", "ci_high"} - set(table.columns)
    if missing:
        raise AnalysisError(
            f"plot_win_rates needs votes or a win_rates() frame; missing {sorted(missing)!r}."
        )
    ax = _axes(ax, len(table))
    _forest(
        ax,
        table["model"].astype(str).tolist(),
        table["win_rate"].to_numpy(float),
        table["ci_low"].to_numpy(float),
        table["ci_high"].to_numpy(float),
        "tab:blue",
    )
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("win rate (ties count half)")
    ax.set_title("Win rate against all opponents")
    return ax


def plot_bradley_terry(
    data: pd.DataFrame, *, ax: Any = None, scale: str = "elo"
) -> Any:
    """Forest plot of Bradley-Terry strengths with their intervals.

    Args:
        data: A votes frame, or the output of
            :func:`~maquina_nb.analysis.fit_bradley_terry` or
            :func:`~maquina_nb.analysis.bootstrap_bradley_terry`.
        ax: Axes to draw on; a new figure when omitted.
        scale: ``"elo"`` or ``"strength"`` (log-strength).

    Returns:
        The matplotlib Axes.
    """
    if scale not in ("elo", "strength"):
        raise AnalysisError(f"scale must be 'elo' or 'strength', got {scale!r}.")
    table = fit_bradley_terry(data) if _is_votes(data) else data
    if scale == "elo":
        centre, low, high = table["elo"], table["elo_ci_low"], table["elo_ci_high"]
        label = "Elo-like rating"
    else:
        centre, low, high = table["strength"], table["ci_low"], table["ci_high"]
        label = "log-strength"
    ax = _axes(ax, len(table))
    _forest(
        ax,
        table["model"].astype(str).tolist(),
        centre.to_numpy(float),
        low.to_numpy(float),
        high.to_numpy(float),
        "tab:purple",
    )
    ax.set_xlabel(label)
    ax.set_title("Bradley-Terry strengths")
    return ax


def plot_latency_cost(responses: pd.DataFrame, *, model: str = "model_spec") -> Any:
    """Two panels per model: latency (box plot of fresh calls) and total cost.

    Args:
        responses: A responses frame (needs ``model_spec`` and ``latency_s``;
            ``cost_usd`` and ``status`` are used when present).
        model: The model column.

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    summary = latency_cost_by_model(responses, model=model)
    names = summary["model"].tolist()
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(11.0, max(2.5, 0.45 * len(names) + 1.2))
    )

    # Latency: one box per model over its fresh, answered calls.
    status = responses.get("status")
    samples = []
    for name in names:
        mask = responses[model].astype(str) == name
        if status is not None:
            mask &= status.isin(("done", "truncated"))
        values = responses.loc[mask, "latency_s"].dropna().to_numpy(float)
        samples.append(values if len(values) else np.array([np.nan]))
    y = np.arange(len(names))[::-1] + 1
    # matplotlib 3.10 replaced vert=False with orientation="horizontal".
    horizontal = (
        {"orientation": "horizontal"}
        if _matplotlib_at_least(3, 10)
        else {"vert": False}
    )
    left.boxplot(samples, positions=y, widths=0.6, **horizontal)
    left.set_yticks(y)
    left.set_yticklabels(names)
    left.set_xlabel("latency (s)")
    left.set_title("Latency by model")

    # Cost: total known cost per model.
    right.barh(
        y, summary["cost_total_usd"].fillna(0.0).to_numpy(float), color="tab:green"
    )
    right.set_yticks(y)
    right.set_yticklabels(names)
    right.set_xlabel("total cost (USD, known costs only)")
    right.set_title("Cost by model")
    fig.tight_layout()
    return fig
