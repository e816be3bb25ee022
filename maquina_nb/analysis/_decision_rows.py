"""Shared steps of the rule-based decisions: filter responses, group items, build rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from maquina_nb.analysis._votes import AnalysisError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ANSWERED",
    "DECISION_COLUMNS",
    "decision_row",
    "decisions_frame",
    "group_items",
    "usable_responses",
]

DECISION_COLUMNS = (
    "run_id",
    "item_index",
    "strategy",
    "outcome",
    "winner_response_id",
    "winner_model_spec",
    "decided_by",
    "rationale",
    "details",
)
ANSWERED = ("done", "cached", "truncated")


def usable_responses(
    responses: pd.DataFrame,
    *,
    sample_index: int | None,
    models: Sequence[str] | None,
    statuses: Sequence[str],
    need: Sequence[str] = (),
) -> pd.DataFrame:
    """Return the answered responses, with ``response_id`` and ``run_id`` columns."""
    import pandas as pd

    frame = responses.copy()
    if "response_id" not in frame.columns and "id" in frame.columns:
        frame = frame.rename(columns={"id": "response_id"})
    if "run_id" not in frame.columns:
        frame["run_id"] = None
    missing = [
        c
        for c in ("response_id", "item_index", "model_spec", *need)
        if c not in frame.columns
    ]
    if missing:
        raise AnalysisError(
            f"The responses frame lacks the column(s) {missing!r}; pass the frame "
            "from Run.to_pandas() or Repository.responses_frame()."
        )
    keep = pd.Series(True, index=frame.index)
    if "status" in frame.columns:
        keep &= frame["status"].astype(str).isin(statuses)
    if sample_index is not None and "sample_index" in frame.columns:
        keep &= frame["sample_index"].fillna(0).astype(int) == sample_index
    if models is not None:
        keep &= frame["model_spec"].astype(str).isin([str(m) for m in models])
    return frame[keep]


def group_items(frame: pd.DataFrame) -> list[tuple[Any, int, pd.DataFrame]]:
    groups = frame.groupby(["run_id", "item_index"], sort=True, dropna=False)
    return [(run_id, int(item), group) for (run_id, item), group in groups]


def decision_row(
    run_id: Any,
    item_index: int,
    strategy: str,
    decided_by: str,
    winners: pd.DataFrame,
    rationale: str,
    details: dict[str, Any],
) -> dict[str, Any]:
    single = len(winners) == 1
    outcome = "winner" if single else ("tie" if len(winners) > 1 else "none")
    return {
        "run_id": run_id,
        "item_index": item_index,
        "strategy": strategy,
        "outcome": outcome,
        "winner_response_id": str(winners["response_id"].iloc[0]) if single else None,
        "winner_model_spec": str(winners["model_spec"].iloc[0]) if single else None,
        "decided_by": decided_by,
        "rationale": rationale,
        "details": details,
    }


def decisions_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(DECISION_COLUMNS))
    frame["item_index"] = frame["item_index"].astype("Int64")
    return frame
