"""Latency, cost and failure summaries of a run's responses, by model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from maquina_nb.analysis._votes import AnalysisError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["latency_cost_by_model"]

#: Statuses that count as an answer (the rest are failures or non-answers).
ANSWERED = ("done", "cached", "truncated")


def latency_cost_by_model(
    responses: pd.DataFrame, *, model: str = "model_spec"
) -> pd.DataFrame:
    """Summarize latency, time to first token, tokens and cost for each model.

    Args:
        responses: A responses frame (``Repository.responses_frame()`` or
            ``Run.to_pandas()``): ``model_spec`` and ``latency_s`` are required;
            ``ttft_s``, ``cost_usd``, ``output_tokens`` and ``status`` are used
            when present. Cached responses are left out of the latency columns,
            since their latency is the original call's.
        model: The model column.

    Returns:
        One row per model, sorted by name: ``model``, ``n_responses``,
        ``n_failed`` (status not done/cached/truncated), ``latency_median``,
        ``latency_p90``, ``latency_mean``, ``ttft_median``, ``output_tokens_mean``,
        ``cost_total_usd``, ``cost_mean_usd``, ``cost_known`` (share of responses
        whose cost is known; unknown costs are left out of the totals).
    """
    import pandas as pd

    if model not in responses.columns or "latency_s" not in responses.columns:
        raise AnalysisError(
            f"The responses frame needs the columns {model!r} and 'latency_s'; "
            f"it has {list(responses.columns)[:12]!r}."
        )
    frame = pd.DataFrame({"model": responses[model].astype(str)})
    status = (
        responses["status"]
        if "status" in responses
        else pd.Series("done", index=responses.index)
    )
    frame["failed"] = ~status.isin(ANSWERED).to_numpy()
    fresh = (status != "cached").to_numpy() & ~frame["failed"].to_numpy()
    for column in ("latency_s", "ttft_s", "cost_usd", "output_tokens"):
        values = (
            pd.to_numeric(responses[column], errors="coerce").to_numpy(float)
            if column in responses
            else np.full(len(frame), np.nan)
        )
        if column in ("latency_s", "ttft_s"):
            values = np.where(fresh, values, np.nan)
        frame[column] = values

    grouped = frame.groupby("model", sort=True)
    table = pd.DataFrame(
        {
            "n_responses": grouped.size(),
            "n_failed": grouped["failed"].sum().astype(int),
            "latency_median": grouped["latency_s"].median(),
            "latency_p90": grouped["latency_s"].quantile(0.9),
            "latency_mean": grouped["latency_s"].mean(),
            "ttft_median": grouped["ttft_s"].median(),
            "output_tokens_mean": grouped["output_tokens"].mean(),
            "cost_total_usd": grouped["cost_usd"].sum(min_count=1),
            "cost_mean_usd": grouped["cost_usd"].mean(),
            "cost_known": grouped["cost_usd"].count() / grouped.size(),
        }
    )
    return table.reset_index()
